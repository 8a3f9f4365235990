//! The migrated system's own workload, when `spec.application` is set: a Deployment wired to
//! the database credentials, and its Service.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, PodSpec, PodTemplateSpec, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::database::PASSWORD_KEY;
use super::labels;
use super::metadata::component_meta;
use super::pod::secret_env;
use super::pod::{container_security, pod_security};
use crate::api::{Application, HealthSystem};

/// Component label of the application pods.
pub const COMPONENT_NAME: &str = "application";
/// Name of the Deployment, its Service and its ServiceAccount.
pub const NAME: &str = "application";
/// The UID the application runs as (non-root).
const APP_UID: i64 = 10001;

/// The application Deployment. The database connection comes from the credentials Secret as
/// DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER and DATABASE_PASSWORD.
pub fn deployment(system: &HealthSystem, app: &Application) -> Deployment {
    let container = Container {
        name: "application".into(),
        image: Some(app.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: app.port,
            ..ContainerPort::default()
        }]),
        env: Some(vec![
            secret_env("DATABASE_HOST", "host"),
            secret_env("DATABASE_PORT", "port"),
            secret_env("DATABASE_NAME", "database"),
            secret_env("DATABASE_USER", "username"),
            secret_env("DATABASE_PASSWORD", PASSWORD_KEY),
        ]),
        resources: app.resources.clone(),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        }]),
        security_context: Some(container_security()),
        ..Container::default()
    };
    Deployment {
        metadata: component_meta(system, NAME, COMPONENT_NAME),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas(system, app)),
            selector: LabelSelector {
                match_labels: Some(labels::selector(system, COMPONENT_NAME)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::component(system, COMPONENT_NAME)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security(APP_UID)),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "tmp".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Makes the application verify the database server it connects to (CloudNativePG engine).
pub fn verify_server(deployment: &mut Deployment) {
    if let Some(pod) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
    {
        super::cnpg::verify_server(pod);
    }
}

/// The application's Service, on its own port.
pub fn service(system: &HealthSystem, app: &Application) -> Service {
    Service {
        metadata: component_meta(system, NAME, COMPONENT_NAME),
        spec: Some(ServiceSpec {
            selector: Some(labels::selector(system, COMPONENT_NAME)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: app.port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The replicas the Deployment gets: the spec's, or none while a migration has not cut over
/// (the source is still the live system; see `migration::holds_application`), while a
/// move copies and compares the database (`engine_move::holds_application`), or while a
/// restore from a backup runs (the database is empty until then, and a restore refuses a
/// database that holds a table).
pub fn replicas(system: &HealthSystem, app: &Application) -> i32 {
    if super::migration::holds_application(system)
        || super::engine_move::holds_application(system)
        || super::restore_pods::pending(system)
    {
        0
    } else {
        app.replicas
    }
}
