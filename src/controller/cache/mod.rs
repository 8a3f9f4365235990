//! The watch caches of every child kind: which kinds are watched and how each is kept
//! (`kinds`), the compact per-kind store (`compact`), what of an applied object is kept
//! (`owned_fields`) and the digests it compares with (`digest`).

pub mod compact;
pub mod digest;
pub mod foreign;
pub mod kinds;
pub mod owned_fields;
