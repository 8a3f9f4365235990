//! What the controller keeps of its reads of the object store, held by its context: one store
//! client (made once the restore namespace's read credentials exist) and each system's last
//! backup with the time it was read.

use std::collections::HashMap;

use k8s_openapi::jiff::Timestamp;
use object_store::aws::AmazonS3;

use crate::api::LastBackup;

/// The store client and each system's last backup.
#[derive(Default)]
pub struct StoreReads {
    pub(in crate::controller) client: tokio::sync::Mutex<Option<(Timestamp, Option<AmazonS3>)>>,
    pub(in crate::controller) latest:
        std::sync::Mutex<HashMap<String, (Timestamp, Option<LastBackup>)>>,
}

impl StoreReads {
    /// Forgets what was read for a prefix (its system was deleted).
    pub fn forget(&self, prefix: &str) {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(prefix);
    }
}
