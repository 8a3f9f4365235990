//! HealthSystems in tests: created from an example under a name of their own, and waited on
//! until a condition holds.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::api::{Api, DeleteParams, PatchParams, PostParams};
use serde_json::{Value, json};

use healthsystem_operator::api::HealthSystem;

use crate::cluster::unique;
use crate::corpus::{read_manifest, root};
use crate::wait::until;

/// Applies `examples/EXAMPLE` under a new name starting with `prefix`, after `edit`, and
/// returns the name.
pub async fn create(
    client: &Client,
    prefix: &str,
    example: &str,
    edit: impl FnOnce(&mut Value),
) -> String {
    create_named(client, &unique(prefix), example, edit).await
}

/// Applies `examples/EXAMPLE` under the name `name`, after `edit`, and returns the name.
pub async fn create_named(
    client: &Client,
    name: &str,
    example: &str,
    edit: impl FnOnce(&mut Value),
) -> String {
    let name = name.to_string();
    let mut manifest = read_manifest(&root().join("examples").join(example));
    manifest["metadata"]["name"] = json!(name);
    edit(&mut manifest);
    Api::<HealthSystem>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply("tests"),
            // Escaped as the operator escapes its applies (a name may hold a control character).
            &healthsystem_operator::controller::apply::patch_body::apply_patch(&manifest).unwrap(),
        )
        .await
        .unwrap();
    name
}

/// Deletes `name` and waits until it is gone (its finalizer ran).
pub async fn delete_and_wait_gone(client: &Client, name: &str, timeout: Duration) {
    let api = Api::<HealthSystem>::all(client.clone());
    api.delete(name, &DeleteParams::default()).await.unwrap();
    until(&format!("HealthSystem {name} gone"), timeout, || async {
        match api.get_opt(name).await {
            Ok(None) => Ok(()),
            other => Err(format!(
                "{:?}",
                other.map(|s| s.map(|s| s.metadata.finalizers))
            )),
        }
    })
    .await;
}

/// The condition `type_` of `system`, if reported.
pub fn condition<'a>(system: &'a HealthSystem, type_: &str) -> Option<&'a Condition> {
    system
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Waits until the condition `type_` of `name` has `status`, and returns the system.
pub async fn wait_condition(
    client: &Client,
    name: &str,
    type_: &str,
    status: &str,
) -> HealthSystem {
    let systems = Api::<HealthSystem>::all(client.clone());
    until(
        &format!("{name} {type_}={status}"),
        Duration::from_secs(180),
        || async {
            let system = systems.get(name).await.map_err(|e| e.to_string())?;
            match condition(&system, type_) {
                Some(c) if c.status == status => Ok(system),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// Waits until the condition `type_` of `name` has the reason `reason`, within `timeout`;
/// returns the system and that condition.
pub async fn wait_reason(
    client: &Client,
    name: &str,
    type_: &str,
    reason: &str,
    timeout: Duration,
) -> (HealthSystem, Condition) {
    let systems = Api::<HealthSystem>::all(client.clone());
    until(&format!("{name} {type_} {reason}"), timeout, || async {
        let system = systems.get(name).await.map_err(|e| e.to_string())?;
        match condition(&system, type_) {
            Some(c) if c.reason == reason => {
                let c = c.clone();
                Ok((system, c))
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Waits until `name` is Ready.
pub async fn wait_ready(client: &Client, name: &str) -> HealthSystem {
    wait_condition(client, name, "Ready", "True").await
}

/// What `kubectl create job --from=cronjob/backup` does: a Job from the backup CronJob's
/// template (labels included), optionally managed by someone other than the Job controller.
pub async fn create_backup_job(
    client: &Client,
    namespace: &str,
    name: &str,
    managed_by: Option<&str>,
) {
    let cron = Api::<CronJob>::namespaced(client.clone(), namespace)
        .get("backup")
        .await
        .unwrap();
    let template = cron.spec.job_template;
    let mut spec = template.spec.unwrap();
    spec.managed_by = managed_by.map(String::from);
    let job = Job {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    };
    Api::<Job>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
}

/// Creates a Job from the backup CronJob (as [`create_backup_job`]) and waits until it
/// finished: whether it succeeded, and the `backup` container's logs of its pods, the
/// succeeded one last (a Job may have retried).
pub async fn run_backup_job(client: &Client, namespace: &str, job: &str) -> (bool, String) {
    create_backup_job(client, namespace, job, None).await;
    let jobs = Api::<Job>::namespaced(client.clone(), namespace);
    let succeeded = until(
        &format!("backup Job {namespace}/{job} finished"),
        Duration::from_secs(1800),
        || async {
            let status = jobs
                .get(job)
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            let has = |type_: &str| {
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == type_ && c.status == "True")
            };
            match (has("Complete"), has("Failed")) {
                (false, false) => Err(format!("{status:?}")),
                (complete, _) => Ok(complete),
            }
        },
    )
    .await;
    (succeeded, job_logs(client, namespace, job).await)
}

/// The `backup` container's logs of the Job's pods, the succeeded one last.
async fn job_logs(client: &Client, namespace: &str, job: &str) -> String {
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace);
    let mut list = pods
        .list(&kube::api::ListParams::default().labels(&format!("job-name={job}")))
        .await
        .unwrap()
        .items;
    list.sort_by_key(|p| {
        p.status.as_ref().and_then(|s| s.phase.clone()).as_deref() == Some("Succeeded")
    });
    let mut out = String::new();
    for pod in list {
        let name = pod.metadata.name.unwrap_or_default();
        let params = kube::api::LogParams {
            container: Some("backup".into()),
            ..Default::default()
        };
        out.push_str(
            &pods
                .logs(&name, &params)
                .await
                .unwrap_or_else(|e| e.to_string()),
        );
    }
    out
}

/// `Ok` with its message once a Warning event with `reason` was published about the
/// HealthSystem `name` (for [`until`]); `Err` names the reasons seen so far.
pub async fn has_warning(client: &Client, name: &str, reason: &str) -> Result<String, String> {
    let events = Api::<k8s_openapi::api::core::v1::Event>::all(client.clone())
        .list(&kube::api::ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .map_err(|e| e.to_string())?;
    events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
        .map(|e| e.message.clone().unwrap_or_default())
        .ok_or_else(|| {
            let seen: Vec<_> = events.items.iter().map(|e| e.reason.clone()).collect();
            format!("events: {seen:?}")
        })
}

/// SQL that makes the table `records` of `mib` × 1024 rows of about 1 KiB each (64 Ki rows
/// per statement), to time backups and drills of a database of about that size.
pub fn fill_sql(mib: u64) -> String {
    let rows = mib * 1024;
    let mut sql = String::from("CREATE TABLE records (id bigint PRIMARY KEY, body text); ");
    let mut start = 1;
    while start <= rows {
        let end = (start + 64 * 1024 - 1).min(rows);
        sql.push_str(&format!(
            "INSERT INTO records SELECT g, (SELECT string_agg(md5(g::text || ':' || i::text), '') \
             FROM generate_series(1, 30) i) FROM generate_series({start}, {end}) g; "
        ));
        start = end + 1;
    }
    sql
}
