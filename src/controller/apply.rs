//! Server-side apply of the desired set, with one field manager, skipping every object whose
//! live copy (from the watch stores) already has each desired field: a quiet cluster costs
//! no requests at all. Plus the three things apply cannot do: create the credentials once,
//! grow the database claim, and prune what a switched-off feature no longer wants.

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::apply_body::apply_patch;
use super::children::{Kind, Stores};
use super::{credentials, ownership, slim, takeback};
use crate::error::Result;
use crate::resources::labels::{MANAGER, OWNER_UID};
use crate::resources::{Desired, database, roles};

/// What one apply pass did, for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Objects written (created or changed).
    pub written: usize,
    /// The kind of each object written.
    pub written_kinds: Vec<String>,
    /// Objects already right, not sent.
    pub unchanged: usize,
    /// Objects deleted because no longer wanted.
    pub pruned: usize,
    /// Objects the API server refused (the others were still applied).
    pub refused: Vec<Refusal>,
}

/// An object the API server refused to take as desired: its kind, name and the reason in the
/// API server's words (which name the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The API server's message.
    pub message: String,
}

/// Whether an API error refuses this object for good (until the spec changes or a webhook is
/// fixed), rather than a moment's trouble: a 4xx other than a conflict or throttling, a 500
/// for an object the API server cannot decode, or a 500 of a failing admission webhook.
fn refusal(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(status)
            if (400..500).contains(&status.code) && !matches!(status.code, 409 | 429) =>
        {
            Some(status.message.clone())
        }
        // A value the API server cannot even decode (an unparsable quantity) comes back as a
        // 500 before validation runs; it fails the same way every time.
        kube::Error::Api(status)
            if status.code == 500 && status.message.starts_with("failed to convert new object") =>
        {
            Some(status.message.clone())
        }
        // An admission webhook that cannot be reached or answers too late fails the object
        // the same way until it is fixed: reported, not a failure of the whole system.
        kube::Error::Api(status)
            if status.code == 500 && status.message.contains("failed calling webhook") =>
        {
            Some(status.message.clone())
        }
        _ => None,
    }
}

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
fn same_object(live: &Value, desired: &Value) -> bool {
    match desired.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "apiVersion" | "kind"))
            .all(|(key, d)| live.get(key).map_or(is_empty(d), |l| contains(l, d))),
        None => false,
    }
}

/// The annotation that records which desired object was last applied (see
/// [`stamp_fingerprint`]).
pub const FINGERPRINT: &str = "sdc.gov.rs/applied-fingerprint";

/// Records a fingerprint of the desired object on it. The compare with the live copy treats
/// the desired object as a subset, so on its own it cannot see a field that was removed
/// from the desired object; the fingerprint changes whenever anything is removed, so the
/// object is applied again, and server-side apply removes what this manager no longer sends.
/// Sets the annotation `key` of a manifest.
fn annotate(object: &mut Value, key: &str, value: &str) {
    let metadata = &mut object["metadata"];
    if !metadata["annotations"].is_object() {
        metadata["annotations"] = json!({});
    }
    metadata["annotations"][key] = Value::String(value.to_string());
}

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
pub(super) fn as_applied(namespace: &Namespace) -> Namespace {
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

/// FNV-1a, 64 bits: stable across Rust releases (unlike `DefaultHasher`), so a new
/// operator build does not rewrite every child of the fleet.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(super) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}

/// Applies `desired` for the HealthSystem `system_name` whose UID is `uid` (the builders
/// record it on every child). Nothing is written unless the namespace is this system's
/// ([`ownership`]); the credentials are created once; a kind that is not watched (the
/// monitoring kinds where their API is not served) is skipped.
pub async fn apply(
    client: &Client,
    stores: &Stores,
    system_name: &str,
    uid: &str,
    desired: &Desired,
) -> Result<Applied> {
    let mut applied = Applied::default();
    let namespace = desired.namespace.metadata.name.clone().unwrap_or_default();
    let created =
        ownership::ensure_namespace(client, stores, system_name, uid, &desired.namespace).await?;
    if created {
        applied.written += 1;
        applied.written_kinds.push("Namespace".into());
    }
    let mut wanted: HashSet<(String, String)> = HashSet::new();
    let mut writes: Vec<Write> = Vec::new();
    for mut object in desired.applied_manifests() {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        wanted.insert((format!("{api_version}/{kind}"), name.clone()));
        let Some((kind_info, _)) = stores.kind(&api_version, &kind) else {
            debug!(api_version, kind, name, "kind not served: skipped");
            continue;
        };
        if created && kind_info.resource.kind == "Namespace" {
            continue; // just created as it is applied
        }
        let cached = stores.get(&api_version, &kind, Some(&namespace), &name);
        let live = cached
            .as_ref()
            .map(|l| serde_json::to_value(&l.object).unwrap_or(Value::Null));
        prepare(&mut object, live.as_ref(), kind_info.keep_from_live);
        let foreign = kind_info.exact
            && live
                .as_ref()
                .is_some_and(|l| takeback::has_foreign_additions(l, &object));
        let same = match (&cached, &live) {
            // Slimmed: its owned fields as a digest, its metadata as values.
            (Some(cached), Some(live)) if cached.owned.is_some() => {
                cached.owned == Some(slim::owned_digest(&object))
                    && contains(&live["metadata"], &object["metadata"])
            }
            (_, Some(live)) => same_object(live, &object),
            _ => false,
        };
        if !foreign && same {
            applied.unchanged += 1;
            continue;
        }
        writes.push(Write {
            api: kind_api(client, kind_info, &namespace),
            api_version,
            kind,
            name,
            object,
            foreign,
        });
    }
    let created = futures::future::try_join_all(
        desired
            .database_secrets
            .iter()
            .map(|template| ensure_credentials(client, stores, template)),
    )
    .await?;
    for _ in created.into_iter().filter(|created| *created) {
        applied.written += 1;
        applied.written_kinds.push("Secret".into());
    }
    // What confines and configures pods (quota, limits, policies, accounts, credentials)
    // exists before the workloads that start them: those go last, and not at all after an
    // error. Within a stage the writes are independent, IN_FLIGHT at a time.
    let (first, workloads): (Vec<_>, Vec<_>) = writes
        .into_iter()
        .partition(|w| !STARTS_PODS.contains(&w.kind.as_str()));
    for stage in [first, workloads] {
        let results: Vec<Result<()>> = futures::stream::iter(&stage)
            .map(send)
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        for (write, result) in stage.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    applied.written += 1;
                    applied.written_kinds.push(write.kind);
                }
                // A refused object does not stop the others: it is reported in its subsystem.
                Err(crate::error::Error::Kube(e)) if refusal(&e).is_some() => {
                    let message = refusal(&e).unwrap_or_default();
                    warn!(
                        kind = write.kind,
                        name = write.name,
                        message,
                        "refused by the API server"
                    );
                    applied.refused.push(Refusal {
                        kind: write.kind,
                        name: write.name,
                        message,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
    if grow_data_claim(client, stores, &namespace, &desired.database).await? {
        applied.written += 1;
        applied.written_kinds.push("PersistentVolumeClaim".into());
    }
    applied.pruned += prune(client, stores, system_name, uid, &namespace, &wanted).await?;
    Ok(applied)
}

/// Makes a desired object ready to compare and send: its fingerprint, and the immutable
/// fields it must send back as they are live (`keep_from_live`).
fn prepare(object: &mut Value, live: Option<&Value>, keep_from_live: &[&str]) {
    // Before the copy: what is sent back as it is live never differs from it, and the
    // server's defaults in it would change the fingerprint once the object exists.
    stamp_fingerprint(object);
    for pointer in keep_from_live {
        if let Some(value) = live.and_then(|l| l.pointer(pointer))
            && let Some(slot) = object.pointer_mut(pointer)
        {
            *slot = value.clone();
        }
    }
}

/// The kinds that start pods: applied once everything else of the system exists.
const STARTS_PODS: &[&str] = &["StatefulSet", "Deployment", "CronJob", "Job"];

/// Writes of one system sent at once (the controller's concurrency multiplies it). The
/// leader's fence is checked as each one's body is written (`fence::FencedBody`), so writes
/// waiting for a connection while the replica is paused do not slip past it.
const IN_FLIGHT: usize = 8;

/// One object that differs from its live copy, ready to be sent.
struct Write {
    api: Api<DynamicObject>,
    api_version: String,
    kind: String,
    name: String,
    object: Value,
    foreign: bool,
}

/// Sends one write (taking back others' spec fields first when needed).
async fn send(write: &Write) -> Result<()> {
    if write.foreign {
        take_ownership(&write.api, &write.api_version, &write.name).await?;
    }
    self::write(&write.api, &write.name, &write.object).await
}

/// Server-side apply of one object. Force: these objects are ours alone, and a hand edit
/// (drift) must be taken back.
async fn write(api: &Api<DynamicObject>, name: &str, object: &Value) -> Result<()> {
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &apply_patch(object)?,
    )
    .await?;
    debug!(name, "applied");
    Ok(())
}

/// Makes this operator the owner of the spec fields others added to an object, so that the
/// apply that follows removes them ([`takeback`]). Guarded by the resourceVersion read.
async fn take_ownership(api: &Api<DynamicObject>, api_version: &str, name: &str) -> Result<()> {
    let live = serde_json::to_value(api.get(name).await?).unwrap_or_default();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let patch = json!({ "metadata": {
        "resourceVersion": live["metadata"]["resourceVersion"],
        "managedFields": takeback::transfer(&entries, api_version),
    } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    info!(api_version, name, "taking back spec fields others added");
    Ok(())
}

/// The API of a managed kind, in `namespace` unless the kind is cluster-scoped.
fn kind_api(client: &Client, kind: &Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(client.clone(), namespace, &kind.resource)
    } else {
        Api::all_with(client.clone(), &kind.resource)
    }
}

/// Creates a credentials Secret with a freshly generated password when it does not exist.
/// An existing Secret is never written: not after a restart, a crash mid-reconcile, nor when
/// the HealthSystem is re-created. The application's Secret is created only for a database
/// never initialised (no data claim): one missing beside the data is never replaced, as the
/// database was made with the old password (status says `CredentialsMissing`). The other
/// roles' Secrets are created whenever missing: the database takes their passwords on every
/// start ([`roles`]).
async fn ensure_credentials(client: &Client, stores: &Stores, template: &Secret) -> Result<bool> {
    let namespace = template.namespace().unwrap_or_default();
    let name = template.name_any();
    if stores
        .get("v1", "Secret", Some(&namespace), &name)
        .is_some()
    {
        return Ok(false);
    }
    let data_claim = database::data_claim_name();
    let regenerable = roles::ALL
        .iter()
        .any(|role| role.secret == name && role.regenerable());
    if !regenerable
        && stores
            .get("v1", "PersistentVolumeClaim", Some(&namespace), &data_claim)
            .is_some()
    {
        warn!(
            namespace,
            claim = data_claim,
            "credentials Secret missing beside the data: no new password is generated"
        );
        return Ok(false);
    }
    let mut secret = template.clone();
    let mut data: BTreeMap<String, ByteString> = secret
        .string_data
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.into_bytes())))
        .collect();
    data.insert(
        database::PASSWORD_KEY.to_string(),
        ByteString(credentials::password()?.into_bytes()),
    );
    secret.data = Some(data);
    let api = Api::<Secret>::namespaced(client.clone(), &namespace);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, &secret).await {
        Ok(_) => {
            info!(namespace, secret = name, "database credentials generated");
            Ok(true)
        }
        // Created by an earlier pass whose watch event has not arrived yet: keep it.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Grows the database claim to the requested size (claim templates cannot change, the
/// claim can); the API server refuses any shrink, and so does admission before it.
async fn grow_data_claim(
    client: &Client,
    stores: &Stores,
    namespace: &str,
    desired: &k8s_openapi::api::apps::v1::StatefulSet,
) -> Result<bool> {
    let wanted = desired
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|t| t.first())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    let claim_name = database::data_claim_name();
    let Some(live) = stores.get("v1", "PersistentVolumeClaim", Some(namespace), &claim_name) else {
        return Ok(false);
    };
    let current = live
        .data
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str);
    match wanted {
        Some(wanted) if current != Some(wanted.as_str()) => {
            let api = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
                client.clone(),
                namespace,
            );
            let patch = json!({ "spec": { "resources": { "requests": { "storage": wanted } } } });
            api.patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            info!(
                namespace,
                claim = claim_name,
                size = wanted,
                "database claim resized"
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Deletes our objects in the system's namespace that the desired set no longer has (a
/// feature switched off): only those that carry this system's UID, and only prunable kinds:
/// never the namespace, a claim, a Secret or a Job.
async fn prune(
    client: &Client,
    stores: &Stores,
    system_name: &str,
    uid: &str,
    namespace: &str,
    wanted: &HashSet<(String, String)>,
) -> Result<usize> {
    let mut pruned = 0;
    for (kind, cache) in stores.all() {
        if !kind.prunable {
            continue;
        }
        let key = format!("{}/{}", kind.resource.api_version, kind.resource.kind);
        for object in cache.of_system(system_name) {
            let ours = object.annotations().get(OWNER_UID).map(String::as_str) == Some(uid);
            let here = object.namespace().as_deref() == Some(namespace);
            if !ours || !here || wanted.contains(&(key.clone(), object.name_any())) {
                continue;
            }
            let api = kind_api(client, kind, namespace);
            match api
                .delete(&object.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    info!(
                        namespace,
                        kind = kind.resource.kind,
                        name = object.name_any(),
                        "pruned"
                    );
                    pruned += 1;
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(pruned)
}

/// Server-side applies one object of ours outside the systems' namespaces (the restore
/// namespace's drill policy, a bootstrap's login and policy), as the operator's field manager.
pub async fn apply_one<K>(client: &Client, object: &K) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), &namespace)
        .patch(
            &object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &apply_patch(&crate::resources::manifest(object))?,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace created `as_applied` is exactly what the apply would send: skipping that
    /// apply after the create loses nothing, and the next compare finds it the same.
    #[test]
    fn a_namespace_created_as_applied_is_what_the_apply_sends() {
        let system = crate::api::validation::validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
            "metadata": { "name": "lab-test", "uid": "u1" },
            "spec": {
                "institution": { "displayName": "Lab", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "16", "storage": "10Gi" }
            }
        }))
        .unwrap();
        let desired = Desired::build(&system, &crate::config::Config::default());
        let mut sent = desired.applied_manifests().remove(0);
        assert_eq!(sent["kind"], "Namespace");
        prepare(&mut sent, None, &[]);
        let created = crate::resources::manifest(&as_applied(&desired.namespace));
        assert_eq!(created, sent);
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "")
                .with_code(code)
                .boxed(),
        )
    }

    /// Issue 12, defect 1: an unparsable quantity in a child makes the API server answer 500
    /// ("failed to convert new object"), not 4xx: it is as final as a 4xx and must be
    /// reported, not retried every 10 s with no status at all.
    #[test]
    fn a_child_the_api_server_cannot_convert_is_a_refusal() {
        let convert = "failed to convert new object (ns/application; apps/v1, Kind=Deployment) to proper version: unable to convert unstructured object to apps/v1, Kind=Deployment: quantities must match the regular expression";
        assert!(refusal(&api_error(500, convert)).is_some());
        assert!(refusal(&api_error(422, "invalid")).is_some());
        assert!(refusal(&api_error(500, "etcdserver: request timed out")).is_none());
        assert!(refusal(&api_error(409, "conflict")).is_none());
        assert!(refusal(&api_error(429, "slow down")).is_none());
    }

    /// Issue 16: an admission webhook that cannot be reached or answers too late fails the
    /// object with a 500 every time until the webhook is fixed: like a refusal, it is
    /// reported in its subsystem with the API server's words, the rest is applied, and it is
    /// retried with a growing delay, instead of failing the whole system every 10 s.
    #[test]
    fn a_failing_admission_webhook_is_a_refusal() {
        let late = r#"Internal error occurred: failed calling webhook "networkpolicies.policy.sdc": failed to call webhook: Post "https://policy.sdc:443/validate?timeout=3s": context deadline exceeded"#;
        assert!(refusal(&api_error(500, late)).is_some());
    }

    /// Issue 15: every new StatefulSet was written twice. The API server defaults its claim
    /// templates; the next pass copies them from the live object (they are immutable) and
    /// the fingerprint, taken after the copy, no longer matched the one applied. Fields sent
    /// back as they are live take no part in the fingerprint.
    #[test]
    fn a_new_statefulset_is_not_written_again_for_its_defaulted_claim_templates() {
        let keep = &["/spec/volumeClaimTemplates"];
        let desired = json!({ "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": { "name": "database" },
            "spec": { "replicas": 1, "volumeClaimTemplates": [{ "metadata": { "name": "data" },
                "spec": { "resources": { "requests": { "storage": "10Gi" } } } }] } });
        let mut first = desired.clone();
        prepare(&mut first, None, keep);
        // What the API server keeps: the object as applied, its claim template defaulted.
        let mut live = first.clone();
        live["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] = json!("Filesystem");
        live["spec"]["volumeClaimTemplates"][0]["status"] = json!({ "phase": "Pending" });
        let mut again = desired.clone();
        prepare(&mut again, Some(&live), keep);
        assert!(same_object(&live, &again), "{again:#}");
    }

    #[test]
    fn contains_ignores_what_others_added() {
        let live = json!({ "metadata": { "name": "a", "uid": "1", "labels": { "x": "1", "y": "2" } }, "spec": { "ports": [{ "port": 1, "protocol": "TCP" }] } });
        assert!(contains(
            &live,
            &json!({ "metadata": { "labels": { "x": "1" } }, "spec": { "ports": [{ "port": 1 }] } })
        ));
        assert!(!contains(
            &live,
            &json!({ "metadata": { "labels": { "x": "2" } } })
        ));
        assert!(!contains(
            &live,
            &json!({ "spec": { "ports": [{ "port": 1 }, { "port": 2 }] } })
        ));
        assert!(!contains(&live, &json!({ "spec": { "missing": 1 } })));
    }

    #[test]
    fn the_fingerprint_changes_when_a_field_is_removed_and_only_then() {
        let mut wide = json!({ "metadata": { "name": "p" }, "spec": { "from": [{ "namespaceSelector": { "a": "1" }, "podSelector": { "b": "2" } }] } });
        let mut narrow = json!({ "metadata": { "name": "p" }, "spec": { "from": [{ "podSelector": { "b": "2" } }] } });
        stamp_fingerprint(&mut wide);
        stamp_fingerprint(&mut narrow);
        let stamp = |v: &Value| v["metadata"]["annotations"][FINGERPRINT].clone();
        assert_ne!(stamp(&wide), stamp(&narrow));
        // The live wide object "contains" the narrow one: only the fingerprint tells.
        assert!(!contains(&wide, &narrow));
        let again = stamp(&narrow);
        stamp_fingerprint(&mut narrow);
        assert_eq!(
            stamp(&narrow),
            again,
            "stamping twice gives the same fingerprint"
        );
    }

    #[test]
    fn empty_desired_values_match_absent_fields() {
        let live = json!({ "spec": { "podSelector": {} } });
        assert!(contains(
            &live,
            &json!({ "spec": { "podSelector": {}, "ingress": [], "egress": [] } })
        ));
    }
}
