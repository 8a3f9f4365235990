//! Never an empty database in place of a lost one: while the claim the data was on is gone and
//! nobody accepted the loss, the database is held stopped (a running StatefulSet would make a
//! new claim and initialise an empty database), and status says `DataMissing`.

use tracing::warn;

use crate::api::HealthSystem;
use crate::controller::context::Context;
use crate::controller::status;
use crate::resources::{Desired, database};

/// Keeps the database stopped while the claim its data was on is gone and nobody accepted
/// the loss: a running StatefulSet would make a new claim and initialise an empty database.
pub fn hold_database_without_its_data(system: &HealthSystem, ctx: &Context, desired: &mut Desired) {
    if desired.engine != crate::api::Engine::StatefulSet {
        // A Cluster guards its own data; a StatefulSet kept after a move is stopped anyway.
        return;
    }
    let namespace = crate::resources::labels::namespace(system);
    let live = ctx.stores.get(
        "v1",
        "PersistentVolumeClaim",
        Some(&namespace),
        &database::data_claim_name(),
    );
    let live_uid = status::data_claim_uid(live.as_ref().map(|c| &c.metadata));
    if let Some(lost) = status::lost_data_claim(system, live_uid.as_deref()) {
        warn!(
            claim = lost,
            "data claim gone: the database is held stopped"
        );
        if let Some(spec) = desired.database.as_mut().and_then(|s| s.spec.as_mut()) {
            spec.replicas = Some(0);
        }
    }
}
