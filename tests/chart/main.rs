//! The Helm chart: it lints and renders with default and non-default values, asks for no
//! wildcard permission, is accepted by the API server, and its RBAC is enough: the operator,
//! authenticated as the chart's ServiceAccount and nothing more, runs a HealthSystem's whole
//! lifecycle. One cluster for this binary, with no other operator on it.

use healthsystem_test_support::chart;
use healthsystem_test_support::cluster;
use healthsystem_test_support::corpus;
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;

mod bounds;
mod operator_secrets;
mod tenant;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use healthsystem_operator::api::HealthSystem;

use chart::{
    KUBE_VERSION, OPERATOR_ACCOUNT, RELEASE_NAMESPACE, apply, ensure_namespace, helm, template,
};
use cluster::{client, install_crd};
use corpus::root;
use wait::until;

fn chart() -> PathBuf {
    chart::dir()
}

/// Values a platform team would change, to render every optional part.
const NON_DEFAULT: &[&str] = &[
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "dashboards.enabled=true",
    "--set",
    "operator.concurrency=32",
    "--set",
    "operator.logFormat=text",
    "--set",
    "operator.monitoringNamespace=prometheus",
    "--set",
    "image.tag=1.2.3",
    "--set",
    "operator.dns.namespace=dns",
    "--set",
    "operator.dns.addresses={169.254.20.10/32}",
    "--set",
    "operator.database.engine=CloudNativePG",
    "--set",
    "operator.database.cloudNativePG.apiServer.cidrs={10.96.0.1/32}",
    "--set",
    "operator.database.cloudNativePG.apiServer.ports[0].port=6443",
];

#[test]
fn the_chart_lints_and_renders_with_default_and_other_values() {
    let chart = chart();
    helm(&[
        "lint",
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        chart.to_str().unwrap(),
    ]);
    let mut lint = vec![
        "lint",
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        chart.to_str().unwrap(),
    ];
    lint.extend_from_slice(NON_DEFAULT);
    helm(&lint);

    let defaults = template(&[]);
    let kinds: Vec<&str> = defaults.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Service",
        "NetworkPolicy",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(!kinds.contains(&"PrometheusRule"));
    let all = template(NON_DEFAULT);
    let kinds: Vec<&str> = all.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(
        all.iter().filter(|o| o["kind"] == "ConfigMap").count(),
        3,
        "config and two dashboards"
    );

    // The operator's configuration flows from the values, and the operator accepts it.
    let config = all
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["data"]["operator.yaml"].is_string())
        .unwrap();
    let text = config["data"]["operator.yaml"].as_str().unwrap();
    let parsed = healthsystem_operator::config::Config::parse(text, "chart").unwrap();
    assert_eq!(parsed.monitoring.namespace, "prometheus");
    assert!(parsed.platform_services.contains_key("e-referral"));
    assert_eq!(parsed.dns.namespace, "dns");
    assert_eq!(parsed.dns.addresses, ["169.254.20.10/32"]);
    assert_eq!(
        parsed.database.engine,
        healthsystem_operator::config::Engine::CloudNativePg
    );
    // The operator's own DNS egress follows the same values.
    let policy = all.iter().find(|o| o["kind"] == "NetworkPolicy").unwrap();
    let dns_peers = &policy["spec"]["egress"][1]["to"];
    assert_eq!(
        dns_peers[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "dns"
    );
    assert_eq!(dns_peers[1]["ipBlock"]["cidr"], "169.254.20.10/32");

    // A value outside the schema is refused.
    let out = Command::new(cluster::testenv_bin().join("helm"))
        .args([
            "template",
            "hs",
            chart.to_str().unwrap(),
            "--kube-version",
            KUBE_VERSION,
            "--set",
            "operator.logFormat=xml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn no_rule_uses_a_wildcard() {
    for object in template(NON_DEFAULT) {
        if !matches!(object["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in object["rules"].as_array().unwrap() {
            for key in [
                "apiGroups",
                "resources",
                "verbs",
                "resourceNames",
                "nonResourceURLs",
            ] {
                for value in rule[key].as_array().into_iter().flatten() {
                    assert!(
                        !value.as_str().unwrap_or_default().contains('*'),
                        "{key} of {rule} uses *"
                    );
                }
            }
        }
    }
}

#[test]
fn the_chart_crd_is_the_generated_one() {
    let chart_crd = std::fs::read_to_string(chart().join("crds/healthsystem.yaml")).unwrap();
    let crd = std::fs::read_to_string(root().join("crds/healthsystem.yaml")).unwrap();
    assert!(
        chart_crd == crd,
        "copy crds/healthsystem.yaml to charts/healthsystem-operator/crds/"
    );
}

#[tokio::test]
async fn the_rendered_chart_is_accepted_by_the_api_server() {
    let client = client().await;
    install_crd(&client).await;
    cluster::install_monitoring_crds(&client).await;
    ensure_namespace(&client, RELEASE_NAMESPACE).await;
    let objects = template(NON_DEFAULT);
    let mut accepted = 0;
    for object in &objects {
        accepted += usize::from(apply(&client, object, true).await);
    }
    assert_eq!(
        accepted,
        objects.len(),
        "every object, the ServiceMonitor and PrometheusRule too"
    );
}

#[tokio::test]
async fn the_operator_runs_a_whole_lifecycle_with_exactly_the_chart_rbac() {
    let client = client().await;
    install_crd(&client).await;
    // With the monitoring API served, so the PodMonitor and PrometheusRule rules are proven too.
    cluster::install_monitoring_crds(&client).await;
    // The chart's ServiceAccount, roles, bindings and admission policy, for real, and a token
    // of that ServiceAccount, as the kubelet would mount it.
    let objects = template(&[]);
    let kubeconfig = chart::install_access(&client, &objects).await;
    let role: ClusterRole = serde_json::from_value(
        objects
            .iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == OPERATOR_ACCOUNT)
            .unwrap()
            .clone(),
    )
    .unwrap();

    let log = healthsystem_test_support::target_tmpdir()
        .join(format!("chart-operator-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut operator = Command::new("bash")
        .arg(root().join("testenv/owned.sh"))
        .arg(std::process::id().to_string())
        .arg(env!("CARGO_BIN_EXE_healthsystem-operator"))
        .args([
            "run",
            "--leader-elect",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", RELEASE_NAMESPACE)
        .env("HS_SERVICE_ACCOUNT", OPERATOR_ACCOUNT)
        .env("POD_NAME", "chart-rbac-test")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();

    // The whole lifecycle: create until Ready, change, delete with Delete.
    let name = systems::create(&client, "rbac", "poliklinika-medicus.yaml", |m| {
        m["spec"]["deletionPolicy"] = json!("Delete");
        m["spec"]["access"] = json!({ "admins": [tenant::ADMINS], "viewers": [tenant::VIEWERS] });
    })
    .await;
    let systems = Api::<HealthSystem>::all(client.clone());
    let ready = |generation: i64| {
        let systems = systems.clone();
        let name = name.clone();
        async move {
            until(
                "Ready under the chart's RBAC",
                Duration::from_secs(180),
                || async {
                    let system = systems.get(&name).await.map_err(|e| e.to_string())?;
                    let status = system.status.clone().unwrap_or_default();
                    let ready = status
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    if ready && status.observed_generation >= Some(generation) {
                        Ok(())
                    } else {
                        Err(format!(
                            "{:?}",
                            status.conditions.iter().find(|c| c.type_ == "Ready")
                        ))
                    }
                },
            )
            .await
        }
    };
    ready(1).await;
    // Its team works through the tenant roles, and cannot undo the platform.
    tenant::holds(&client, &name).await;
    // The operator reads its own credentials, and no other Secret.
    operator_secrets::only_its_own(&client, &name).await;
    let uid = systems.get(&name).await.unwrap().metadata.uid.unwrap();
    tenant::old_bindings_move(&client, &name, &uid).await;
    let patch = json!({ "spec": { "tier": "Standard", "application": null } });
    let changed = systems
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    ready(changed.metadata.generation.unwrap()).await;
    systems
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    until(
        "deleted with its namespace",
        Duration::from_secs(180),
        || async {
            let gone = systems
                .get_opt(&name)
                .await
                .map_err(|e| e.to_string())?
                .is_none();
            let ns_gone = Api::<Namespace>::all(client.clone())
                .get_opt(&format!("hs-{name}"))
                .await
                .map_err(|e| e.to_string())?
                .is_none();
            if gone && ns_gone {
                Ok(())
            } else {
                Err(format!("system gone {gone}, namespace gone {ns_gone}"))
            }
        },
    )
    .await;

    let _ = Command::new("kill")
        .args(["-TERM", &operator.id().to_string()])
        .status();
    let _ = operator.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.to_lowercase().contains("forbidden"),
        "a request was forbidden:\n{text}"
    );
    assert!(
        text.contains("running as a ServiceAccount"),
        "the operator found who it runs as"
    );
    assert!(
        text.contains("monitoring_api=true"),
        "the monitoring API was served to the operator"
    );
    assert!(
        text.contains("became leader") && text.contains("leadership released"),
        "the Lease was taken and given up under the chart's Role"
    );
    assert!(
        role.rules.unwrap_or_default().len() >= 10,
        "the chart's ClusterRole was applied"
    );
}
