//! The operator's own reach over Secrets, asked of the API server as the chart's
//! ServiceAccount (impersonation): it reads the database's credentials Secrets by name in the
//! namespaces it manages, through the binding it made there, and no other Secret anywhere: not
//! in a namespace it did not make (even one named like its own), not a team's own Secret in a
//! namespace it manages, and no list or watch of Secrets at all.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use healthsystem_test_support::chart::{self, ensure_namespace};
use healthsystem_test_support::cluster::client_as;

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "stringData": { "password": "not the operator's" }
    }))
    .unwrap()
}

async fn create(api: &Api<Secret>, name: &str) {
    match api.create(&PostParams::default(), &secret(name)).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create Secret {name}: {e}"),
    }
}

/// The HTTP code of a request's answer (200 for a success).
fn code<T>(result: kube::Result<T>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("{other}"),
    }
}

/// Checks, in the namespace of the system `name` (Ready) and in one the operator did not
/// make, what the chart's ServiceAccount may read.
pub async fn only_its_own(admin: &Client, name: &str) {
    let namespace = format!("hs-{name}");
    let elsewhere = format!("{namespace}-elsewhere");
    ensure_namespace(admin, &elsewhere).await;
    create(
        &Api::namespaced(admin.clone(), &elsewhere),
        "database-credentials",
    )
    .await;
    create(
        &Api::namespaced(admin.clone(), &namespace),
        "team-own-secret",
    )
    .await;

    let binding = Api::<RoleBinding>::namespaced(admin.clone(), &namespace)
        .get("healthsystem-operator-credentials")
        .await
        .expect("the operator's binding in the namespace it manages");
    assert_eq!(binding.role_ref.name, "healthsystem-operator-credentials");
    let subjects = serde_json::to_value(binding.subjects).unwrap();
    assert_eq!(
        subjects,
        json!([{ "kind": "ServiceAccount", "name": chart::OPERATOR_ACCOUNT, "namespace": chart::RELEASE_NAMESPACE }])
    );

    let (user, groups) = chart::operator_identity();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let operator = client_as(&user, &groups).await;
    let own = Api::<Secret>::namespaced(operator.clone(), &namespace);
    let other = Api::<Secret>::namespaced(operator.clone(), &elsewhere);
    let everywhere = Api::<Secret>::all(operator);
    let answers = [
        (
            "get its database-superuser",
            code(own.get("database-superuser").await),
            200,
        ),
        (
            "get its database-credentials",
            code(own.get("database-credentials").await),
            200,
        ),
        (
            "get the team's own Secret",
            code(own.get("team-own-secret").await),
            403,
        ),
        (
            "list the Secrets of its namespace",
            code(own.list(&ListParams::default()).await),
            403,
        ),
        (
            "get database-credentials in a namespace it did not make",
            code(other.get("database-credentials").await),
            403,
        ),
        (
            "list Secrets of the cluster",
            code(everywhere.list(&ListParams::default()).await),
            403,
        ),
        (
            "list Secrets of the cluster by its label",
            code(
                everywhere
                    .list(
                        &ListParams::default()
                            .labels("app.kubernetes.io/managed-by=healthsystem-operator"),
                    )
                    .await,
            ),
            403,
        ),
    ];
    let wrong: Vec<String> = answers
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what}: {got}, expected {want}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "as the operator's ServiceAccount:\n{}",
        wrong.join("\n")
    );
}
