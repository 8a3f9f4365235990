//! The Helm chart as the tests install it: rendered with `helm template` for release `hs` in
//! `sdc-operators`, its objects server-side applied, and the operator run with nothing but the
//! chart's RBAC (a kubeconfig holding a token of the chart's ServiceAccount).

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::cluster;

/// The release's namespace.
pub const RELEASE_NAMESPACE: &str = "sdc-operators";
/// The chart's ServiceAccount (and ClusterRole) for release `hs`.
pub const OPERATOR_ACCOUNT: &str = "hs-healthsystem-operator";
/// The Kubernetes version of the local control plane (testenv/go.mod).
pub const KUBE_VERSION: &str = "v1.36.3";

/// The chart's directory.
pub fn dir() -> PathBuf {
    crate::repo_root().join("charts/healthsystem-operator")
}

/// Runs the pinned helm; its standard output.
pub fn helm(args: &[&str]) -> String {
    let out = Command::new(cluster::testenv_bin().join("helm"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The chart's objects for release `hs`, rendered with `extra` arguments.
pub fn template(extra: &[&str]) -> Vec<Value> {
    let chart = dir();
    let mut args = vec![
        "template",
        "hs",
        chart.to_str().unwrap(),
        "--namespace",
        RELEASE_NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    let text = helm(&args);
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// The chart's objects rendered with `values` (written to a file beside the test's output).
pub fn template_with(values: &Value) -> Vec<Value> {
    let path = crate::target_tmpdir().join(format!("chart-values-{}.json", std::process::id()));
    std::fs::write(&path, values.to_string()).unwrap();
    template(&["--values", path.to_str().unwrap()])
}

/// Creates namespace `name` unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply("chart-tests"), &Patch::Apply(&ns))
        .await
        .unwrap();
}

/// Server-side applies `object` (dry-run or for real); false when its API is not served.
pub async fn apply(client: &Client, object: &Value, dry_run: bool) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let (resource, caps) = match kube::discovery::pinned_kind(client, &gvk).await {
        Ok(found) => found,
        Err(_) if group == "monitoring.coreos.com" => return false,
        Err(e) => panic!("{gvk:?}: {e}"),
    };
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    };
    let mut params = PatchParams::apply("chart-tests").force();
    params.dry_run = dry_run;
    api.patch(
        object["metadata"]["name"].as_str().unwrap(),
        &params,
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("{} {} refused: {e}", gvk.kind, object["metadata"]["name"]));
    true
}

/// Applies `objects` (a release manifest's) in the order of `rank`, lowest first, keeping the
/// manifest's order within a rank.
pub async fn apply_in_order(client: &Client, objects: &[Value], rank: impl Fn(&Value) -> u8) {
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| rank(o));
    for object in ordered {
        apply(client, object, false).await;
    }
}

/// Puts the chart's tenant admission policy (and its binding) in force, as wherever the chart
/// is installed.
pub async fn apply_tenant_admission(client: &Client) {
    for policy in template(&[]).iter().filter(|o| {
        o["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-tenant-isolation"))
    }) {
        assert!(apply(client, policy, false).await);
    }
}

/// Whether an object of the chart grants or limits access: its ServiceAccount, roles and
/// bindings, and the tenant admission policy.
fn is_access(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some(
            "ServiceAccount"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "Role"
                | "RoleBinding"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
        )
    )
}

/// Applies the chart's access objects among `objects` (the namespaces they are in must
/// exist; the release's own is made here) and writes a kubeconfig that authenticates as the
/// chart's ServiceAccount with a token and nothing else, as the kubelet would mount it.
pub async fn install_access(client: &Client, objects: &[Value]) -> PathBuf {
    ensure_namespace(client, RELEASE_NAMESPACE).await;
    for object in objects.iter().filter(|o| is_access(o)) {
        apply(client, object, false).await;
    }
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": { "expirationSeconds": 6 * 3600 }
    });
    let token: Value = Api::<ServiceAccount>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .create_subresource("token", OPERATOR_ACCOUNT, &PostParams::default(), &request)
        .await
        .unwrap();
    let path = crate::target_tmpdir().join(format!("operator-{}.kubeconfig", std::process::id()));
    kubeconfig_with_token(token["status"]["token"].as_str().unwrap(), &path);
    path
}

/// Makes this binary's operator run with exactly the chart's access for `values` (installed
/// once, by the first test that asks). Call it before `operator::ensure_running`, once the
/// namespaces the chart's objects are in exist.
pub async fn operator_with_chart_access(client: &Client, values: &Value) {
    static KUBECONFIG: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    let path = KUBECONFIG
        .get_or_init(|| async { install_access(client, &template_with(values)).await })
        .await;
    crate::operator::run_as(path.clone(), RELEASE_NAMESPACE, OPERATOR_ACCOUNT);
}

/// A kubeconfig for the cluster under test that authenticates with `token` only.
fn kubeconfig_with_token(token: &str, path: &Path) {
    let admin: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(cluster::kubeconfig()).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "c", "cluster": cluster }],
        "users": [{ "name": "operator", "user": { "token": token } }],
        "contexts": [{ "name": "c", "context": { "cluster": "c", "user": "operator" } }],
        "current-context": "c"
    });
    std::fs::write(path, serde_json::to_string(&config).unwrap()).unwrap();
}

/// The username and groups of the chart's ServiceAccount, to impersonate it.
pub fn operator_identity() -> (String, Vec<String>) {
    (
        format!("system:serviceaccount:{RELEASE_NAMESPACE}:{OPERATOR_ACCOUNT}"),
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{RELEASE_NAMESPACE}"),
            "system:authenticated".into(),
        ],
    )
}
