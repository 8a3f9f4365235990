//! Taking back what others add inside a child's spec: a default-deny narrowed to some pods,
//! an extra label in a policy's selector, a sidecar in the database pod. Server-side apply
//! only removes fields its own manager owned and no longer sends; a field someone else set
//! stays. So when another writer owns spec fields that the desired object does not have,
//! their ownership is handed to this operator first (the managedFields rewrite that
//! client-go's csaupgrade uses), and the apply that follows removes them.
//!
//! Labels and annotations others add (an object's or a pod template's `metadata`) are theirs
//! and stay, and so does everything outside `spec`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value, json};

use crate::resources::labels::MANAGER;

/// Whether a managedFields entry is another writer's change to the object itself (not a
/// subresource such as status) inside its spec: the only entries the watch stores keep.
pub fn is_foreign_spec_entry(entry: &ManagedFieldsEntry) -> bool {
    entry.manager.as_deref() != Some(MANAGER)
        && entry.subresource.as_deref().unwrap_or_default().is_empty()
        && entry
            .fields_v1
            .as_ref()
            .is_some_and(|f| f.0.get("f:spec").is_some())
}

fn is_foreign_spec_value(entry: &Value) -> bool {
    serde_json::from_value::<ManagedFieldsEntry>(entry.clone())
        .is_ok_and(|e| is_foreign_spec_entry(&e))
}

fn is_own_apply(entry: &Value) -> bool {
    entry["manager"] == MANAGER
        && entry["operation"] == "Apply"
        && entry["subresource"].as_str().unwrap_or_default().is_empty()
}

/// Whether another writer owns something in `live`'s spec that `desired` does not have, or
/// a value there (an atomic one, such as a label selector) that differs from `desired`.
pub fn has_foreign_additions(live: &Value, desired: &Value) -> bool {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| is_foreign_spec_value(e))
        .any(|e| differs(&e["fieldsV1"]["f:spec"], &live["spec"], &desired["spec"]))
}

/// Whether a field set (the FieldsV1 trie) names something `desired` lacks, or a leaf whose
/// `live` value is not `desired`'s, leaving out `metadata` at any depth.
fn differs(fields: &Value, live: &Value, desired: &Value) -> bool {
    let Some(fields) = fields.as_object() else {
        return false;
    };
    if fields.keys().all(|k| k == ".") {
        return live != desired;
    }
    fields.iter().any(|(key, sub)| {
        if key == "." || key == "f:metadata" {
            false
        } else if let Some(name) = key.strip_prefix("f:") {
            match desired.get(name) {
                None | Some(Value::Null) => true,
                Some(d) => differs(sub, live.get(name).unwrap_or(&Value::Null), d),
            }
        } else if let Some(keys) = key.strip_prefix("k:") {
            let Ok(keys) = serde_json::from_str::<Map<String, Value>>(keys) else {
                return false;
            };
            find_item(desired, &keys)
                .is_none_or(|d| differs(sub, find_item(live, &keys).unwrap_or(&Value::Null), d))
        } else if let Some(value) = key.strip_prefix("v:") {
            serde_json::from_str::<Value>(value)
                .is_ok_and(|v| !desired.as_array().is_some_and(|items| items.contains(&v)))
        } else if let Some(index) = key.strip_prefix("i:") {
            let Ok(i) = index.parse::<usize>() else {
                return false;
            };
            desired
                .get(i)
                .is_none_or(|d| differs(sub, live.get(i).unwrap_or(&Value::Null), d))
        } else {
            false
        }
    })
}

/// The item of `list` with the key fields `keys`; a key field the item leaves to its
/// default matches any value.
fn find_item<'a>(list: &'a Value, keys: &Map<String, Value>) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| {
        keys.iter()
            .all(|(k, v)| item.get(k).is_none_or(|own| own == v))
    })
}

/// The managedFields in which this operator's apply entry owns, besides its own fields,
/// every spec field others own (their metadata excepted), so that the next apply removes
/// those it does not send. Other entries keep the rest of theirs.
pub fn transfer(entries: &[Value], api_version: &str) -> Vec<Value> {
    let mut taken = json!({});
    let mut out = Vec::new();
    let mut own = None;
    for entry in entries {
        if is_own_apply(entry) {
            own = Some(entry.clone());
            continue;
        }
        if !is_foreign_spec_value(entry) {
            out.push(entry.clone());
            continue;
        }
        let mut entry = entry.clone();
        let spec = &mut entry["fieldsV1"]["f:spec"];
        union(&mut taken, json!({ "f:spec": take_non_metadata(spec) }));
        if is_empty_set(spec) {
            entry["fieldsV1"]
                .as_object_mut()
                .map(|f| f.remove("f:spec"));
        }
        if !is_empty_set(&entry["fieldsV1"]) {
            out.push(entry);
        }
    }
    let mut own = own.unwrap_or_else(|| {
        json!({
            "manager": MANAGER,
            "operation": "Apply",
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        })
    });
    union(&mut own["fieldsV1"], taken);
    out.insert(0, own);
    out
}

/// Removes from a field set every field outside a `metadata`, and returns them.
fn take_non_metadata(fields: &mut Value) -> Value {
    let Some(map) = fields.as_object_mut() else {
        return json!({});
    };
    let mut taken = Map::new();
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if key == "f:metadata" {
            continue;
        }
        let sub = map.get_mut(&key).expect("a key just listed");
        if key == "." || is_empty_set(sub) {
            taken.insert(key.clone(), map.remove(&key).unwrap_or_default());
            continue;
        }
        let inner = take_non_metadata(sub);
        if !is_empty_set(&inner) {
            taken.insert(key.clone(), inner);
        }
        if is_empty_set(sub) {
            map.remove(&key);
        }
    }
    Value::Object(taken)
}

fn is_empty_set(fields: &Value) -> bool {
    fields.as_object().is_none_or(Map::is_empty)
}

/// Adds the field set `other` to `into`.
pub fn union(into: &mut Value, other: Value) {
    match (into.as_object_mut(), other) {
        (Some(into), Value::Object(other)) => {
            for (key, value) in other {
                union(into.entry(key).or_insert_with(|| json!({})), value);
            }
        }
        (None, other) => *into = other,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_with(fields: Value) -> Value {
        json!({ "metadata": { "managedFields": [
            { "manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
              "fieldsType": "FieldsV1", "fieldsV1": fields },
        ] } })
    }

    #[test]
    fn a_label_added_to_an_empty_selector_is_foreign() {
        let mut live = live_with(
            json!({ "f:spec": { "f:podSelector": { "f:matchLabels": { ".": {}, "f:app": {} } } } }),
        );
        live["spec"] = json!({ "podSelector": { "matchLabels": { "app": "x" } } });
        assert!(has_foreign_additions(
            &live,
            &json!({ "spec": { "podSelector": {} } })
        ));
        assert!(!has_foreign_additions(
            &live,
            &json!({ "spec": { "podSelector": { "matchLabels": { "app": "x" } } } })
        ));
    }

    #[test]
    fn an_atomic_selector_others_own_must_equal_the_desired_one() {
        // LabelSelector is atomic: the writer owns it whole, as a leaf.
        let mut live = live_with(json!({ "f:spec": { "f:podSelector": {} } }));
        live["spec"] = json!({ "podSelector": { "matchLabels": { "app": "only-this" } } });
        assert!(has_foreign_additions(
            &live,
            &json!({ "spec": { "podSelector": {} } })
        ));
        live["spec"] = json!({ "podSelector": {} });
        assert!(!has_foreign_additions(
            &live,
            &json!({ "spec": { "podSelector": {} } })
        ));
    }

    #[test]
    fn a_container_added_by_name_is_foreign_and_a_shared_one_is_not() {
        let mut live = live_with(
            json!({ "f:spec": { "f:template": { "f:spec": { "f:containers": {
            "k:{\"name\":\"sidecar\"}": { ".": {}, "f:image": {}, "f:name": {} }
        } } } } }),
        );
        live["spec"] = json!({ "template": { "spec": { "containers": [
            { "name": "postgres", "image": "x" }, { "name": "sidecar", "image": "x" }
        ] } } });
        let desired = |names: &[&str]| {
            let containers: Vec<Value> = names
                .iter()
                .map(|n| json!({ "name": n, "image": "x" }))
                .collect();
            json!({ "spec": { "template": { "spec": { "containers": containers } } } })
        };
        assert!(has_foreign_additions(&live, &desired(&["postgres"])));
        assert!(!has_foreign_additions(
            &live,
            &desired(&["postgres", "sidecar"])
        ));
    }

    #[test]
    fn labels_and_annotations_others_add_are_theirs() {
        let live = live_with(json!({
            "f:metadata": { "f:labels": { "f:team": {} } },
            "f:spec": { "f:template": { "f:metadata": { "f:annotations": {
                "f:kubectl.kubernetes.io/restartedAt": {}
            } } } }
        }));
        assert!(!has_foreign_additions(
            &live,
            &json!({ "spec": { "template": {} } })
        ));
        // Status and subresource writers are never foreign spec owners.
        let status = json!({ "metadata": { "managedFields": [
            { "manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
              "fieldsType": "FieldsV1", "fieldsV1": { "f:spec": { "f:x": {} } } },
        ] } });
        assert!(!has_foreign_additions(&status, &json!({ "spec": {} })));
    }

    #[test]
    fn transfer_hands_spec_fields_to_this_operator_and_leaves_metadata() {
        let entries = vec![
            json!({ "manager": MANAGER, "operation": "Apply", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": { "f:spec": { "f:replicas": {} } } }),
            json!({ "manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {
                        "f:metadata": { "f:labels": { "f:team": {} } },
                        "f:spec": { "f:template": {
                            "f:metadata": { "f:annotations": { "f:a": {} } },
                            "f:spec": { "f:containers": { "k:{\"name\":\"sidecar\"}": { ".": {}, "f:name": {} } } }
                        } }
                    } }),
            json!({ "manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                    "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": { "f:status": {} } }),
        ];
        let out = transfer(&entries, "apps/v1");
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0]["fieldsV1"],
            json!({ "f:spec": { "f:replicas": {}, "f:template": { "f:spec": { "f:containers": {
                "k:{\"name\":\"sidecar\"}": { ".": {}, "f:name": {} }
            } } } } })
        );
        assert_eq!(
            out[1]["fieldsV1"],
            json!({
                "f:metadata": { "f:labels": { "f:team": {} } },
                "f:spec": { "f:template": { "f:metadata": { "f:annotations": { "f:a": {} } } } }
            })
        );
        assert_eq!(out[2], entries[2]);
    }
}
