//! One HealthSystem the operator cannot read does not stop the others.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::cluster::{client, install_crd, unique};
use crate::corpus::{read_manifest, root};
use crate::operator;
use crate::systems::{self, wait_ready};
use crate::wait::until;

/// A HealthSystem stored under a looser schema than the operator's types (an older CRD, a
/// hand-edited one) is reported with a Warning event, and the operator carries on, also
/// after a restart (whose first list holds the unreadable object): a system created after
/// it still becomes Ready.
#[tokio::test]
async fn an_unreadable_healthsystem_does_not_stop_the_others() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let loosen = json!([{ "op": "remove",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/tier/enum" }]);
    crds.patch(
        "healthsystems.sdc.gov.rs",
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(loosen).unwrap()),
    )
    .await
    .unwrap();

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "sdc.gov.rs",
        "v1alpha1",
        "HealthSystem",
    ));
    let dynamic = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let bad_name = unique("unreadable");
    let mut bad = read_manifest(&root().join("examples/lab-biomedica.yaml"));
    bad["metadata"]["name"] = json!(bad_name);
    bad["spec"]["tier"] = json!("Huge");
    let bad: DynamicObject = serde_json::from_value(bad).unwrap();
    // The loosened schema is served a moment after the update.
    until(
        "the loose object accepted",
        Duration::from_secs(30),
        || async {
            dynamic
                .create(&PostParams::default(), &bad)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;

    // A restart lists every HealthSystem afresh: the unreadable one is in that list.
    operator::restart();
    let good = systems::create(&client, "readable", "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &good).await;
    until(
        "a Warning event on the unreadable one",
        Duration::from_secs(60),
        || systems::has_warning(&client, &bad_name, "Unreadable"),
    )
    .await;

    dynamic
        .delete(&bad_name, &DeleteParams::default())
        .await
        .unwrap();
    until(
        "the unreadable one gone",
        Duration::from_secs(30),
        || async {
            match dynamic
                .get_opt(&bad_name)
                .await
                .map_err(|e| e.to_string())?
            {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        },
    )
    .await;
    install_crd(&client).await;
}
