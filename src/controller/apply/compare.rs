//! Whether a live object already has every field of the desired one: the check that lets a
//! quiet cluster cost no writes at all.

use serde_json::Value;

use crate::controller::cache::digest::is_empty;

/// True when every field of `desired` has the same value in `live`. Fields that the API
/// server or other controllers added are ignored; an empty desired list or map matches an
/// absent field (the API server drops them).
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(live), Value::Object(desired)) => {
            desired.iter().all(|(key, d)| match live.get(key) {
                Some(l) => contains(l, d),
                None => is_empty(d),
            })
        }
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (Value::Null, desired) => is_empty(desired),
        (live, desired) => live == desired,
    }
}

/// Compares a live object with a desired manifest. Objects from a watch's initial list carry
/// no apiVersion and kind, so those are left out of the comparison.
pub fn same_object(live: &Value, desired: &Value) -> bool {
    match desired.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "apiVersion" | "kind"))
            .all(|(key, d)| live.get(key).map_or(is_empty(d), |l| contains(l, d))),
        None => false,
    }
}
