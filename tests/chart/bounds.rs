//! The chart's admission policy for what the CRD cannot know, being the operator's
//! configuration: a system asks for at most its tier's `maxInstances` database instances.
//! Refused on creation and on an update that changes instances or tier, naming the field;
//! an update that changes neither passes although the bound was lowered since. And a new
//! system asks for a PostgreSQL version the platform has an image for.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use healthsystem_operator::api::HealthSystem;
use healthsystem_operator::config::Config;
use healthsystem_test_support::chart::{apply, template};
use healthsystem_test_support::cluster::{client, install_crd, unique};
use healthsystem_test_support::corpus::{read_manifest, root};
use healthsystem_test_support::wait::until;

/// The chart's bounds policy and its binding, rendered with `extra` values, under `name`.
fn policy(extra: &[&str], name: &str) -> Vec<Value> {
    let mut objects: Vec<Value> = template(extra)
        .into_iter()
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-healthsystem-bounds"))
        })
        .collect();
    assert_eq!(objects.len(), 2, "the policy and its binding");
    for object in &mut objects {
        object["metadata"]["name"] = json!(name);
        if object["kind"] == "ValidatingAdmissionPolicyBinding" {
            object["spec"]["policyName"] = json!(name);
        }
    }
    objects
}

/// A HealthSystem of `tier` asking for `instances`, from an example.
fn system(name: &str, tier: &str, instances: i32) -> HealthSystem {
    let mut manifest = read_manifest(&root().join("examples/lab-biomedica.yaml"));
    manifest["metadata"]["name"] = json!(name);
    manifest["spec"]["tier"] = json!(tier);
    manifest["spec"]["database"]["instances"] = json!(instances);
    serde_json::from_value(manifest).unwrap()
}

/// Creates `system` as a dry run (admission runs, nothing is stored): the refusal's message.
async fn refusal(client: &Client, system: &HealthSystem) -> Option<String> {
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match Api::<HealthSystem>::all(client.clone())
        .create(&params, system)
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(e)) if e.code == 422 => Some(e.message),
        Err(e) => panic!("unexpected answer: {e}"),
    }
}

/// Waits until a policy just applied is in force: the API server loads it a moment later.
async fn in_force(client: &Client, refused: &HealthSystem) -> String {
    until(
        "the admission policy in force",
        Duration::from_secs(30),
        || async {
            refusal(client, refused)
                .await
                .ok_or("still admitted".to_string())
        },
    )
    .await
}

/// Removes the policy `name` and its binding.
async fn remove(client: &Client, name: &str) {
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn instances_above_a_tiers_bound_are_refused_at_admission() {
    let client = client().await;
    install_crd(&client).await;
    for object in policy(&[], "hs-bounds-defaults") {
        assert!(apply(&client, &object, false).await);
    }
    let tiers = Config::default().tiers;
    let message = in_force(&client, &system(&unique("bound"), "Small", 3)).await;
    assert!(
        message.contains(&format!(
            "spec.database.instances: 3 is above the bound of the Small tier ({}, the operator configuration tiers.small.maxInstances)",
            tiers.small.max_instances
        )),
        "{message}"
    );
    // The chart's bounds are the operator's built-in ones.
    for (tier, bound) in [
        ("Small", tiers.small.max_instances),
        ("Standard", tiers.standard.max_instances),
        ("Large", tiers.large.max_instances),
    ] {
        let name = unique("bound");
        assert_eq!(refusal(&client, &system(&name, tier, bound)).await, None);
        let above = refusal(&client, &system(&name, tier, bound + 1)).await;
        assert!(
            above.is_some_and(|m| m.contains("spec.database.instances")),
            "{tier}: {} refused",
            bound + 1
        );
    }

    // A system admitted before its tier's bound was lowered (here: a second policy, the
    // chart rendered with small.maxInstances 1) keeps taking updates that leave instances
    // and tier alone (a label, a finalizer), and is refused a change of them above it.
    let api = Api::<HealthSystem>::all(client.clone());
    let name = unique("lowered");
    api.create(&PostParams::default(), &system(&name, "Small", 2))
        .await
        .unwrap();
    let lowered = policy(
        &["--set", "operator.tiers.small.maxInstances=1"],
        "hs-bounds-lowered",
    );
    for object in &lowered {
        assert!(apply(&client, object, false).await);
    }
    in_force(&client, &system(&unique("bound"), "Small", 2)).await;
    let patch = |body: Value| {
        let api = api.clone();
        let name = name.clone();
        async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
        }
    };
    patch(json!({ "metadata": { "labels": { "ward": "b" } } }))
        .await
        .expect("an update leaving instances and tier alone passes");
    let refused = patch(json!({ "spec": { "database": { "instances": 3 } } })).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains("spec.database.instances: 3")),
        "{refused:?}"
    );
    let lowered_now = patch(json!({ "spec": { "database": { "instances": 1 } } }))
        .await
        .expect("down to the bound passes");
    assert_eq!(lowered_now.spec.database.instances, Some(1));

    api.delete(&name, &DeleteParams::default()).await.unwrap();
    remove(&client, "hs-bounds-lowered").await;
}

#[tokio::test]
async fn a_version_without_an_image_is_refused_at_admission() {
    let client = client().await;
    install_crd(&client).await;
    // Bound to this test's systems only (a label), so the other tests' systems of version
    // 16 are not refused while it runs.
    let mut objects = policy(
        &[
            "--set-json",
            r#"operator.images.postgres={"15":"registry/postgres:15","17":"registry/postgres:17"}"#,
        ],
        "hs-bounds-versions",
    );
    for object in &mut objects {
        if object["kind"] == "ValidatingAdmissionPolicyBinding" {
            object["spec"]["matchResources"] =
                json!({ "objectSelector": { "matchLabels": { "hs-test": "versions" } } });
        }
        assert!(apply(&client, object, false).await);
    }
    let of_version = |version: &str| {
        let mut system = system(&unique("version"), "Small", 1);
        system.spec.database.version = serde_json::from_value(json!(version)).unwrap();
        system
            .metadata
            .labels
            .get_or_insert_default()
            .insert("hs-test".into(), "versions".into());
        system
    };
    let message = in_force(&client, &of_version("16")).await;
    assert!(
        message.contains("spec.database.version: PostgreSQL 16 is not offered by this platform, which has images for 15, 17 only"),
        "{message}"
    );
    assert_eq!(refusal(&client, &of_version("15")).await, None);
    assert_eq!(refusal(&client, &of_version("17")).await, None);

    remove(&client, "hs-bounds-versions").await;
}
