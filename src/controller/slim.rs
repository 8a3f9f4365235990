//! What the caches keep of a live child: only what the operator compares and observes. The
//! API server records in managedFields the exact fields each writer set; a child keeps the
//! fields this operator's manager owns (what it applied or created), the spec fields others
//! own (what takeback judges), its whole status and its metadata. Everything else (the
//! dozens of fields the API server defaults in a pod template, others' additions outside
//! the spec) is dropped: at fleet scale the caches are most of the operator's memory.
//!
//! A field someone else took over leaves this manager's set, so it is missing from the
//! cached copy and the compare applies the object again: drift is still taken back.

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use super::takeback::{is_foreign_spec_entry, union};
use crate::resources::labels::MANAGER;

/// Slims a live child of a kind the operator applies; keeps the managedFields entries of
/// others' spec writes (and drops the rest of them). An object this manager has no entry
/// for (made by someone else before it was adopted) is kept whole.
pub fn slim(object: &mut DynamicObject) {
    let mut kept = json!({});
    let mut own = false;
    for entry in object.metadata.managed_fields.iter().flatten() {
        let ours = entry.manager.as_deref() == Some(MANAGER)
            && entry.subresource.as_deref().unwrap_or_default().is_empty();
        if ours || is_foreign_spec_entry(entry) {
            own |= ours;
            if let Some(fields) = &entry.fields_v1 {
                union(&mut kept, fields.0.clone());
            }
        }
    }
    object.managed_fields_mut().retain(is_foreign_spec_entry);
    if !own {
        return;
    }
    let Value::Object(data) = std::mem::take(&mut object.data) else {
        return;
    };
    let mut out = Map::new();
    for (key, value) in data {
        if key == "status" {
            out.insert(key, value);
        } else if let Some(fields) = kept.get(format!("f:{key}")) {
            out.insert(key, project(value, fields));
        }
    }
    object.data = Value::Object(out);
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

    fn live(fields_ours: Value, fields_theirs: Option<Value>, data: Value) -> DynamicObject {
        let mut managed = vec![json!({
            "manager": MANAGER, "operation": "Apply", "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1", "fieldsV1": fields_ours
        })];
        managed.push(json!({
            "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
            "subresource": "status", "fieldsType": "FieldsV1",
            "fieldsV1": { "f:status": { "f:replicas": {} } }
        }));
        if let Some(theirs) = fields_theirs {
            managed.push(json!({
                "manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1", "fieldsV1": theirs
            }));
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

    fn data(object: &DynamicObject) -> Value {
        object.data.clone()
    }

    /// What the API server defaulted goes; what the operator applied and the status stay.
    #[test]
    fn a_child_keeps_only_its_owned_fields_and_its_status() {
        let mut object = live(
            json!({ "f:spec": { "f:replicas": {}, "f:template": { "f:spec": {
                "f:containers": { "k:{\"name\":\"postgres\"}": {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": { "k:{\"containerPort\":5432,\"protocol\":\"TCP\"}": { ".": {}, "f:containerPort": {} } },
                    "f:args": {} } } } } } }),
            None,
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
            }),
        );
        slim(&mut object);
        assert_eq!(
            data(&object),
            json!({
                "spec": { "replicas": 1, "template": { "spec": { "containers": [{
                    "name": "postgres", "image": "postgres:17",
                    "ports": [{ "containerPort": 5432 }], "args": ["-c", "x"]
                }] } } },
                "status": { "replicas": 1, "readyReplicas": 1 }
            })
        );
        assert!(
            object
                .metadata
                .managed_fields
                .as_ref()
                .is_none_or(Vec::is_empty)
        );
    }

    /// Others' spec fields are kept (with their managedFields entry) for takeback to judge.
    #[test]
    fn others_spec_fields_stay_for_takeback() {
        let mut object = live(
            json!({ "f:spec": { "f:replicas": {} } }),
            Some(json!({ "f:spec": { "f:minReadySeconds": {} } })),
            json!({ "spec": { "replicas": 1, "minReadySeconds": 30, "serviceName": "db" } }),
        );
        slim(&mut object);
        assert_eq!(
            data(&object),
            json!({ "spec": { "replicas": 1, "minReadySeconds": 30 } })
        );
        let kept: Vec<_> = object
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|e| e.manager.clone())
            .collect();
        assert_eq!(kept, ["kubectl-edit"]);
    }

    /// A field another writer took over is no longer this manager's: it is missing from the
    /// cached copy, so the compare applies the object again.
    #[test]
    fn a_field_taken_over_by_someone_else_is_not_kept_as_ours() {
        let mut object = live(
            json!({ "f:spec": { "f:replicas": {} } }),
            Some(json!({ "f:metadata": { "f:annotations": { "f:note": {} } } })),
            json!({ "spec": { "replicas": 3, "serviceName": "db" } }),
        );
        // replicas now belongs to nobody we keep: pretend another manager took it.
        object.metadata.managed_fields.as_mut().unwrap()[0].fields_v1 =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                json!({ "f:spec": { "f:serviceName": {} } }),
            ));
        slim(&mut object);
        assert_eq!(data(&object), json!({ "spec": { "serviceName": "db" } }));
    }

    /// An object without any entry of this manager is kept whole.
    #[test]
    fn an_object_made_by_someone_else_is_kept_whole() {
        let mut object = live(json!({}), None, json!({ "spec": { "replicas": 3 } }));
        object.metadata.managed_fields.as_mut().unwrap().remove(0);
        slim(&mut object);
        assert_eq!(data(&object), json!({ "spec": { "replicas": 3 } }));
    }

    #[test]
    fn set_items_are_kept_by_value() {
        let fields = json!({ "f:drop": { "v:\"ALL\"": {} } });
        let value = json!({ "drop": ["ALL", "NET_RAW"] });
        assert_eq!(project(value, &fields), json!({ "drop": ["ALL"] }));
    }
}
