//! The `database` section: which engine runs a new system's PostgreSQL (the operator's own
//! single-pod StatefulSet, or a CloudNativePG Cluster with replicas and failover), and what a
//! CloudNativePG Cluster needs to know about the cluster it runs in.

use serde::{Deserialize, Serialize};

pub use crate::api::Engine;
use crate::config::checks::is_dns_label;
use crate::config::network::{PlatformService, ServicePort, check_peer, tcp};

/// How the systems' databases are run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The engine of systems created from now on. A system keeps the engine its data was made
    /// on (recorded in its status): changing this never moves an existing database.
    #[serde(default)]
    pub engine: Engine,
    /// CloudNativePG, for `engine: CloudNativePG`.
    #[serde(default, rename = "cloudNativePG")]
    pub cloud_native_pg: CloudNativePg,
}

/// Where CloudNativePG runs and what its instances reach besides each other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudNativePg {
    /// The namespace of CloudNativePG's operator: its pods reach every instance's status
    /// port (8000) and PostgreSQL (5432).
    #[serde(default = "default_operator_namespace")]
    pub operator_namespace: String,
    /// The Kubernetes API server as the instances' pods reach it (the `kubernetes` Service's
    /// endpoints: addresses and port after the Service's translation), for the instance
    /// manager. Required with `engine: CloudNativePG`: an egress rule with no address would
    /// allow every destination.
    #[serde(default = "default_api_server")]
    pub api_server: PlatformService,
    /// User and group ids of `postgres` in the PostgreSQL images (999 in Debian's and the
    /// official images; CloudNativePG's own images use 26).
    #[serde(default = "default_postgres_id")]
    pub postgres_uid: i64,
    /// See `postgresUid`.
    #[serde(default = "default_postgres_id")]
    pub postgres_gid: i64,
    /// Timings of the Lease each Cluster's primary holds.
    #[serde(default)]
    pub primary_lease: PrimaryLease,
}

/// The Lease a Cluster's primary renews (CloudNativePG's `spec.primaryLease`, same names).
/// The holder writes it every `retryPeriodSeconds`: with CloudNativePG's 2 s, an idle fleet
/// of 1,000 single-instance systems writes about 500 times a second to the API server, all
/// of it this Lease. 5 s writes 2.5 times less; a replica then sees a lease released by a
/// stopping primary up to 5 s later, while one that was never released (its node gone)
/// still expires after `leaseDurationSeconds`, unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrimaryLease {
    /// How long the lease is valid; greater than `renewDeadlineSeconds`.
    pub lease_duration_seconds: i32,
    /// How long the primary keeps trying to renew before it stops; greater than 1.2 times
    /// `retryPeriodSeconds`.
    pub renew_deadline_seconds: i32,
    /// How often the holder renews and the others try to acquire.
    pub retry_period_seconds: i32,
}

impl Default for PrimaryLease {
    fn default() -> Self {
        Self {
            lease_duration_seconds: 15,
            renew_deadline_seconds: 10,
            retry_period_seconds: 5,
        }
    }
}

impl PrimaryLease {
    /// The invariants CloudNativePG's admission (and client-go's leader election) holds, so a
    /// configuration that would make every Cluster refused is refused at the operator's start.
    fn check(&self) -> Result<(), (String, String)> {
        let key = |field: &str| format!("database.cloudNativePG.primaryLease.{field}");
        for (field, value) in [
            ("leaseDurationSeconds", self.lease_duration_seconds),
            ("renewDeadlineSeconds", self.renew_deadline_seconds),
            ("retryPeriodSeconds", self.retry_period_seconds),
        ] {
            if value < 1 {
                return Err((key(field), "must be at least 1".into()));
            }
        }
        if self.lease_duration_seconds <= self.renew_deadline_seconds {
            return Err((
                key("leaseDurationSeconds"),
                "must be greater than renewDeadlineSeconds".into(),
            ));
        }
        // 1.2 times, in whole seconds: renew > 1.2 retry <=> 5 renew > 6 retry.
        if 5 * i64::from(self.renew_deadline_seconds) <= 6 * i64::from(self.retry_period_seconds) {
            return Err((
                key("renewDeadlineSeconds"),
                "must be greater than 1.2 times retryPeriodSeconds".into(),
            ));
        }
        Ok(())
    }
}

impl Default for CloudNativePg {
    fn default() -> Self {
        Self {
            operator_namespace: default_operator_namespace(),
            api_server: default_api_server(),
            postgres_uid: default_postgres_id(),
            postgres_gid: default_postgres_id(),
            primary_lease: PrimaryLease::default(),
        }
    }
}

fn default_operator_namespace() -> String {
    "cnpg-system".into()
}

fn default_api_server() -> PlatformService {
    PlatformService {
        cidrs: Vec::new(),
        namespace_selector: None,
        pod_selector: None,
        ports: vec![ServicePort {
            port: 6443,
            protocol: tcp(),
        }],
    }
}

fn default_postgres_id() -> i64 {
    999
}

impl CloudNativePg {
    /// Whether the API server's address is configured (the instances' egress to it).
    pub fn api_server_named(&self) -> bool {
        let api_server = &self.api_server;
        !api_server.cidrs.is_empty()
            || api_server.namespace_selector.is_some()
            || api_server.pod_selector.is_some()
    }
}

impl DatabaseConfig {
    /// Checks the section; `(key, message)` on the first problem.
    pub fn check(&self) -> Result<(), (String, String)> {
        let cnpg = &self.cloud_native_pg;
        if !is_dns_label(&cnpg.operator_namespace) {
            return Err((
                "database.cloudNativePG.operatorNamespace".into(),
                "must be a namespace name".into(),
            ));
        }
        // Its instances talk to the API server: with this engine, where it is must be said.
        if self.engine == Engine::CloudNativePg || cnpg.api_server_named() {
            check_peer("database.cloudNativePG.apiServer", &cnpg.api_server)?;
        }
        for (key, id) in [
            ("postgresUid", cnpg.postgres_uid),
            ("postgresGid", cnpg.postgres_gid),
        ] {
            if !(1..=2_147_483_647).contains(&id) {
                return Err((
                    format!("database.cloudNativePG.{key}"),
                    "must be a user or group id other than 0".into(),
                ));
            }
        }
        cnpg.primary_lease.check()
    }
}
