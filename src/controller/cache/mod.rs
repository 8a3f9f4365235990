//! The watch caches of every child kind: which kinds are watched and how each is kept
//! (`kinds`), the compact per-kind store (`compact`), what of an applied object is kept
//! (`owned_fields`) and the digests it compares with (`digest`).

pub mod compact;
pub mod digest;
pub mod foreign;
pub mod kinds;
pub mod owned_fields;

use kube::api::DynamicObject;
use kube::runtime::watcher;

/// A watch stream that keeps one store up to date and carries its changes to the controller
/// as triggers (a changed object with its system's label).
pub type ChildStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Send>>;
