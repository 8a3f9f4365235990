//! Tenant access as the people who have it: a member of a system's `access.admins`, of its
//! `access.viewers`, and a member of a group someone bound to Kubernetes' built-in `admin`
//! role in the namespace (a break-glass binding, or one made before the tenant roles), each
//! sends real requests (impersonation) and every answer is checked: the tenant roles refuse
//! what would undo isolation, and the admission policy refuses it even where RBAC would not.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use healthsystem_test_support::cluster::client_as;

/// The group `access.admins` names in the test's system.
pub const ADMINS: &str = "medicus-it";
/// The group `access.viewers` names in the test's system.
pub const VIEWERS: &str = "medicus-auditors";
/// A group bound to the built-in `admin` role by a break-glass user.
const LEGACY: &str = "medicus-legacy";
/// A ClusterRole that may change quotas, bound to `LEGACY` beside `admin`.
const QUOTA_WRITER: &str = "healthsystem-test-quota-writer";

/// What an answer must be.
#[derive(Debug)]
enum Expect {
    /// Anything but a 403: RBAC and admission let it through (what the server did next, a
    /// kwok pod without logs say, does not matter here).
    Allowed,
    /// A 403 whose message holds this text.
    Refused(&'static str),
}

/// The answer to one request: Ok, or the API server's code and message.
type Answer = Result<(), (u16, String)>;

fn answer<T>(result: kube::Result<T>) -> Answer {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err((status.code, status.message.clone())),
        Err(other) => Err((0, other.to_string())),
    }
}

fn check(who: &str, what: &str, got: &Answer, expect: &Expect) -> Option<String> {
    let ok = match (expect, got) {
        (Expect::Allowed, Err((403, _))) => false,
        (Expect::Allowed, _) => true,
        (Expect::Refused(text), Err((403, message))) => message.contains(text),
        (Expect::Refused(_), _) => false,
    };
    (!ok).then(|| format!("{who}: {what}: expected {expect:?}, got {got:?}"))
}

/// An exec into `pod` as `client`'s user, without the streaming upgrade: authorization and
/// admission answer first (403 when refused); a request they let through ends in the API
/// server's 400 for the missing upgrade.
async fn exec(client: &Client, namespace: &str, pod: &str) -> Answer {
    let request = http::Request::post(format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}/exec?command=true&stdout=true"
    ))
    .body(Vec::new())
    .unwrap();
    answer(client.request_text(request).await)
}

async fn tries(client: &Client, namespace: &str, app_pod: &str) -> Vec<(&'static str, Answer)> {
    let policies = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(
        client.clone(),
        namespace,
    );
    let allow_all: k8s_openapi::api::networking::v1::NetworkPolicy =
        serde_json::from_value(json!({
            "metadata": { "name": "allow-all" },
            "spec": { "podSelector": {}, "ingress": [{}], "egress": [{}],
                      "policyTypes": ["Ingress", "Egress"] }
        }))
        .unwrap();
    let quotas =
        Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(client.clone(), namespace);
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let claims = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
        client.clone(),
        namespace,
    );
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), namespace);
    let more = binding("more", "admin", "system:authenticated", json!({}));
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let own: Secret = serde_json::from_value(json!({
        "metadata": { "name": format!("team-{}", rand_suffix()) },
        "stringData": { "token": "x" }
    }))
    .unwrap();
    let scale = json!({ "spec": { "replicas": 1 } });
    vec![
        (
            "create an allow-all NetworkPolicy",
            answer(policies.create(&PostParams::default(), &allow_all).await),
        ),
        (
            "raise the quota",
            answer(
                quotas
                    .patch(
                        "quota",
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "spec": { "hard": { "pods": "1000" } } })),
                    )
                    .await,
            ),
        ),
        (
            "read database-superuser",
            answer(secrets.get("database-superuser").await),
        ),
        (
            "delete the data claim",
            answer(
                claims
                    .delete("data-database-0", &DeleteParams::default().dry_run())
                    .await,
            ),
        ),
        (
            "bind admin to everyone",
            answer(bindings.create(&PostParams::default(), &more).await),
        ),
        (
            "exec into the database pod",
            exec(client, namespace, "database-0").await,
        ),
        (
            "scale the application",
            answer(
                deployments
                    .patch_scale(
                        "application",
                        &PatchParams::default(),
                        &Patch::Merge(&scale),
                    )
                    .await,
            ),
        ),
        (
            "read the application's logs",
            answer(pods.logs(app_pod, &Default::default()).await),
        ),
        (
            "read the application's credentials",
            answer(secrets.get("database-credentials").await),
        ),
        (
            "create a Secret of its own",
            answer(secrets.create(&PostParams::default(), &own).await),
        ),
        ("list pods", answer(pods.list(&ListParams::default()).await)),
    ]
}

/// A RoleBinding `name` of the ClusterRole `role` to `group`, with `metadata` besides its name.
fn binding(name: &str, role: &str, group: &str, metadata: serde_json::Value) -> RoleBinding {
    let mut metadata = metadata;
    metadata["name"] = json!(name);
    serde_json::from_value(json!({
        "metadata": metadata,
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group }]
    }))
    .unwrap()
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
}

/// Every request of the table, as each of the three people, against the system `name`
/// (Ready, with `ADMINS` and `VIEWERS` in its spec.access). `admin` is the cluster's own
/// administrator client (a break-glass group member).
pub async fn holds(admin: &Client, name: &str) {
    let namespace = format!("hs-{name}");
    // Someone bound Kubernetes' own admin role in the namespace (break-glass): RBAC then
    // allows everything below, and admission is what refuses.
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), &namespace);
    bindings
        .create(
            &PostParams::default(),
            &binding("break-glass-admin", "admin", LEGACY, json!({})),
        )
        .await
        .unwrap();
    // The built-in admin cannot change quotas; a break-glass role that can shows that
    // admission refuses it too.
    let quota_writer: ClusterRole = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": { "name": QUOTA_WRITER },
        "rules": [{ "apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get", "patch"] }]
    }))
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .patch(
            QUOTA_WRITER,
            &PatchParams::apply("tenant-test").force(),
            &Patch::Apply(&quota_writer),
        )
        .await
        .unwrap();
    bindings
        .create(
            &PostParams::default(),
            &binding("break-glass-quota", QUOTA_WRITER, LEGACY, json!({})),
        )
        .await
        .unwrap();
    let app_pod = Api::<Pod>::namespaced(admin.clone(), &namespace)
        .list(&ListParams::default().labels("app.kubernetes.io/component=application"))
        .await
        .unwrap()
        .items
        .first()
        .and_then(|p| p.metadata.name.clone())
        .expect("the application runs a pod");

    use Expect::{Allowed, Refused};
    const RBAC: &str = "cannot";
    const PLATFORM: &str = "belong to the platform";
    const OPERATORS: &str = "is made by the HealthSystem operator";
    const SUPERUSER: &str = "gives a local login as the superuser";
    let admin_expects = [
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Allowed,
        Allowed,
        Allowed,
        Allowed,
        Allowed,
    ];
    let viewer_expects = [
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Refused(RBAC),
        Allowed,
        Refused(RBAC),
        Refused(RBAC),
        Allowed,
    ];
    // What only admission stops: RBAC (the built-in admin) allows all of it. Reading a Secret
    // is no admission request: the built-in admin role reads every Secret, which is why no
    // system's team is bound to it.
    let legacy_expects = [
        Refused(PLATFORM),
        Refused(PLATFORM),
        Allowed,
        Refused(OPERATORS),
        Refused(PLATFORM),
        Refused(SUPERUSER),
        Allowed,
        Allowed,
        Allowed,
        Allowed,
        Allowed,
    ];
    let mut wrong = Vec::new();
    for (who, group, expects) in [
        ("a member of access.admins", ADMINS, &admin_expects),
        ("a member of access.viewers", VIEWERS, &viewer_expects),
        (
            "a member of a group bound to admin",
            LEGACY,
            &legacy_expects,
        ),
    ] {
        let client = client_as(&format!("{group}-member"), &[group]).await;
        let answers = tries(&client, &namespace, &app_pod).await;
        assert_eq!(answers.len(), expects.len());
        for ((what, got), expect) in answers.iter().zip(expects.iter()) {
            wrong.extend(check(who, what, got, expect));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The break-glass session is over.
    for name in ["break-glass-admin", "break-glass-quota"] {
        bindings
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
}

/// A system made before the tenant roles had its access groups bound to Kubernetes' own
/// `admin` and `view` roles in RoleBindings `hs-admins` and `hs-viewers` (a binding's role
/// cannot change). After one reconcile they are gone and `tenant-admins` binds the same
/// groups to the tenant role.
pub async fn old_bindings_move(admin: &Client, name: &str, uid: &str) {
    let namespace = format!("hs-{name}");
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), &namespace);
    // As the operator made it before: its labels and the system's UID.
    let old = binding(
        "hs-admins",
        "admin",
        ADMINS,
        json!({
            "labels": { "app.kubernetes.io/managed-by": "healthsystem-operator",
                        "sdc.gov.rs/healthsystem": name },
            "annotations": { "sdc.gov.rs/healthsystem-uid": uid }
        }),
    );
    bindings.create(&PostParams::default(), &old).await.unwrap();
    healthsystem_test_support::wait::until(
        "the old binding pruned, the tenant binding in place",
        std::time::Duration::from_secs(60),
        || async {
            let old = bindings
                .get_opt("hs-admins")
                .await
                .map_err(|e| e.to_string())?;
            let new = bindings
                .get_opt("tenant-admins")
                .await
                .map_err(|e| e.to_string())?;
            let new_role = new.as_ref().map(|b| b.role_ref.name.clone());
            let new_groups: Vec<String> = new
                .and_then(|b| b.subjects)
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.name)
                .collect();
            if old.is_none()
                && new_role.as_deref() == Some("healthsystem-admin")
                && new_groups == [ADMINS]
            {
                Ok(())
            } else {
                Err(format!(
                    "old there: {}, new: {new_role:?} {new_groups:?}",
                    old.is_some()
                ))
            }
        },
    )
    .await;
}
