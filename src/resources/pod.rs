//! What every pod the operator asks for is made of: the security contexts that pass Pod
//! Security `restricted` (non-root, no privilege escalation, no capabilities, the runtime's
//! seccomp profile), environment variables (plain, or from the credentials Secret), mounts
//! and scratch volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, SeccompProfile, SecretKeySelector, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use super::roles::Role;
use crate::api::HealthSystem;
use crate::config::Config;

/// Pod-level context: run as `uid` (and its group), files owned by that group.
pub fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The pod of a run-once Job (backup, restore drill, bootstrap restore, migration): labelled
/// `labels`, never restarted in place (the Job decides about retries), no API token, running
/// as `uid`. `spec` brings the containers, volumes and service account.
pub fn job_pod(labels: BTreeMap<String, String>, uid: i64, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            security_context: Some(pod_security(uid)),
            ..spec
        }),
    }
}

/// Container-level context.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// An environment variable read from a key of the application's credentials Secret.
pub fn secret_env(name: &str, key: &str) -> EnvVar {
    secret_key_env(name, super::roles::APPLICATION.secret, key)
}

/// An environment variable read from `key` of the Secret `secret`.
pub fn secret_key_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// What a client of the system's database logging in as `role` needs, as libpq's variables:
/// the `database` Service, and the user, password and database from the role's Secret.
pub fn database_client_env(role: Role) -> Vec<EnvVar> {
    vec![
        env("PGHOST", names::SERVICE),
        env("PGPORT", &names::PORT.to_string()),
        secret_key_env("PGUSER", role.secret, "username"),
        secret_key_env("PGPASSWORD", role.secret, names::PASSWORD_KEY),
        secret_key_env("PGDATABASE", role.secret, "database"),
    ]
}

/// A container that runs `script` with POSIX sh in the database's own image (its client tools
/// match the server's major version), as a client of the database logging in as `role`
/// (`database_client_env`) with `extra_env`, under the restricted container context.
pub fn database_script_container(
    system: &HealthSystem,
    config: &Config,
    role: Role,
    name: &str,
    script: &str,
    extra_env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
) -> Container {
    let mut environment = database_client_env(role);
    environment.extend(extra_env);
    Container {
        name: name.into(),
        image: Some(
            config
                .images
                .postgres(system.spec.database.version)
                .to_string(),
        ),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        env: Some(environment),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// A plain environment variable.
pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

pub fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

pub fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}
