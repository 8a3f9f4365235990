//! Fuzzed input judged by the real API server: an example with one field replaced
//! by an arbitrary value is sent as a server-side dry run. Every spec the CRD's schema and
//! CEL admit is either built into children the API server admits too (each child a dry-run
//! apply; the namespaced ones into one namespace of the test's, their own namespace being
//! judged as the Namespace object), or refused by the operator's own checks naming a field
//! (what its status then says). Every spec the API server refuses is refused with a message
//! naming the part of the manifest that was changed. `PROPTEST_CASES` sets the number of
//! cases (48 by default).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, PatchParams, PostParams};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::Value;

use healthsystem_operator::api::validation::validate;
use healthsystem_operator::config::Config;
use healthsystem_operator::controller::cache::kinds;
use healthsystem_operator::resources::Desired;

use crate::cluster;
use crate::fuzzing::{examples, json_value, with_a_leaf_replaced};
use crate::settings::setting;

/// Sends `manifest` to the API server as a dry-run create of a HealthSystem: the object as
/// it would be stored (defaults applied), or the API server's refusal.
async fn admit(client: &kube::Client, manifest: &Value) -> Result<Value, kube::Error> {
    let request = http::Request::post("/apis/sdc.gov.rs/v1alpha1/healthsystems?dryRun=All")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(manifest).unwrap())
        .unwrap();
    client.request::<Value>(request).await
}

/// Dry-run applies every child of `system`, the namespaced ones into `namespace`.
async fn admit_children(
    client: &kube::Client,
    kinds: &BTreeMap<String, (ApiResource, bool)>,
    namespace: &str,
    desired: &Desired,
) -> Result<usize, String> {
    let manifests = desired.manifests();
    for manifest in &manifests {
        let kind = manifest["kind"].as_str().unwrap_or_default();
        let (resource, namespaced) = kinds
            .get(kind)
            .ok_or_else(|| format!("a child of an unknown kind {kind}"))?;
        let mut object: DynamicObject =
            serde_json::from_value(manifest.clone()).map_err(|e| format!("{kind}: {e}"))?;
        let name = object.metadata.name.clone().unwrap_or_default();
        let api = if *namespaced {
            object.metadata.namespace = Some(namespace.to_string());
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, resource)
        } else {
            Api::<DynamicObject>::all_with(client.clone(), resource)
        };
        api.patch(
            &name,
            &PatchParams::apply("fuzz").force().dry_run(),
            // As the operator sends it.
            &healthsystem_operator::controller::apply::patch_body::apply_patch(&object)
                .map_err(|e| format!("{kind} {name}: {e}"))?,
        )
        .await
        .map_err(|e| format!("{kind} {name} refused by the API server: {e}"))?;
    }
    Ok(manifests.len())
}

#[test]
fn every_spec_the_api_server_admits_builds_children_it_admits() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let namespace = cluster::unique("dry-run");
    let client = runtime.block_on(async {
        let client = cluster::client().await;
        cluster::install_crd(&client).await;
        cluster::install_monitoring_crds(&client).await;
        let object: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": namespace } }))
                .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        client
    });
    let kinds: BTreeMap<String, (ApiResource, bool)> = kinds::declared(kinds::Apis::ALL)
        .into_iter()
        .map(|k| (k.resource.kind.clone(), (k.resource, k.namespaced)))
        .collect();
    let cases = setting("PROPTEST_CASES", 48) as u32;
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let examples = examples();
    let (admitted, refused_by_server, refused_by_operator, children_admitted) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    // Half the cases keep the field's JSON type (a string for a string, a number for a
    // number), so that many get past the schema's types to its formats, ranges and CEL.
    let strategy = (
        0..examples.len(),
        any::<prop::sample::Index>(),
        json_value(),
        any::<bool>(),
        "[a-z0-9 .:/*-]{0,16}",
        -10i64..100_000,
    );
    let result = runner.run(
        &strategy,
        |(example, pick, value, same_type, text, number)| {
            let (manifest, pointer) =
                with_a_leaf_replaced(&examples[example], &pick, |old| match (old, same_type) {
                    (Value::String(_), true) => Value::String(text),
                    (Value::Number(_), true) => Value::from(number),
                    (Value::Bool(b), true) => Value::Bool(!b),
                    _ => value,
                });
            // What a refusal must name: the changed key or one above it (`spec`, `metadata`).
            let keys: Vec<String> = pointer
                .split('/')
                .filter(|k| !k.is_empty() && k.parse::<usize>().is_err())
                .map(|k| k.replace("~1", "/").replace("~0", "~"))
                // The API server's decoder names metadata by its Go type.
                .chain(
                    pointer
                        .starts_with("/metadata")
                        .then(|| "ObjectMeta".to_string()),
                )
                .collect();
            runtime.block_on(async {
                match admit(&client, &manifest).await {
                    Err(kube::Error::Api(status)) => {
                        if refused_by_server.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("dry run: {pointer} refused: {}", status.message);
                        }
                        prop_assert!(
                            (400..500).contains(&status.code),
                            "{pointer}: refused with {}: {}",
                            status.code,
                            status.message
                        );
                        prop_assert!(
                            keys.iter().any(|k| status.message.contains(k.as_str())),
                            "{pointer} changed, but the refusal names none of {keys:?}: {}",
                            status.message
                        );
                        Ok(())
                    }
                    Err(other) => Err(TestCaseError::fail(format!("{pointer}: {other}"))),
                    Ok(stored) => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        match validate(&stored) {
                            Ok(system) => {
                                let desired = Desired::build(&system, &Config::default());
                                let count = admit_children(&client, &kinds, &namespace, &desired)
                                    .await
                                    .map_err(|e| {
                                        TestCaseError::fail(format!(
                                            "{pointer} = {}: {e}",
                                            manifest.pointer(&pointer).unwrap()
                                        ))
                                    })?;
                                children_admitted.fetch_add(count, Ordering::Relaxed);
                                Ok(())
                            }
                            Err(errors) => {
                                refused_by_operator.fetch_add(1, Ordering::Relaxed);
                                for error in errors {
                                    prop_assert!(
                                        !error.field.is_empty() && !error.message.is_empty(),
                                        "{error:?}"
                                    );
                                }
                                Ok(())
                            }
                        }
                    }
                }
            })
        },
    );
    eprintln!(
        "dry run: {cases} cases; admitted by the API server {} (children admitted {}, refused by the operator's own checks {}), refused by it {}",
        admitted.load(Ordering::Relaxed),
        children_admitted.load(Ordering::Relaxed),
        refused_by_operator.load(Ordering::Relaxed),
        refused_by_server.load(Ordering::Relaxed),
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
