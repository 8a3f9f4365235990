//! What the operator reads of the application's pods: whether they wait on an image that
//! cannot be pulled. The Deployment's own status only says "0 of 1 pods available".

pub mod image_pull;
