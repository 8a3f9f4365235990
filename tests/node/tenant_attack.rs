//! The attack that opened a hospital's database to the cluster, tried again on the real node
//! with the chart's tenant roles and admission policy in force: a member of the system's
//! `access.admins`, and a member of a group someone bound to Kubernetes' own `admin` role in
//! the namespace, each try to create an allow-all NetworkPolicy, and both are refused; a pod of
//! another namespace then still cannot connect to the database. The same policy made by a
//! break-glass user does open it, and status says so, naming the policy: the probe sees the
//! difference, and status tells the truth.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::pods::{self, CHECK, Script, outcomes};
use crate::systems::{condition, wait_condition};
use crate::wait::until;
use crate::{image, ns, ready_system, setup};
use healthsystem_test_support::chart;
use healthsystem_test_support::cluster::{client_as, unique};

const ADMINS: &str = "attack-team";
const LEGACY: &str = "attack-legacy";

/// The chart's tenant roles and admission policy (the operator of this suite runs as the
/// cluster's administrator, whom the policy lets through as break-glass).
async fn install_tenant_access(client: &Client) {
    for object in chart::template(&[]) {
        let tenant = object["metadata"]["labels"]["app.kubernetes.io/component"] == "tenant-access";
        let admission = matches!(
            object["kind"].as_str(),
            Some("ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding")
        );
        if tenant || admission {
            chart::apply(client, &object, false).await;
        }
    }
}

fn allow_all(name: &str) -> NetworkPolicy {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}] }
    }))
    .unwrap()
}

/// Whether a pod of `from` connects to the database of namespace `namespace` (outcome
/// `open` or `closed`, once it held for 3 tries in a row).
async fn reaches_database(
    client: &Client,
    from: &str,
    pod: &str,
    namespace: &str,
    want: &str,
) -> String {
    let logs = pods::run_ok(
        client,
        Script {
            namespace: from,
            name: pod,
            labels: BTreeMap::new(),
            image: image("HS_IMAGE_POSTGRES15"),
            script: format!("{CHECK}\ncheck db database.{namespace}.svc 5432 {want}"),
            env_from_secret: None,
            claim: None,
        },
    )
    .await;
    outcomes(&logs).get("db").cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_tenant_cannot_open_its_database_to_the_cluster() {
    let client = setup().await;
    install_tenant_access(&client).await;
    let name = ready_system(&client, "attack", |m| {
        m["spec"]["access"] = json!({ "admins": [ADMINS] });
    })
    .await;
    let namespace = ns(&name);
    let outside = unique("outside");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": outside } })).unwrap(),
        )
        .await
        .unwrap();
    let policies =
        |as_client: &Client| Api::<NetworkPolicy>::namespaced(as_client.clone(), &namespace);

    // A member of access.admins: the tenant role has no write on NetworkPolicies.
    let team = client_as("attack-admin", &[ADMINS, "system:authenticated"]).await;
    let refused = policies(&team)
        .create(&PostParams::default(), &allow_all("allow-all"))
        .await
        .expect_err("a tenant admin created an allow-all policy");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 403),
        "{refused}"
    );

    // A group someone bound to Kubernetes' own admin role there: RBAC allows it, admission
    // refuses (the policy binding may take a moment to be in force after its install).
    Api::<RoleBinding>::namespaced(client.clone(), &namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "break-glass-admin" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin" },
                "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": LEGACY }]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let legacy = client_as("attack-legacy-user", &[LEGACY, "system:authenticated"]).await;
    let message = until(
        "the allow-all policy refused at admission",
        Duration::from_secs(30),
        || async {
            match policies(&legacy)
                .create(&PostParams::default(), &allow_all("allow-all"))
                .await
            {
                Err(kube::Error::Api(s))
                    if s.code == 403 && s.message.contains("belong to the platform") =>
                {
                    Ok(s.message)
                }
                Ok(_) => {
                    // Admission was not in force yet: take it away again and retry.
                    let _ = policies(&client)
                        .delete("allow-all", &DeleteParams::default())
                        .await;
                    Err("created".to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    assert!(
        message.contains("break-glass"),
        "the message says who may: {message}"
    );
    // The hand-made binding is reported, naming it.
    let system = wait_condition(&client, &name, "AccessControlled", "False").await;
    let access = condition(&system, "AccessControlled").unwrap();
    assert!(access.message.contains("break-glass-admin"), "{access:?}");

    assert_eq!(
        reaches_database(&client, &outside, "probe-refused", &namespace, "closed").await,
        "closed",
        "a pod of another namespace reached the database"
    );

    // The same policy made by a break-glass user opens it, and status names it.
    policies(&client)
        .create(&PostParams::default(), &allow_all("break-glass-open"))
        .await
        .unwrap();
    let system = wait_condition(&client, &name, "NetworkIsolated", "False").await;
    let network = condition(&system, "NetworkIsolated").unwrap();
    assert!(network.message.contains("break-glass-open"), "{network:?}");
    assert_eq!(
        reaches_database(&client, &outside, "probe-opened", &namespace, "open").await,
        "open",
        "the probe sees an open database"
    );
    policies(&client)
        .delete("break-glass-open", &DeleteParams::default())
        .await
        .unwrap();
    wait_condition(&client, &name, "NetworkIsolated", "True").await;
}
