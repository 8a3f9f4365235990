//! What the caches keep of a live child: only what the operator observes, and a digest of
//! what it compares. The API server records in managedFields the exact fields each writer
//! set; the values of the fields this operator's manager owns (what it applied or created)
//! are replaced by a digest of them, which the next apply compares with the desired object
//! ([`owned_digest`]). Kept as values: the status, the metadata, the spec fields others own
//! (what takeback judges), the fields sent back as they are live and those read elsewhere.
//! Everything the API server defaulted (dozens of fields in a pod template) is dropped: at
//! fleet scale the caches were most of the operator's memory.
//!
//! A field someone else changed or removed leaves this manager's set, so the digest no
//! longer matches and the object is applied again: drift is still taken back.

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use crate::controller::apply::takeback::{is_foreign_spec_entry, union};
use crate::controller::cache::compact::Live;
use crate::controller::cache::digest::{fnv1a, is_empty};
use crate::resources::labels::MANAGER;

/// Slims a live child of a kind the operator applies. `keep` names the fields (JSON
/// pointers) kept as values besides the status. An object this manager has no entry for
/// (made by someone else before it was adopted) is kept whole.
pub fn slim(mut object: DynamicObject, keep: &[&str]) -> Live {
    let (mut ours, mut theirs) = (json!({}), json!({}));
    let mut own = false;
    for entry in object.metadata.managed_fields.iter().flatten() {
        let Some(fields) = &entry.fields_v1 else {
            continue;
        };
        if entry.manager.as_deref() == Some(MANAGER)
            && entry.subresource.as_deref().unwrap_or_default().is_empty()
        {
            own = true;
            union(&mut ours, fields.0.clone());
        } else if is_foreign_spec_entry(entry) {
            union(&mut theirs, fields.0.clone());
        }
    }
    object.managed_fields_mut().retain(is_foreign_spec_entry);
    if !own {
        return Live::whole(object);
    }
    let Value::Object(mut data) = std::mem::take(&mut object.data) else {
        return Live::whole(object);
    };
    let status = data.remove("status");
    let data = Value::Object(data);
    let owned = digest(&select(data.clone(), &ours));
    let mut kept = select(data.clone(), &theirs);
    for pointer in keep {
        if let Some(value) = data.pointer(pointer) {
            put(&mut kept, pointer, value.clone());
        }
    }
    if let Some(status) = status {
        kept["status"] = status;
    }
    object.data = kept;
    Live {
        object,
        owned: Some(owned),
    }
}

/// The digest a desired object's owned fields must have for the live copy to be the same:
/// everything but its identity and metadata (compared as values).
pub fn owned_digest(desired: &Value) -> u64 {
    let mut fields = desired.as_object().cloned().unwrap_or_default();
    for key in ["apiVersion", "kind", "metadata", "status"] {
        fields.remove(key);
    }
    digest(&Value::Object(fields))
}

/// The fields of `data` (an object without metadata and status) that the field set names;
/// none for an empty set.
fn select(data: Value, set: &Value) -> Value {
    let (Value::Object(data), Some(set)) = (data, set.as_object()) else {
        return json!({});
    };
    Value::Object(
        data.into_iter()
            .filter_map(|(k, v)| {
                let sub = set.get(&format!("f:{k}"))?;
                Some((k, project(v, sub)))
            })
            .collect(),
    )
}

/// FNV-1a of the value with every empty field left out (the API server drops empty maps
/// and lists it is sent, so a desired `{}` matches an absent field).
fn digest(value: &Value) -> u64 {
    fnv1a(without_empty(value).to_string().as_bytes())
}

fn without_empty(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), without_empty(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty).collect()),
        other => other.clone(),
    }
}

/// Sets the field at `pointer` in `into`, making the objects on the way.
fn put(into: &mut Value, pointer: &str, value: Value) {
    let mut slot = into;
    for key in pointer.split('/').skip(1) {
        if !slot.is_object() {
            *slot = json!({});
        }
        slot = slot
            .as_object_mut()
            .map(|m| m.entry(key.to_string()).or_insert(Value::Null))
            .expect("an object");
    }
    *slot = value;
}

/// The part of `value` named by the field set `fields` (a FieldsV1 trie): a leaf or a set
/// that only names the field itself keeps the whole value.
fn project(value: Value, fields: &Value) -> Value {
    let Some(set) = fields.as_object().filter(|s| s.keys().any(|k| k != ".")) else {
        return value;
    };
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| {
                    let sub = set.get(&format!("f:{k}"))?;
                    Some((k, project(v, sub)))
                })
                .collect(),
        ),
        Value::Array(items) => {
            let mut kept: Vec<Option<Value>> = vec![None; items.len()];
            for (key, sub) in set {
                let index = if let Some(keys) = key.strip_prefix("k:") {
                    serde_json::from_str::<Map<String, Value>>(keys)
                        .ok()
                        .and_then(|keys| items.iter().position(|item| has_keys(item, &keys)))
                } else if let Some(value) = key.strip_prefix("v:") {
                    serde_json::from_str::<Value>(value)
                        .ok()
                        .and_then(|v| items.iter().position(|item| *item == v))
                } else if let Some(index) = key.strip_prefix("i:") {
                    index.parse::<usize>().ok().filter(|i| *i < items.len())
                } else {
                    None
                };
                if let Some(i) = index {
                    kept[i] = Some(project(items[i].clone(), sub));
                }
            }
            Value::Array(kept.into_iter().flatten().collect())
        }
        other => other,
    }
}

/// Whether a list item has the key fields of a `k:` entry.
fn has_keys(item: &Value, keys: &Map<String, Value>) -> bool {
    keys.iter().all(|(k, v)| item.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ours: Value, theirs: Option<Value>, data: Value) -> DynamicObject {
        let mut managed = vec![
            json!({ "manager": MANAGER, "operation": "Apply", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": ours }),
            json!({ "manager": "kube-controller-manager", "operation": "Update",
                    "apiVersion": "apps/v1", "subresource": "status", "fieldsType": "FieldsV1",
                    "fieldsV1": { "f:status": { "f:replicas": {} } } }),
        ];
        if let Some(theirs) = theirs {
            managed.push(json!({ "manager": "kubectl-edit", "operation": "Update",
                "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": theirs }));
        }
        let mut object = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": { "name": "database", "namespace": "hs-a", "managedFields": managed },
        });
        for (k, v) in data.as_object().unwrap() {
            object[k] = v.clone();
        }
        serde_json::from_value(object).unwrap()
    }

    const OURS: &str = r#"{ "f:spec": { "f:replicas": {}, "f:template": { "f:spec": {
        "f:containers": { "k:{\"name\":\"postgres\"}": {
            ".": {}, "f:image": {}, "f:name": {},
            "f:ports": { "k:{\"containerPort\":5432,\"protocol\":\"TCP\"}": {
                ".": {}, "f:containerPort": {}, "f:protocol": {} } },
            "f:args": {} } } } } } }"#;

    /// What the operator applied (a desired object).
    fn desired(image: &str) -> Value {
        json!({ "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": { "name": "database", "labels": { "a": "b" } },
            "spec": { "replicas": 1, "template": { "spec": {
                "volumes": [],
                "containers": [{ "name": "postgres", "image": image,
                    "ports": [{ "containerPort": 5432, "protocol": "TCP" }],
                    "args": ["-c", "x"] }] } } } })
    }

    /// The live object: as applied, defaulted by the API server, a sidecar injected by
    /// someone else, and its status.
    fn live_data() -> Value {
        json!({
            "spec": { "replicas": 1, "revisionHistoryLimit": 10, "template": { "spec": {
                "dnsPolicy": "ClusterFirst",
                "containers": [{
                    "name": "postgres", "image": "postgres:17", "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "ports": [{ "containerPort": 5432, "protocol": "TCP" }],
                    "args": ["-c", "x"]
                }, { "name": "injected-sidecar", "image": "mesh:1" }]
            } } },
            "status": { "replicas": 1, "readyReplicas": 1 }
        })
    }

    /// The owned fields become a digest that matches the object as applied (and no other);
    /// the status and the fields named to keep stay as values; the rest goes.
    #[test]
    fn a_child_keeps_its_status_and_a_digest_of_what_it_owns() {
        let object = live(serde_json::from_str(OURS).unwrap(), None, live_data());
        let slimmed = slim(object, &["/spec/replicas"]);
        assert_eq!(
            slimmed.object.data,
            json!({ "spec": { "replicas": 1 }, "status": { "replicas": 1, "readyReplicas": 1 } })
        );
        assert_eq!(slimmed.owned, Some(owned_digest(&desired("postgres:17"))));
        assert_ne!(slimmed.owned, Some(owned_digest(&desired("postgres:18"))));
        assert!(
            slimmed
                .object
                .metadata
                .managed_fields
                .as_ref()
                .is_none_or(Vec::is_empty)
        );
    }

    /// Others' spec fields are kept as values (with their managedFields entry) for
    /// takeback to judge.
    #[test]
    fn others_spec_fields_stay_for_takeback() {
        let object = live(
            json!({ "f:spec": { "f:replicas": {} } }),
            Some(json!({ "f:spec": { "f:minReadySeconds": {} } })),
            json!({ "spec": { "replicas": 1, "minReadySeconds": 30, "serviceName": "db" } }),
        );
        let slimmed = slim(object, &[]);
        assert_eq!(
            slimmed.object.data,
            json!({ "spec": { "minReadySeconds": 30 } })
        );
        let kept: Vec<_> = slimmed
            .object
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|e| e.manager.clone())
            .collect();
        assert_eq!(kept, ["kubectl-edit"]);
    }

    /// A field another writer changed is no longer this manager's: the digest no longer
    /// matches the desired object, which is applied again.
    #[test]
    fn a_field_taken_over_by_someone_else_changes_the_digest() {
        let mut ours: Value = serde_json::from_str(OURS).unwrap();
        let container = &mut ours["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"postgres\"}"];
        container.as_object_mut().unwrap().remove("f:image");
        let mut data = live_data();
        data["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:17-evil");
        let slimmed = slim(live(ours, None, data), &[]);
        assert_ne!(slimmed.owned, Some(owned_digest(&desired("postgres:17"))));
    }

    /// An object without any entry of this manager is kept whole.
    #[test]
    fn an_object_made_by_someone_else_is_kept_whole() {
        let mut object = live(json!({}), None, json!({ "spec": { "replicas": 3 } }));
        object.metadata.managed_fields.as_mut().unwrap().remove(0);
        let slimmed = slim(object, &[]);
        assert_eq!(slimmed.owned, None);
        assert_eq!(slimmed.object.data, json!({ "spec": { "replicas": 3 } }));
    }

    #[test]
    fn set_items_are_kept_by_value() {
        let fields = json!({ "f:drop": { "v:\"ALL\"": {} } });
        let value = json!({ "drop": ["ALL", "NET_RAW"] });
        assert_eq!(project(value, &fields), json!({ "drop": ["ALL"] }));
    }
}
