//! What the property tests over the spec share: the committed examples, every leaf of a
//! manifest as a JSON pointer, and arbitrary JSON values (with the edge values of the spec's
//! fields among them) to put there.

use proptest::prelude::*;
use serde_json::Value;

/// Every leaf path of a JSON value (object keys and array indexes), as JSON pointers.
pub fn pointers(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(
                    v,
                    format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{prefix}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(prefix);
}

/// `manifest` with one leaf under /spec or /metadata (the one `pick` chooses) replaced by
/// what `replace` makes of its current value; and that leaf's JSON pointer.
pub fn with_a_leaf_replaced(
    manifest: &Value,
    pick: &prop::sample::Index,
    replace: impl FnOnce(&Value) -> Value,
) -> (Value, String) {
    let mut manifest = manifest.clone();
    let mut leaves = Vec::new();
    pointers(&manifest, String::new(), &mut leaves);
    leaves.retain(|p| p.starts_with("/spec") || p.starts_with("/metadata"));
    let pointer = pick.get(&leaves).clone();
    let slot = manifest.pointer_mut(&pointer).unwrap();
    *slot = replace(slot);
    (manifest, pointer)
}

pub fn examples() -> Vec<Value> {
    let root = crate::repo_root().join("examples");
    let mut paths: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_saphyr::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(|f| serde_json::json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "0",
            "-1",
            "1Gi",
            "16Ti",
            "17Ti",
            "500m",
            "Standard",
            "PostgreSQL",
            "15",
            "Retain",
            "Delete",
            "0 2 * * *",
            "61 * * * *",
            "24h",
            "0h",
            "kube-system",
            "system:masters",
            "10.0.0.0/8",
            "not a cidr",
            "public.patients",
            "*",
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
