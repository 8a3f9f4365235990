//! The configuration file: defaults, what a file may override and what it refuses.

use super::*;

#[test]
fn the_documented_file_is_exactly_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/operator.yaml");
    assert_eq!(Config::load(&path).unwrap(), Config::default());
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(Config::parse("", "c.yaml").unwrap(), Config::default());
    assert!(Config::default().check().is_ok());
}

#[test]
fn a_file_overrides_what_it_names() {
    let config = Config::parse(
        "monitoring:\n  namespace: prometheus\nplatformServices:\n  e-lab:\n    cidrs: [10.0.0.0/8]\n    ports: [{port: 8443}]\n",
        "c.yaml",
    )
    .unwrap();
    assert_eq!(config.monitoring.namespace, "prometheus");
    assert_eq!(config.platform_services["e-lab"].ports[0].protocol, "TCP");
    assert_eq!(config.tiers, Tiers::default());
}

#[test]
fn errors_name_the_key() {
    let unknown = Config::parse("tiers:\n  huge: {}\n", "c.yaml")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("huge"), "{unknown}");
    let cidr = Config::parse(
        "platformServices:\n  e-x:\n    cidrs: [10.0.0.0/33]\n    ports: [{port: 443}]\n",
        "c.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(cidr.contains("platformServices.e-x.cidrs"), "{cidr}");
    let mut bad = Config::default();
    bad.tiers.small.memory = "lots".into();
    let yaml = serde_saphyr::to_string(&bad).unwrap();
    let err = Config::parse(&yaml, "c.yaml").unwrap_err().to_string();
    assert!(err.contains("tiers.small.memory"), "{err}");
}

#[test]
fn no_restart_slot_and_no_dns_port_are_refused_naming_the_key() {
    for (text, key) in [
        (
            "rollout: { maxDatabaseRestarts: 0 }",
            "rollout.maxDatabaseRestarts",
        ),
        ("dns: { namespace: kube-system, ports: [] }", "dns.ports"),
        (
            "dns: { namespace: kube-system, ports: [70000] }",
            "dns.ports",
        ),
    ] {
        let err = Config::parse(text, "c.yaml").unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}

/// The backup section.
#[test]
fn a_primary_lease_cloudnativepg_would_refuse_is_refused_naming_the_key() {
    let lease =
        |timings: &str| format!("database: {{ cloudNativePG: {{ primaryLease: {timings} }} }}");
    for (timings, key) in [
        (
            "{ leaseDurationSeconds: 10, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 }",
            "primaryLease.leaseDurationSeconds",
        ),
        (
            "{ leaseDurationSeconds: 15, renewDeadlineSeconds: 6, retryPeriodSeconds: 5 }",
            "primaryLease.renewDeadlineSeconds",
        ),
        (
            "{ leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 0 }",
            "primaryLease.retryPeriodSeconds",
        ),
    ] {
        let err = Config::parse(&lease(timings), "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{timings}: {err}");
    }
    let fine = "{ leaseDurationSeconds: 15, renewDeadlineSeconds: 7, retryPeriodSeconds: 5 }";
    let config = Config::parse(&lease(fine), "c.yaml").unwrap();
    assert_eq!(
        config
            .database
            .cloud_native_pg
            .primary_lease
            .renew_deadline_seconds,
        7
    );
}

mod backup {
    use crate::config::Config;

    const STORE: &str = "backup:\n  objectStore:\n    endpoint: https://s3.sdc.gov.rs\n    \
                         bucket: healthsystem-backups\n    network:\n      cidrs: [10.220.0.0/24]\n      \
                         ports: [{ port: 443 }]\n";

    fn key() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    /// No drill is ever overdue where none runs.
    #[test]
    fn drills_have_a_maximum_age_only_where_they_run() {
        let with_store = format!("{STORE}  recipients: [{}]\n", key());
        let config = Config::parse(&with_store, "c.yaml").unwrap();
        assert_eq!(config.backup.drill_max_age_seconds(), 336.0 * 3600.0);
        let disabled = format!("{with_store}  drills: {{ enabled: false }}\n");
        let config = Config::parse(&disabled, "c.yaml").unwrap();
        assert!(config.backup.drill_store().is_none());
        assert_eq!(config.backup.drill_max_age_seconds(), f64::INFINITY);
        assert_eq!(
            Config::default().backup.drill_max_age_seconds(),
            f64::INFINITY,
            "without an object store"
        );
    }

    #[test]
    fn an_object_store_needs_a_key_to_encrypt_to_and_a_wrong_value_names_its_key() {
        let err = Config::parse(STORE, "c.yaml").unwrap_err().to_string();
        assert!(err.contains("backup.recipients"), "{err}");
        let good = format!("{STORE}  recipients: [{}]\n", key());
        let config = Config::parse(&good, "c.yaml").unwrap();
        let store = config.backup.object_store.unwrap();
        assert_eq!(store.region, "us-east-1");
        assert_eq!(store.credentials_secret, "backup-store-credentials");
        for (from, to, wanted) in [
            (
                "https://s3.sdc.gov.rs",
                "s3.sdc.gov.rs",
                "backup.objectStore.endpoint",
            ),
            (
                "healthsystem-backups",
                "Backups_",
                "backup.objectStore.bucket",
            ),
            (
                "[10.220.0.0/24]",
                "[10.220.0.0/33]",
                "backup.objectStore.network.cidrs",
            ),
            ("port: 443", "port: 0", "backup.objectStore.network.ports"),
        ] {
            let err = Config::parse(&good.replace(from, to), "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(wanted), "{to}: {err}");
        }
        let err = Config::parse("backup:\n  recipients: [age1nothing]\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("backup.recipients"), "{err}");
        let err = Config::parse("backup:\n  deadlineSeconds: 5\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("backup.deadlineSeconds"), "{err}");
    }
}
