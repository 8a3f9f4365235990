//! Server-side apply of the desired set, with one field manager, skipping every object whose
//! live copy (from the watch stores) already has each desired field: a quiet cluster costs
//! no requests at all. Plus the three things apply cannot do, each in a file of its own:
//! create the credentials once (`database::credentials`), grow the database claim
//! (`database::claim_growth`), and prune what a switched-off feature no longer wants
//! (`prune`).

pub mod compare;
pub mod fingerprint;
pub mod ownership;
pub mod patch_body;
pub mod prune;
pub mod takeback;

use std::collections::HashSet;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::controller::apply::compare::{contains, same_object};
use crate::controller::apply::fingerprint::stamp_fingerprint;
use crate::controller::apply::patch_body::apply_patch;
use crate::controller::cache::kinds::{self, Stores};
use crate::controller::cache::owned_fields;
use crate::controller::database::claim_growth;
use crate::controller::database::credentials::{self, Ensured};
use crate::controller::database::credentials_seen::{CredentialsSeen, Seen};
use crate::error::{AtStep, Error, Result, Step};
use crate::resources::Desired;
use crate::resources::labels::MANAGER;

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
    /// Workloads not applied yet: the namespace's quota, or the operator's access to its
    /// credentials, is not in force.
    pub workloads_held: bool,
    /// The credentials Secrets that exist after this pass (their keys); `None` when they
    /// could not be read (the operator's access to them is not in force yet).
    pub credentials: Option<Seen>,
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
    credentials_seen: &CredentialsSeen,
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
            if !kinds::is_declared(&api_version, &kind) {
                return Err(Error::UndeclaredKind(format!(
                    "{api_version}/{kind} {name}"
                )));
            }
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
                cached.owned == Some(owned_fields::owned_digest(&object))
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
            api: kind_info.api(client, &namespace),
            api_version,
            kind,
            name,
            object,
            foreign,
        });
    }
    // What confines and configures pods (quota, limits, policies, accounts, the operator's
    // access to its credentials) exists before the credentials, and those before the workloads
    // that start pods: workloads go last, and not at all after an error. Within a stage the
    // writes are independent, IN_FLIGHT at a time.
    let (first, workloads): (Vec<_>, Vec<_>) = writes
        .into_iter()
        .partition(|w| !STARTS_PODS.contains(&w.kind.as_str()));
    send_stage(first, &mut applied).await?;
    let seen = credentials_seen
        .look(client, &namespace, system_name, created)
        .await?;
    let Ok(mut seen) = seen else {
        // The operator's RoleBinding that lets it read them is not in force yet.
        applied.workloads_held = true;
        return Ok(applied);
    };
    let ensured = futures::future::try_join_all(
        desired
            .database_secrets
            .iter()
            .map(|template| credentials::ensure_credentials(client, stores, &seen, template)),
    )
    .await?;
    for (template, ensured) in desired.database_secrets.iter().zip(ensured) {
        let name = template.name_any();
        match ensured {
            Ensured::Created(keys) => {
                applied.written += 1;
                applied.written_kinds.push("Secret".into());
                credentials_seen.record(&namespace, &name, keys.clone());
                seen.insert(&name, keys);
            }
            Ensured::FoundOnCreate(keys) => {
                credentials_seen.record(&namespace, &name, keys.clone());
                seen.insert(&name, keys);
            }
            Ensured::Existing | Ensured::Withheld => {}
        }
    }
    applied.credentials = Some(seen);
    // Looked at after the first stage: the quota it created may be in force by now (its
    // status arrives through the watch), and then the workloads follow in this same pass.
    if !workloads.is_empty() && !quota_in_force(stores, &namespace) {
        debug!(
            namespace,
            "quota not in force yet: workloads wait for its status"
        );
        applied.workloads_held = true;
    } else {
        send_stage(workloads, &mut applied).await?;
    }
    // A Cluster grows its own claims when its storage size grows.
    if let Some(database) = &desired.database
        && claim_growth::grow_data_claim(client, stores, &namespace, database).await?
    {
        applied.written += 1;
        applied.written_kinds.push("PersistentVolumeClaim".into());
    }
    applied.pruned += prune::prune(client, stores, system_name, uid, &namespace, &wanted).await?;
    Ok(applied)
}

/// Sends the writes of one stage, IN_FLIGHT at a time, and records what became of each: a
/// refused object is reported in its subsystem and does not stop the others; any other error
/// ends the pass.
async fn send_stage(stage: Vec<Write>, applied: &mut Applied) -> Result<()> {
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
            Err(e) if e.kube().and_then(refusal).is_some() => {
                let message = e.kube().and_then(refusal).unwrap_or_default();
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
    Ok(())
}

/// Whether the namespace's quota is enforced. Admission counts pods against a quota only once
/// the quota controller has published its status (`status.hard`): pods created in the moment
/// between a new quota and its status are admitted past it (27 under a quota of 20 were seen).
fn quota_in_force(stores: &Stores, namespace: &str) -> bool {
    stores
        .get(
            "v1",
            "ResourceQuota",
            Some(namespace),
            crate::resources::namespace::QUOTA,
        )
        .is_some_and(|quota| {
            quota
                .data
                .pointer("/status/hard")
                .and_then(Value::as_object)
                .is_some_and(|hard| !hard.is_empty())
        })
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
const STARTS_PODS: &[&str] = &["StatefulSet", "Cluster", "Deployment", "CronJob", "Job"];

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
    .await
    .at(
        Step::Apply,
        format!("{} {name}", object["kind"].as_str().unwrap_or_default()),
    )?;
    debug!(name, "applied");
    Ok(())
}

/// Makes this operator the owner of the spec fields others added to an object, so that the
/// apply that follows removes them ([`takeback`]). Guarded by the resourceVersion read.
async fn take_ownership(api: &Api<DynamicObject>, api_version: &str, name: &str) -> Result<()> {
    let what = format!("{api_version} {name}");
    let live =
        serde_json::to_value(api.get(name).await.at(Step::TakeBack, &what)?).unwrap_or_default();
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
        .await
        .at(Step::TakeBack, &what)?;
    info!(api_version, name, "taking back spec fields others added");
    Ok(())
}

/// Server-side applies one object of ours outside the systems' namespaces (the restore
/// namespace's drill policy, a bootstrap's login and policy), as the operator's field manager,
/// for `step`. Its kind must be declared in the registry like every child's.
pub async fn apply_one<K>(client: &Client, object: &K, step: Step) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let what = format!("{} {}", K::kind(&()), object.name_any());
    if !kinds::is_declared(&K::api_version(&()), &K::kind(&())) {
        return Err(Error::UndeclaredKind(what));
    }
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), &namespace)
        .patch(
            &object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &apply_patch(&crate::resources::manifest(object))?,
        )
        .await
        .at(step, what)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::apply::fingerprint::{FINGERPRINT, as_applied};

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

    /// An unparsable quantity in a child makes the API server answer 500
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

    /// An admission webhook that cannot be reached or answers too late fails the
    /// object with a 500 every time until the webhook is fixed: like a refusal, it is
    /// reported in its subsystem with the API server's words, the rest is applied, and it is
    /// retried with a growing delay, instead of failing the whole system every 10 s.
    #[test]
    fn a_failing_admission_webhook_is_a_refusal() {
        let late = r#"Internal error occurred: failed calling webhook "networkpolicies.policy.sdc": failed to call webhook: Post "https://policy.sdc:443/validate?timeout=3s": context deadline exceeded"#;
        assert!(refusal(&api_error(500, late)).is_some());
    }

    /// Every new StatefulSet was written twice. The API server defaults its claim
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
