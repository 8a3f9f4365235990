//! The fingerprint each applied object carries: a digest of the desired object as it was
//! sent, so that a field removed from the desired object (which a subset compare cannot see)
//! still makes the object differ and be applied again.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::controller::cache::digest::fnv1a;

/// The annotation that records which desired object was last applied (see
/// [`stamp_fingerprint`]).
pub const FINGERPRINT: &str = "sdc.gov.rs/applied-fingerprint";

/// Sets the annotation `key` of a manifest.
fn annotate(object: &mut Value, key: &str, value: &str) {
    let metadata = &mut object["metadata"];
    if !metadata["annotations"].is_object() {
        metadata["annotations"] = json!({});
    }
    metadata["annotations"][key] = Value::String(value.to_string());
}

/// Records a fingerprint of the desired object on it. The compare with the live copy treats
/// the desired object as a subset, so on its own it cannot see a field that was removed
/// from the desired object; the fingerprint changes whenever anything is removed, so the
/// object is applied again, and server-side apply removes what this manager no longer sends.
pub fn stamp_fingerprint(object: &mut Value) {
    let mut unstamped = object.clone();
    if let Some(metadata) = unstamped.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
    {
        annotations.remove(FINGERPRINT);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    let fingerprint = format!("{:016x}", fnv1a(unstamped.to_string().as_bytes()));
    annotate(object, FINGERPRINT, &fingerprint);
}

/// `namespace` as it is applied (with its fingerprint): created that way, a new namespace
/// needs no apply after its create.
pub fn as_applied(namespace: &Namespace) -> Namespace {
    let mut manifest = crate::resources::manifest(namespace);
    stamp_fingerprint(&mut manifest);
    let mut stamped = namespace.clone();
    if let Some(fingerprint) = manifest["metadata"]["annotations"][FINGERPRINT].as_str() {
        stamped
            .annotations_mut()
            .insert(FINGERPRINT.into(), fingerprint.into());
    }
    stamped
}
