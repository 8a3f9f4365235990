//! DatabaseReady: the volume, the credentials, the pod and a bootstrap's restore, in the order
//! a person must look at them; and the data claim the database was initialised on, which is
//! never silently replaced.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{Engine, HealthSystem};
use crate::controller::status::cluster;
use crate::controller::status::condition::{
    BOOTSTRAP_FAILED, BOOTSTRAP_REFUSED, CREDENTIALS_MISSING, CREDENTIALS_NOT_READABLE,
    DATA_MISSING, INSTANCES_ABOVE_TIER, QUOTA_EXCEEDED, Stamp, VERSION_REFUSED, types,
};
use crate::controller::status::observed::Observed;
use crate::resources::{database, rbac};

/// The DatabaseReady condition; `lost` is the UID of the data claim that is gone, if any.
pub fn condition(
    system: &HealthSystem,
    observed: &Observed,
    lost: Option<&String>,
    stamp: Stamp,
) -> Condition {
    // A database that runs but whose restore (spec.database.bootstrap) has not succeeded is
    // not ready, whatever its engine: its clients would find it empty.
    let unrestored = observed
        .bootstrap
        .as_ref()
        .filter(|b| b.phase != "Restored")
        .map(|restore| {
            let reason = if restore.phase == "Failed" {
                BOOTSTRAP_FAILED
            } else {
                "Restoring"
            };
            stamp.condition(types::DATABASE, false, reason, restore.message.clone())
        });
    if let Some(refusal) = &observed.version_refused {
        stamp.condition(
            types::DATABASE,
            false,
            VERSION_REFUSED,
            format!("{refusal}. Nothing of this system is applied until spec.database.version names an offered version (a new system) or the platform offers this one again"),
        )
    } else if let Some(refusal) = &observed.bootstrap_refused {
        stamp.condition(
            types::DATABASE,
            false,
            BOOTSTRAP_REFUSED,
            format!("{refusal}. Nothing of this system is applied (an empty database would start in place of the archive's): make the system again once the platform archives, or from a logical backup (fromBackup)"),
        )
    } else if let Some(lost) = lost {
        let now_there = match &observed.claim_uid {
            Some(uid) => format!(
                "; claim {} now there (UID {uid}) is a new, empty volume",
                database::data_claim_name()
            ),
            None => String::new(),
        };
        stamp.condition(types::DATABASE, false, DATA_MISSING, format!("the volume claim {} (UID {lost}) that holds this database's data is gone or being deleted{now_there}. The database is held stopped so that no empty database replaces it. Restore the volume (re-bind its PersistentVolume if its class retains it) or restore from a backup; if the data is lost for good, set spec.database.acceptDataLoss: {lost} to start an empty database", database::data_claim_name()))
    } else if observed.credentials_unreadable {
        stamp.condition(types::DATABASE, false, CREDENTIALS_NOT_READABLE, format!("the operator cannot read the credentials Secrets in this namespace, so the database's workloads wait: its RoleBinding {} (just made) is not in force yet, or the ClusterRole {} the chart installs is missing", rbac::OPERATOR_BINDING, rbac::CREDENTIALS_ROLE))
    } else if !observed.credentials_exist && observed.claim_phase.is_some() {
        stamp.condition(types::DATABASE, false, CREDENTIALS_MISSING, format!("Secret {} is missing while the database volume {} holds data initialised with its password; the operator never generates a new one for it. Restore the Secret with the original password (from the platform's secret backup)", database::SECRET, database::data_claim_name()))
    } else if observed.credentials_exist && !observed.credentials_complete {
        stamp.condition(
            types::DATABASE,
            false,
            "CredentialsIncomplete",
            format!(
                "Secret {} has no {} key; add it, the operator never overwrites credentials",
                database::SECRET,
                database::PASSWORD_KEY
            ),
        )
    } else if observed.engine == Engine::CloudNativePg {
        if observed.engine_api {
            let state = cluster::condition(
                observed.cluster.as_ref(),
                system.spec.database.version.as_str(),
                stamp,
            );
            let tier = system.spec.tier;
            match observed.instances_above_tier {
                // Applied within the bound; said until the spec asks for what the tier allows.
                Some((asked, bound)) => stamp.condition(
                    types::DATABASE,
                    false,
                    INSTANCES_ABOVE_TIER,
                    format!(
                        "spec.database.instances asks for {asked}, above the {tier:?} tier's bound of {bound} (the operator's tiers.{}.maxInstances): {bound} run; lower spec.database.instances or choose a larger tier. {}",
                        format!("{tier:?}").to_lowercase(),
                        state.message
                    ),
                ),
                None => match unrestored {
                    Some(restoring) if state.status == "True" => restoring,
                    _ => state,
                },
            }
        } else {
            stamp.condition(types::DATABASE, false, "EngineNotInstalled", "this system's database runs on CloudNativePG, whose API (postgresql.cnpg.io/v1 Cluster) this cluster does not serve; install CloudNativePG (docs/cloudnativepg.md), then restart the operator".into())
        }
    } else if let Some(class) = &observed.missing_storage_class {
        stamp.condition(types::DATABASE, false, "StorageClassNotFound", format!("storage class {class:?} does not exist, so the database volume cannot be provisioned"))
    } else if observed.claim_phase.as_deref() != Some("Bound") {
        stamp.condition(
            types::DATABASE,
            false,
            "VolumePending",
            "waiting for the database volume to be bound".into(),
        )
    } else if observed.database_ready_replicas < 1 && observed.database_pods > 0 {
        stamp.condition(types::DATABASE, false, "DatabaseNotReady", format!("the database pod runs but is not ready: it is starting (crash recovery may take long), or a login with the credentials of Secret {} fails (kubectl describe pod database-0 shows the probe's error)", database::SECRET))
    } else if let Some(short) = observed
        .database_quota_shortfall
        .as_ref()
        .filter(|_| observed.database_ready_replicas < 1 && observed.database_pods == 0)
    {
        stamp.condition(types::DATABASE, false, QUOTA_EXCEEDED, format!("the namespace quota leaves no room for the database pod ({short}); raise spec.sizing or choose a larger tier"))
    } else if observed.database_ready_replicas < 1 {
        stamp.condition(
            types::DATABASE,
            false,
            "DatabaseStarting",
            "waiting for the database pod".into(),
        )
    } else if let Some(restoring) = unrestored {
        restoring
    } else {
        stamp.condition(
            types::DATABASE,
            true,
            "DatabaseRunning",
            format!(
                "PostgreSQL {} is running",
                system.spec.database.version.as_str()
            ),
        )
    }
}

/// The UID of the data claim this system's database was initialised on, when that claim is
/// gone (`live` is the UID of the claim there now, if any) and no person has accepted the
/// loss. The database must then stay stopped: a new claim would hold an empty database.
pub fn lost_data_claim(system: &HealthSystem, live: Option<&str>) -> Option<String> {
    let recorded = system
        .status
        .as_ref()?
        .database
        .as_ref()?
        .data_claim_uid
        .as_deref()?;
    let accepted = system.spec.database.accept_data_loss.as_deref() == Some(recorded);
    (live != Some(recorded) && !accepted).then(|| recorded.to_string())
}

/// The data claim UID status records: the bound claim's, unless the recorded one is lost
/// (kept until a person accepts the loss).
pub fn recorded_claim(
    system: &HealthSystem,
    observed: &Observed,
    lost: Option<&String>,
) -> Option<String> {
    let recorded = system
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .and_then(|d| d.data_claim_uid.clone());
    match (lost, observed.claim_phase.as_deref()) {
        (Some(lost), _) => Some(lost.clone()),
        (None, Some("Bound")) => observed.claim_uid.clone().or(recorded),
        (None, _) => recorded,
    }
}
