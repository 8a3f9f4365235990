//! Faults while systems converge.
//! - Operator kills: the operator is killed (SIGKILL, no chance to finish anything) at random
//!   moments and started again. A watch that runs from the start records every password each
//!   credentials Secret ever had and every UID each namespace and claim ever had. Expected:
//!   every system Ready, exactly one password per Secret ever, no namespace or claim deleted
//!   or replaced, exactly one of each workload, no panic in the operator's log.
//! - A frozen API server and a stalled etcd (SIGSTOP for seconds, then SIGCONT): requests and
//!   watches hang and time out. Expected: the operator recovers by itself, every system is
//!   Ready, and once idle it writes nothing.
//! - API server and etcd restarts (killed, down for seconds, started again by
//!   `testenv/cluster.sh`), while systems converge and while idle. Expected: the operator
//!   process never exits, its /readyz says 503 while the API server is down, every system
//!   converges, nothing is written while idle, and its watches are back (a new system
//!   converges, a deleted child comes back).
//! - An admission webhook (served by the test) refusing, timing out or answering slowly for
//!   some systems' NetworkPolicies. Expected: the refusals land in NetworkIsolated with the
//!   API server's words, retries come further apart, every other system becomes Ready.
//!
//! The tests take turns (one operator, one cluster).
//!
//! Short by default (CI); the long runs are `CHAOS_SYSTEMS=200 CHAOS_KILLS=30 cargo test
//! --test chaos -- --nocapture kills` and `CHAOS_SYSTEMS=200 CHAOS_API_RESTARTS=10
//! CHAOS_ETCD_RESTARTS=3 cargo test --test chaos -- --nocapture restarts` (figures in the
//! README). `CHAOS_SEED` replays the kill moments of a run (each run prints its seed).

use healthsystem_test_support::cluster;
use healthsystem_test_support::operator;
use healthsystem_test_support::settings;
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;
use healthsystem_test_support::webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use settings::setting;

/// What the watches saw: per object (namespace/name), the values of interest it ever had,
/// and the objects seen deleted.
#[derive(Default)]
struct History {
    values: BTreeMap<String, BTreeSet<String>>,
    deleted: BTreeSet<String>,
}

/// Watches every object of kind `K` the operator manages, recording `value(object)` (a
/// password, a UID) from the first event on.
fn record<K>(
    client: &Client,
    history: Arc<Mutex<History>>,
    value: fn(&K) -> Option<String>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let api = Api::<K>::all(client.clone());
    let config =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=healthsystem-operator");
    tokio::spawn(async move {
        let mut events = watcher::watcher(api, config).boxed();
        while let Ok(Some(event)) = events.try_next().await {
            let mut history = history.lock().unwrap();
            let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
            match event {
                Event::Apply(o) | Event::InitApply(o) => {
                    if let Some(v) = value(&o) {
                        history.values.entry(key(&o)).or_default().insert(v);
                    }
                }
                Event::Delete(o) => {
                    history.deleted.insert(key(&o));
                }
                Event::Init | Event::InitDone => {}
            }
        }
    })
}

/// How many objects of kind `K` the namespace holds.
async fn count<K>(client: &Client, namespace: &str) -> usize
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len()
}

/// A small deterministic generator for the kill moments (xorshift), so a seed replays a run.
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// One fault test at a time: they share the operator and the cluster.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn systems_converge_through_operator_kills_without_losing_or_regenerating_anything() {
    let _turn = TURN.lock().await;
    let systems_count = setting("CHAOS_SYSTEMS", 24) as usize;
    let kills = setting("CHAOS_KILLS", 6);
    let seed = setting(
        "CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    println!("chaos: {systems_count} systems, {kills} kills, CHAOS_SEED={seed}");
    let client = cluster::client().await;
    let log = operator::ensure_running(&client).await;

    let passwords = Arc::new(Mutex::new(History::default()));
    let claims = Arc::new(Mutex::new(History::default()));
    let namespaces = Arc::new(Mutex::new(History::default()));
    let watches = [
        record::<Secret>(&client, passwords.clone(), |s| {
            let password = s.data.as_ref()?.get("password")?;
            Some(String::from_utf8_lossy(&password.0).into_owned())
        }),
        record::<PersistentVolumeClaim>(&client, claims.clone(), |c| c.uid()),
        record::<Namespace>(&client, namespaces.clone(), |n| n.uid()),
    ];

    let started = Instant::now();
    let mut names = Vec::new();
    for _ in 0..systems_count {
        names.push(systems::create(&client, "chaos", "poliklinika-medicus.yaml", |_| {}).await);
    }

    let mut moments = Moments(seed);
    let mut kill_times = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + moments.next_millis(1500))).await;
        operator::kill_and_restart();
        kill_times.push(started.elapsed());
    }
    let killed_at = started.elapsed();
    for name in &names {
        systems::wait_ready(&client, name).await;
    }
    let converged = started.elapsed();
    println!(
        "chaos: kills at {:?}; all {systems_count} Ready {:.1} s after the first apply, {:.1} s after the last kill",
        kill_times
            .iter()
            .map(|t| format!("{:.1}s", t.as_secs_f64()))
            .collect::<Vec<_>>(),
        converged.as_secs_f64(),
        (converged - killed_at).as_secs_f64(),
    );

    // Let the watches catch up with the last writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for watch in &watches {
        watch.abort();
    }
    let ours = |key: &String| names.iter().any(|n| key.starts_with(&format!("hs-{n}/")));
    {
        let passwords = passwords.lock().unwrap();
        let secrets: Vec<_> = passwords.values.iter().filter(|(k, _)| ours(k)).collect();
        assert_eq!(
            secrets.len(),
            systems_count * 4,
            "four credentials Secrets per system: {:?}",
            secrets.iter().map(|(k, _)| k).collect::<Vec<_>>()
        );
        let regenerated: Vec<_> = secrets.iter().filter(|(_, v)| v.len() != 1).collect();
        assert!(regenerated.is_empty(), "passwords changed: {regenerated:?}");
        for (what, history) in [("claim", &claims), ("namespace", &namespaces)] {
            let history = history.lock().unwrap();
            let deleted: Vec<_> = history
                .deleted
                .iter()
                .filter(|k| ours(k) || names.iter().any(|n| k.as_str() == format!("/hs-{n}")))
                .collect();
            assert!(deleted.is_empty(), "{what}s deleted: {deleted:?}");
            let replaced: Vec<_> = history
                .values
                .iter()
                .filter(|(_, v)| v.len() != 1)
                .collect();
            assert!(replaced.is_empty(), "{what}s replaced: {replaced:?}");
        }
    }
    for name in &names {
        let namespace = format!("hs-{name}");
        let statefulsets = count::<StatefulSet>(&client, &namespace).await;
        let cron_jobs = count::<CronJob>(&client, &namespace).await;
        assert_eq!(
            (statefulsets, cron_jobs),
            (1, 1),
            "{namespace}: StatefulSets and CronJobs"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("panicked"), "the operator panicked:\n{text}");
    println!(
        "chaos: passwords changed 0, claims lost 0, namespaces lost 0, duplicates 0, panics 0"
    );
}

/// The process of the local control plane whose command line names `component` and this
/// test binary's cluster directory.
fn control_plane_pid(component: &str) -> String {
    let dir = cluster::kubeconfig()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("^\\S*{component} .*{dir}")])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !pids.is_empty() && !pids.contains('\n'),
        "one {component} of {dir}: {pids:?}"
    );
    pids
}

/// Freezes `component` (SIGSTOP) for `seconds`, then lets it go on (SIGCONT).
async fn freeze(component: &str, seconds: u64) {
    let pid = control_plane_pid(component);
    let signal = |s: &str| {
        std::process::Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
    };
    signal("-STOP");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    signal("-CONT");
}

/// The operator's writes so far, all kinds together, from its metrics.
fn writes() -> u64 {
    let (_, metrics) = operator::http_get("/metrics").unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("healthsystem_operator_object_writes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn the_operator_rides_out_a_frozen_api_server_and_a_stalled_etcd() {
    let _turn = TURN.lock().await;
    let systems_count = setting("CHAOS_SYSTEMS", 24) as usize;
    let client = cluster::client().await;
    operator::ensure_running(&client).await;
    let started = Instant::now();
    let mut names = Vec::new();
    for _ in 0..systems_count {
        names.push(systems::create(&client, "frozen", "poliklinika-medicus.yaml", |_| {}).await);
    }
    // While they converge: the API server frozen twice (longer than a request's timeout is
    // not needed: watches and requests hang, then everything resumes at once), etcd once.
    for (component, seconds) in [("kube-apiserver", 8), ("etcd", 5), ("kube-apiserver", 8)] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        freeze(component, seconds).await;
    }
    for name in &names {
        systems::wait_ready(&client, name).await;
    }
    println!(
        "chaos: {systems_count} systems Ready {:.1} s after the first apply, through 2 API server freezes of 8 s and an etcd stall of 5 s",
        started.elapsed().as_secs_f64()
    );
    // Idle: nothing left to write.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = writes();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        writes(),
        before,
        "the operator wrote while idle after the faults"
    );
}

/// Asks the local control plane to kill `component` (SIGKILL), keep it down for `down`
/// seconds and start it again (`testenv/cluster.sh` restart requests); returns once it is
/// healthy again, with whether the operator's /readyz said 503 meanwhile (polled every
/// 250 ms).
async fn restart(component: &str, down: u64) -> bool {
    let dir = cluster::kubeconfig().parent().unwrap().join("restart");
    let request = dir.join(component);
    std::fs::write(&request, down.to_string()).unwrap();
    let asked = Instant::now();
    let mut unready = false;
    while request.exists() {
        assert!(
            asked.elapsed() < Duration::from_secs(180),
            "{component} did not come back within 180 s (logs in {})",
            dir.parent().unwrap().join("logs").display()
        );
        unready |= readiness().0 == 503;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    unready
}

/// The operator's /readyz: (status code, body), or (0, error) when it does not answer.
fn readiness() -> (u16, String) {
    operator::http_get("/readyz").unwrap_or_else(|e| (0, e.to_string()))
}

async fn until_operator_ready() {
    wait::until(
        "the operator to report ready",
        Duration::from_secs(60),
        || async {
            match readiness() {
                (200, _) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn the_operator_recovers_by_itself_from_api_server_and_etcd_restarts() {
    let _turn = TURN.lock().await;
    let systems_count = setting("CHAOS_SYSTEMS", 24) as usize;
    let api_restarts = setting("CHAOS_API_RESTARTS", 2);
    let etcd_restarts = setting("CHAOS_ETCD_RESTARTS", 2);
    let down = setting("CHAOS_DOWN_SECONDS", 6);
    let client = cluster::client().await;
    operator::ensure_running(&client).await;
    until_operator_ready().await;

    // Half the restarts while the systems converge, half once they are idle; each API
    // server restart is watched from the operator's side: /readyz must say it is cut off.
    let mut faults = Vec::new();
    for i in 0..api_restarts.max(etcd_restarts) {
        if i < api_restarts {
            faults.push("kube-apiserver");
        }
        if i < etcd_restarts {
            faults.push("etcd");
        }
    }
    let (converging, idle) = faults.split_at(faults.len() / 2);

    let started = Instant::now();
    let mut names = Vec::new();
    for _ in 0..systems_count {
        names.push(systems::create(&client, "restart", "poliklinika-medicus.yaml", |_| {}).await);
    }
    let mut unready_while_down = 0;
    let mut api_server_restarts = 0;
    let mut recoveries = Vec::new();
    for component in converging {
        let unready = restart(component, down).await;
        if *component == "kube-apiserver" {
            api_server_restarts += 1;
            unready_while_down += u32::from(unready);
        }
    }
    for name in &names {
        systems::wait_ready(&client, name).await;
    }
    println!(
        "chaos: {systems_count} systems Ready {:.1} s after the first apply, through {converging:?} restarts (down {down} s each)",
        started.elapsed().as_secs_f64()
    );

    // Idle: the restarts must not make the operator write anything.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = writes();
    for component in idle {
        let unready = restart(component, down).await;
        let back = Instant::now();
        until_operator_ready().await;
        recoveries.push(back.elapsed().as_secs_f64());
        if *component == "kube-apiserver" {
            api_server_restarts += 1;
            unready_while_down += u32::from(unready);
        }
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        writes(),
        before,
        "the operator wrote while idle through {idle:?} restarts"
    );
    assert_eq!(
        unready_while_down, api_server_restarts,
        "the operator's /readyz said ready while the API server was down"
    );
    assert!(
        operator::still_running(),
        "the operator exited during the restarts"
    );

    // The watches are back: a new system converges, and a child deleted by hand comes back.
    let late = systems::create(&client, "restart", "poliklinika-medicus.yaml", |_| {}).await;
    systems::wait_ready(&client, &late).await;
    let policies = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(
        client.clone(),
        &format!("hs-{}", names[0]),
    );
    let policy = policies
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("a NetworkPolicy")
        .name_any();
    policies.delete(&policy, &Default::default()).await.unwrap();
    wait::until(
        "the deleted NetworkPolicy to come back",
        Duration::from_secs(60),
        || async {
            match policies.get_opt(&policy).await {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    println!(
        "chaos: {api_server_restarts} API server restarts and {} etcd restarts survived; /readyz unready during every API server outage; ready again {recoveries:.1?} s after each idle restart; 0 writes while idle",
        faults.len() as u64 - api_server_restarts as u64
    );
}

/// Groups a namespace's reviews into attempts (a reconcile applies its policies together)
/// and returns the gaps between attempts, in seconds.
fn attempt_gaps(reviews: &[webhook::Review]) -> Vec<f64> {
    let mut starts: Vec<Instant> = Vec::new();
    for review in reviews {
        if starts
            .last()
            .is_none_or(|last| review.at.duration_since(*last) > Duration::from_secs(2))
        {
            starts.push(review.at);
        }
    }
    starts
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect()
}

/// A slow and refusing API: an admission webhook refuses one system's
/// NetworkPolicies, answers another's after its timeout and a third's slowly but in time.
/// Expected: the refused and the timed-out policies land in the Network condition with the
/// API server's words, the rest of those systems is applied, their retries come further and
/// further apart, every other system (the slow one too) becomes Ready meanwhile, and once
/// the webhook is fixed and a system is touched it converges.
#[tokio::test]
async fn a_refusing_or_slow_webhook_lands_in_the_condition_and_stalls_nothing_else() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;

    let _turn = TURN.lock().await;
    let client = cluster::client().await;
    operator::ensure_running(&client).await;
    let hook = webhook::Webhook::start().await;
    let refused = cluster::unique("refused");
    let late = cluster::unique("late");
    let slow = cluster::unique("slow");
    let others: Vec<String> = (0..4).map(|_| cluster::unique("webhook")).collect();
    hook.answer(
        &format!("hs-{refused}"),
        webhook::Answer::Deny(
            "refused by the data centre's policy review: ticket SDC-1234 pending".into(),
        ),
    );
    hook.answer(
        &format!("hs-{late}"),
        webhook::Answer::Late(Duration::from_secs(8)),
    );
    hook.answer(
        &format!("hs-{slow}"),
        webhook::Answer::Late(Duration::from_millis(1500)),
    );
    let watched: Vec<String> = [&refused, &late, &slow]
        .iter()
        .map(|n| format!("hs-{n}"))
        .collect();
    let configurations = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let configuration: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("chaos-{refused}") },
        "webhooks": [{
            "name": "networkpolicies.chaos.test",
            "clientConfig": {
                "url": hook.url,
                "caBundle": k8s_openapi::ByteString(hook.ca_bundle.clone()),
            },
            "rules": [{
                "apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["networkpolicies"],
            }],
            "namespaceSelector": { "matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "In", "values": watched,
            }]},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 3,
        }],
    }))
    .unwrap();
    configurations
        .create(&Default::default(), &configuration)
        .await
        .unwrap();

    let started = Instant::now();
    for name in [&refused, &late, &slow].into_iter().chain(&others) {
        systems::create_named(&client, name, "poliklinika-medicus.yaml", |_| {}).await;
    }
    for name in others.iter().chain([&slow]) {
        systems::wait_ready(&client, name).await;
    }
    let others_ready = started.elapsed().as_secs_f64();
    for (name, words) in [
        (&refused, "ticket SDC-1234 pending"),
        (&late, "failed calling webhook"),
    ] {
        wait::until(
            &format!("{name}'s refusal in its NetworkIsolated condition"),
            Duration::from_secs(120),
            || async {
                let system = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone())
                    .get(name)
                    .await
                    .map_err(|e| e.to_string())?;
                let network = systems::condition(&system, "NetworkIsolated").cloned();
                match network {
                    Some(c)
                        if c.status == "False"
                            && c.reason == "NetworkPolicyRefused"
                            && c.message.contains(words) =>
                    {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        // The rest of the system is applied: its database runs. Workloads follow once the
        // new namespace's quota is in force, which may be the pass after the one that
        // reported the refusal.
        wait::until(
            &format!("{name}: the database is applied"),
            Duration::from_secs(30),
            || async {
                match count::<StatefulSet>(&client, &format!("hs-{name}")).await {
                    1 => Ok(()),
                    n => Err(format!("{n} StatefulSets")),
                }
            },
        )
        .await;
    }

    // Retries come further apart: watched for 80 s, the refused system is asked about a
    // handful of times, not every 10 s.
    tokio::time::sleep(Duration::from_secs(80).saturating_sub(started.elapsed())).await;
    let gaps = attempt_gaps(&hook.reviews(&format!("hs-{refused}")));
    println!(
        "chaos: others Ready after {others_ready:.1} s while the webhook refused; gaps between the refused system's attempts: {gaps:.1?} s"
    );
    assert!(
        gaps.len() >= 2 && gaps.len() <= 6,
        "attempts on the refused system: gaps {gaps:?}"
    );
    // A fixed retry would leave 10 to 13 s between attempts.
    assert!(
        *gaps.last().unwrap() >= 20.0,
        "retries do not back off: gaps {gaps:?}"
    );

    // The webhook is fixed: a touched system converges at once.
    hook.answer(&format!("hs-{refused}"), webhook::Answer::Allow);
    hook.answer(&format!("hs-{late}"), webhook::Answer::Allow);
    for name in [&refused, &late] {
        Api::<healthsystem_operator::api::HealthSystem>::all(client.clone())
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({
                    "metadata": { "annotations": { "chaos.test/touched": "1" } }
                })),
            )
            .await
            .unwrap();
        systems::wait_ready(&client, name).await;
    }
    configurations
        .delete(&format!("chaos-{refused}"), &Default::default())
        .await
        .unwrap();
}
