//! Stable digests and emptiness of JSON values, shared by the caches (what they keep of an
//! applied object) and the apply (what it compares and stamps).

use serde_json::Value;

/// FNV-1a, 64 bits: stable across Rust releases (unlike `DefaultHasher`), so a new
/// operator build does not rewrite every child of the fleet.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether a desired value says nothing: null, or a list or map with nothing but such values
/// (the API server drops them, so they match an absent field).
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}
