//! One-shot pods on the real node: a script in one of the node's images, run under Pod
//! Security `restricted` as uid 999, its output read back through the API server (the
//! kubelet's log endpoint).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, Pod, PodSecurityContext, PodSpec,
    SeccompProfile, SecretEnvSource, SecurityContext, Volume, VolumeMount,
};
use kube::Client;
use kube::api::{Api, DeleteParams, LogParams, ObjectMeta, PostParams};

use crate::wait::until;

/// What a one-shot pod runs.
pub struct Script<'a> {
    /// Namespace and name of the pod.
    pub namespace: &'a str,
    pub name: &'a str,
    /// Labels: what NetworkPolicies select it by.
    pub labels: BTreeMap<String, String>,
    /// The image (a variable of images.env).
    pub image: String,
    /// The bash script.
    pub script: String,
    /// Secret whose keys become environment variables (the credentials), if any.
    pub env_from_secret: Option<&'a str>,
    /// Claim mounted at /backups, if any.
    pub claim: Option<&'a str>,
}

/// Labels of `component` of the system `name`, as the operator's own pods carry them.
pub fn component_labels(name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sdc.gov.rs/healthsystem".to_string(), name.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

fn pod(s: &Script) -> Pod {
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    if let Some(claim) = s.claim {
        mounts.push(VolumeMount {
            name: "backups".into(),
            mount_path: "/backups".into(),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "backups".into(),
            persistent_volume_claim: Some(
                k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                },
            ),
            ..Volume::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(s.name.into()),
            namespace: Some(s.namespace.into()),
            labels: Some(s.labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(1),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(999),
                run_as_group: Some(999),
                fs_group: Some(999),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: "script".into(),
                image: Some(s.image.clone()),
                command: Some(vec!["/bin/bash".into(), "-c".into(), s.script.clone()]),
                env_from: s.env_from_secret.map(|secret| {
                    vec![EnvFromSource {
                        secret_ref: Some(SecretEnvSource {
                            name: secret.into(),
                            optional: Some(false),
                        }),
                        ..EnvFromSource::default()
                    }]
                }),
                volume_mounts: Some(mounts),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Capabilities::default()
                    }),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// A client of the system `system` (labelled as its application, so its policies let it in)
/// that logs in with the credentials Secret through the `database` Service, once a login
/// works, and runs `sql` with psql, printing results unaligned.
pub fn psql_client<'a>(namespace: &'a str, name: &'a str, system: &str, sql: &str) -> Script<'a> {
    psql_as(namespace, name, system, "database-credentials", sql)
}

/// Like `psql_client`, logged in with the credentials of the Secret `secret` (one of the
/// database's roles) instead of the application's.
pub fn psql_as<'a>(
    namespace: &'a str,
    name: &'a str,
    system: &str,
    secret: &'a str,
    sql: &str,
) -> Script<'a> {
    client(
        namespace,
        name,
        system,
        secret,
        "",
        &format!("psql -v ON_ERROR_STOP=1 -tA -c \"{sql}\""),
    )
}

/// A client of the system labelled as its application, logged in as the role of `secret`
/// (its keys: host, port, username, database, password) with `verify-full` against the CA
/// certificate `ca` (the Cluster's), then running `body`.
pub fn login<'a>(
    namespace: &'a str,
    name: &'a str,
    system: &str,
    secret: &'a str,
    ca: &str,
    body: &str,
) -> Script<'a> {
    client(
        namespace,
        name,
        system,
        secret,
        &format!(
            "cat >/tmp/ca.crt <<'PEM'\n{ca}PEM\nexport PGSSLMODE=verify-full PGSSLROOTCERT=/tmp/ca.crt\n"
        ),
        body,
    )
}

/// A pod labelled as the system's application with libpq's variables from the Secret
/// `secret`: after `prelude`, it waits until a login works, then runs `body`.
fn client<'a>(
    namespace: &'a str,
    name: &'a str,
    system: &str,
    secret: &'a str,
    prelude: &str,
    body: &str,
) -> Script<'a> {
    Script {
        namespace,
        name,
        labels: component_labels(system, "application"),
        image: crate::node::image("HS_IMAGE_POSTGRES15"),
        script: format!(
            "{prelude}export PGHOST=$host PGPORT=$port PGUSER=$username PGDATABASE=$database \
             PGPASSWORD=$password\n\
             for i in $(seq 1 60); do psql -c 'select 1' >/dev/null 2>&1 && break; sleep 1; done\n\
             {body}"
        ),
        env_from_secret: Some(secret),
        claim: None,
    }
}

/// A pod in `namespace` (Prometheus' namespace, which the database's policy lets scrape)
/// that fetches `http://<target>:9187/metrics` with bash's /dev/tcp until a line starts with
/// `ready`, then prints the lines starting with `prefix`.
pub fn scraper<'a>(
    namespace: &'a str,
    name: &'a str,
    target: &str,
    ready: &str,
    prefix: &str,
) -> Script<'a> {
    Script {
        namespace,
        name,
        labels: BTreeMap::new(),
        image: crate::node::image("HS_IMAGE_POSTGRES15"),
        script: format!(
            "scrape() {{ exec 3<>/dev/tcp/{target}/9187 && \
               printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3 >/tmp/metrics; }}\n\
             for i in $(seq 1 60); do\n\
               (scrape) 2>/dev/null && grep -q '^{ready}' /tmp/metrics && break\n\
               sleep 1\n\
             done\n\
             grep '^{prefix}' /tmp/metrics"
        ),
        env_from_secret: None,
        claim: None,
    }
}

/// What the last statement of a psql script printed.
pub fn last_line(output: &str) -> &str {
    output.trim().lines().last().unwrap_or_default()
}

/// Runs the script to its end and returns whether it succeeded, and its output.
pub async fn run(client: &Client, script: Script<'_>) -> (bool, String) {
    let pods = Api::<Pod>::namespaced(client.clone(), script.namespace);
    pods.create(&PostParams::default(), &pod(&script))
        .await
        .unwrap_or_else(|e| panic!("pod {}/{}: {e}", script.namespace, script.name));
    let phase = until(
        &format!("pod {}/{} finished", script.namespace, script.name),
        Duration::from_secs(300),
        || async {
            let pod = pods.get(script.name).await.map_err(|e| e.to_string())?;
            let status = pod.status.unwrap_or_default();
            match status.phase.as_deref() {
                Some(phase @ ("Succeeded" | "Failed")) => Ok(phase.to_string()),
                other => Err(format!("{other:?} {:?}", status.container_statuses)),
            }
        },
    )
    .await;
    let logs = pods
        .logs(script.name, &LogParams::default())
        .await
        .unwrap_or_else(|e| format!("(no logs: {e})"));
    let _ = pods.delete(script.name, &DeleteParams::default()).await;
    (phase == "Succeeded", logs)
}

/// Runs the script and panics with its output unless it succeeded.
pub async fn run_ok(client: &Client, script: Script<'_>) -> String {
    let what = format!("{}/{}", script.namespace, script.name);
    let (ok, logs) = run(client, script).await;
    assert!(ok, "pod {what} failed:\n{logs}");
    logs
}

/// A shell function for scripts: `check NAME HOST PORT open|closed` tries a TCP connection
/// until the outcome has been the wanted one three times in a row (the policy agent needs a
/// moment to learn a new pod's address) or 60 s have passed, then prints `NAME OUTCOME`.
pub const CHECK: &str = r#"
check() {
  name=$1 host=$2 port=$3 want=$4 streak=0 got=none
  end=$(( $(date +%s) + 60 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    if nc -z -w 2 "$host" "$port" 2>/dev/null; then got=open; else got=closed; fi
    if [ "$got" = "$want" ]; then
      streak=$((streak + 1))
      if [ "$streak" -ge 3 ]; then break; fi
    else
      streak=0
    fi
    sleep 0.5
  done
  echo "$name $got"
}
"#;

/// The outcomes a script of `check` calls printed, by name.
pub fn outcomes(logs: &str) -> BTreeMap<String, String> {
    logs.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}
