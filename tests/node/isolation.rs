//! Isolation by real connection attempts on the real node, each expected outcome asserted:
//! only a system's own application and backup pods reach its database; another system, or a
//! namespace without policies, cannot; a namespace named in `allowFrom` reaches the
//! application and nothing else, until the allowance is removed; a system cannot reach a
//! pod it did not declare; names resolve in the cluster and nowhere else.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServicePort, ServiceSpec};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::pods::{self, CHECK, Script, component_labels, outcomes};
use crate::{image, ns, ready_system, setup};

async fn namespace(client: &Client, name: &str, labels: BTreeMap<String, String>) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
}

/// An HTTP listener (the app image) and its Service `listener`, in `namespace`.
async fn listener(client: &Client, namespace: &str) {
    let labels = BTreeMap::from([("app".to_string(), "listener".to_string())]);
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "listener", "labels": labels },
        "spec": {
            "securityContext": { "runAsNonRoot": true, "runAsUser": 999, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": "httpd", "image": image("HS_IMAGE_APP"),
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
            }]
        }
    }))
    .unwrap();
    pod.metadata.namespace = Some(namespace.into());
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let service = Service {
        metadata: ObjectMeta {
            name: Some("listener".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels),
            ports: Some(vec![ServicePort {
                port: 8080,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Api::<Service>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

/// Runs `checks` (lines of `check NAME HOST PORT WANT`, or any sh) from a pod with `labels`
/// in `namespace`, and returns the outcomes by name.
async fn probe(
    client: &Client,
    namespace: &str,
    pod: &str,
    labels: BTreeMap<String, String>,
    checks: String,
) -> BTreeMap<String, String> {
    let logs = pods::run_ok(
        client,
        Script {
            namespace,
            name: pod,
            labels,
            image: image("HS_IMAGE_POSTGRES15"),
            script: format!("{CHECK}\n{checks}"),
            env_from_secret: None,
            claim: None,
        },
    )
    .await;
    outcomes(&logs)
}

fn expect(outcomes: &BTreeMap<String, String>, want: &[(&str, &str)]) {
    for (name, outcome) in want {
        assert_eq!(
            outcomes.get(*name).map(String::as_str),
            Some(*outcome),
            "{name}: all outcomes {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn network_policies_really_isolate_each_system() {
    let client = setup().await;
    let id = crate::cluster::unique("iso");
    let open = format!("{id}-open");
    let allowed = format!("{id}-allowed");
    namespace(&client, &open, BTreeMap::new()).await;
    namespace(
        &client,
        &allowed,
        BTreeMap::from([("sdc.gov.rs/test-allow".to_string(), id.clone())]),
    )
    .await;
    listener(&client, &open).await;

    let app_image = image("HS_IMAGE_APP");
    let (a, b) = tokio::join!(
        ready_system(&client, "isoa", |m| {
            m["spec"]["application"] = json!({ "image": app_image, "replicas": 1, "port": 8080 });
            m["spec"]["network"]["allowFrom"] = json!([{ "namespaceSelector": { "matchLabels": { "sdc.gov.rs/test-allow": id } } }]);
        }),
        ready_system(&client, "isob", |_| {}),
    );
    let (a_ns, b_ns) = (ns(&a), ns(&b));
    let a_db = format!("database.{a_ns}.svc");
    let a_app = format!("application.{a_ns}.svc");
    let listener = format!("listener.{open}.svc");

    let (from_a_app, from_a_backup, from_b, from_open, from_allowed) = tokio::join!(
        probe(
            &client,
            &a_ns,
            "probe-app",
            component_labels(&a, "application"),
            format!(
                "check a_app_to_db {a_db} 5432 open\n\
                 check a_app_to_listener {listener} 8080 closed\n\
                 if getent hosts {a_db}.cluster.local >/dev/null; then echo dns_cluster resolved; else echo dns_cluster failed; fi\n\
                 if getent hosts deb.debian.org >/dev/null 2>&1; then echo dns_outside resolved; else echo dns_outside failed; fi"
            ),
        ),
        probe(
            &client,
            &a_ns,
            "probe-backup",
            component_labels(&a, "backup"),
            format!("check a_backup_to_db {a_db} 5432 open"),
        ),
        probe(
            &client,
            &b_ns,
            "probe-b",
            component_labels(&b, "application"),
            format!("check b_app_to_a_db {a_db} 5432 closed"),
        ),
        probe(
            &client,
            &open,
            "probe-open",
            BTreeMap::new(),
            format!(
                "check open_to_listener {listener} 8080 open\n\
                 check open_to_a_db {a_db} 5432 closed\n\
                 check open_to_a_app {a_app} 8080 closed"
            ),
        ),
        probe(
            &client,
            &allowed,
            "probe-allowed",
            BTreeMap::new(),
            format!(
                "check allowed_to_a_app {a_app} 8080 open\n\
                 check allowed_to_a_db {a_db} 5432 closed"
            ),
        ),
    );
    expect(
        &from_a_app,
        &[
            ("a_app_to_db", "open"),
            ("a_app_to_listener", "closed"),
            ("dns_cluster", "resolved"),
            ("dns_outside", "failed"),
        ],
    );
    expect(&from_a_backup, &[("a_backup_to_db", "open")]);
    expect(&from_b, &[("b_app_to_a_db", "closed")]);
    expect(
        &from_open,
        &[
            ("open_to_listener", "open"),
            ("open_to_a_db", "closed"),
            ("open_to_a_app", "closed"),
        ],
    );
    expect(
        &from_allowed,
        &[("allowed_to_a_app", "open"), ("allowed_to_a_db", "closed")],
    );

    // Removing the allowance closes the door again.
    Api::<healthsystem_operator::api::HealthSystem>::all(client.clone())
        .patch(
            &a,
            &PatchParams::apply("tests"),
            &Patch::Merge(json!({ "spec": { "network": { "allowFrom": [] } } })),
        )
        .await
        .unwrap();
    let after = probe(
        &client,
        &allowed,
        "probe-allowed-after",
        BTreeMap::new(),
        format!("check allowed_to_a_app {a_app} 8080 closed"),
    )
    .await;
    expect(&after, &[("allowed_to_a_app", "closed")]);
}
