//! Which of the database's credentials Secrets exist, and with which keys, known without
//! watching Secrets. A watch of Secrets needs `list` and `watch` on them across the cluster,
//! which RBAC cannot narrow to the operator's own: it would let the operator (or whoever takes
//! it over) read every Secret of every tenant and of the platform. So the operator reads its
//! Secrets by name only, in the namespaces it manages, through a RoleBinding it makes there
//! (`resources::rbac::operator_binding`, to a ClusterRole that names them).
//!
//! What it saw is kept per namespace, keys only (never a value). A reconcile reads the
//! Secrets only when nothing is kept (the first look after a start) and records what it
//! creates. A paced sweep reads every kept namespace again, a few per second, and wakes the
//! system whose Secrets changed (one deleted by a break-glass user): on a quiet fleet the
//! sweep is the only reader, at most [`SWEEP_RATE`] namespaces a second.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Client, Resource};
use tracing::{debug, info};

use crate::controller::cache::ChildStream;
use crate::error::{AtStep, Result, Step};
use crate::resources::labels::HEALTHSYSTEM;
use crate::resources::roles;

/// Namespaces read per second by the sweep (each read is one GET per credentials Secret).
pub const SWEEP_RATE: u32 = 5;
/// The shortest time between the starts of two sweeps (a small fleet is not read more often).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The credentials Secrets of one namespace: name -> the keys it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen(BTreeMap<String, BTreeSet<String>>);

impl Seen {
    /// Whether the Secret `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Whether the Secret `name` exists and holds `key`.
    pub fn has_key(&self, name: &str, key: &str) -> bool {
        self.0.get(name).is_some_and(|keys| keys.contains(key))
    }

    /// Records that the Secret `name` exists with `keys`.
    pub fn insert(&mut self, name: &str, keys: impl IntoIterator<Item = String>) {
        self.0.insert(name.to_string(), keys.into_iter().collect());
    }

    /// What a read of `secrets` found, each `None` when missing: its keys, never a value.
    pub fn from_read(secrets: impl IntoIterator<Item = (String, Option<Secret>)>) -> Self {
        let mut seen = Self::default();
        for (name, secret) in secrets {
            if let Some(secret) = secret {
                seen.insert(&name, keys(&secret));
            }
        }
        seen
    }
}

/// The keys of a Secret (`data` and `stringData`).
fn keys(secret: &Secret) -> Vec<String> {
    let data = secret.data.iter().flat_map(|d| d.keys());
    let string_data = secret.string_data.iter().flat_map(|d| d.keys());
    data.chain(string_data).cloned().collect()
}

struct Entry {
    /// The HealthSystem whose namespace it is (woken when its Secrets change).
    system: String,
    seen: Seen,
    /// Bumped by every record, so a sweep's read that raced a reconcile is not written back.
    version: u64,
    /// When the Secrets were last read or written: a sweep skips what is younger than a round.
    checked: Instant,
}

/// What is known of each namespace's credentials Secrets. Shared by every reconcile and the
/// sweep.
#[derive(Clone, Default)]
pub struct CredentialsSeen {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

/// A read of the credentials Secrets that the API server refused: the operator's RoleBinding
/// in the namespace is not in force yet (just made), or was removed.
pub struct NotReadable;

impl CredentialsSeen {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of `namespace`'s credentials Secrets, read from the API server when
    /// nothing is (`Ok(Err(NotReadable))` when it refuses). `fresh`: the namespace was
    /// created by this very pass, so it holds no Secret yet and nothing is read.
    pub async fn look(
        &self,
        client: &Client,
        namespace: &str,
        system: &str,
        fresh: bool,
    ) -> Result<std::result::Result<Seen, NotReadable>> {
        if fresh {
            // What was known is of a namespace of that name deleted since (out of band).
            self.lock().remove(namespace);
        }
        if let Some(entry) = self.lock().get(namespace) {
            return Ok(Ok(entry.seen.clone()));
        }
        let seen = if fresh {
            Seen::default()
        } else {
            match read(client, namespace).await {
                Ok(seen) => seen,
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    debug!(
                        namespace,
                        "credentials Secrets not readable yet: {}", status.message
                    );
                    return Ok(Err(NotReadable));
                }
                Err(e) => return Err(e).at(Step::Credentials, format!("Secrets of {namespace}")),
            }
        };
        self.lock()
            .entry(namespace.to_string())
            .or_insert_with(|| Entry {
                system: system.to_string(),
                seen: seen.clone(),
                version: 0,
                checked: Instant::now(),
            });
        Ok(Ok(seen))
    }

    /// Records that the Secret `name` now exists in `namespace` with `keys` (just created).
    pub fn record(&self, namespace: &str, name: &str, keys: impl IntoIterator<Item = String>) {
        if let Some(entry) = self.lock().get_mut(namespace) {
            entry.seen.insert(name, keys);
            entry.version += 1;
            entry.checked = Instant::now();
        }
    }

    /// Forgets a namespace (its system was deleted; a re-created one reads it again).
    pub fn forget(&self, namespace: &str) {
        self.lock().remove(namespace);
    }

    /// Writes a sweep's read of `namespace`, made when the entry had `version`, unless a
    /// reconcile recorded something since or the namespace was forgotten. The system to wake
    /// when the read differs from what was known.
    fn update(&self, namespace: &str, version: u64, read: Seen) -> Option<String> {
        let mut entries = self.lock();
        let entry = entries.get_mut(namespace)?;
        if entry.version != version {
            return None;
        }
        entry.checked = Instant::now();
        if entry.seen == read {
            return None;
        }
        info!(
            namespace,
            before = ?entry.seen.0.keys().collect::<Vec<_>>(),
            now = ?read.0.keys().collect::<Vec<_>>(),
            "credentials Secrets changed"
        );
        entry.seen = read;
        entry.version += 1;
        Some(entry.system.clone())
    }

    /// The namespaces known and not read or written since `since`, with their entry's version.
    fn due(&self, since: Instant) -> Vec<(String, u64)> {
        self.lock()
            .iter()
            .filter(|(_, entry)| entry.checked <= since)
            .map(|(namespace, entry)| (namespace.clone(), entry.version))
            .collect()
    }

    /// Starts the sweep: every known namespace not read or written in the last
    /// [`SWEEP_EVERY`] read again, [`SWEEP_RATE`] a second, a round at most every
    /// [`SWEEP_EVERY`]; the system of each namespace whose Secrets changed comes
    /// out as a trigger, as a watch's would.
    pub fn sweep(&self, client: Client) -> (ChildStream, ApiResource) {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        let this = self.clone();
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_secs(1) / SWEEP_RATE);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let started = Instant::now();
                let round = tokio::time::Instant::now() + SWEEP_EVERY;
                let since = started.checked_sub(SWEEP_EVERY).unwrap_or(started);
                for (namespace, version) in this.due(since) {
                    pace.tick().await;
                    let seen = match read(&client, &namespace).await {
                        Ok(seen) => seen,
                        Err(e) => {
                            debug!(namespace, error = %e, "credentials sweep: not read");
                            continue;
                        }
                    };
                    if let Some(system) = this.update(&namespace, version, seen)
                        && sender
                            .unbounded_send(Ok(trigger(&namespace, &system)))
                            .is_err()
                    {
                        return; // the controller has stopped
                    }
                }
                tokio::time::sleep_until(round).await;
            }
        });
        (Box::pin(receiver), ApiResource::erase::<Secret>(&()))
    }
}

/// Reads every credentials Secret of `namespace` by name (keys kept, values dropped here).
async fn read(client: &Client, namespace: &str) -> kube::Result<Seen> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let reads =
        roles::ALL.iter().map(|role| {
            let api = api.clone();
            async move {
                Ok::<_, kube::Error>((role.secret.to_string(), api.get_opt(role.secret).await?))
            }
        });
    let found = futures::future::try_join_all(reads).await?;
    Ok(Seen::from_read(found))
}

/// What wakes the system `system`: an object labelled with its name, as its children are.
fn trigger(namespace: &str, system: &str) -> DynamicObject {
    let mut object = DynamicObject::new(namespace, &ApiResource::erase::<Secret>(&()));
    object.meta_mut().namespace = Some(namespace.to_string());
    object.meta_mut().labels = Some([(HEALTHSYSTEM.to_string(), system.to_string())].into());
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(keys: &[&str]) -> Secret {
        Secret {
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(b"value".to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn a_read_keeps_which_secrets_exist_and_their_keys_never_a_value() {
        let seen = Seen::from_read([
            (
                "database-credentials".to_string(),
                Some(secret(&["username", "password"])),
            ),
            ("database-superuser".to_string(), None),
        ]);
        assert!(seen.exists("database-credentials"));
        assert!(seen.has_key("database-credentials", "password"));
        assert!(!seen.exists("database-superuser"));
        assert!(!format!("{seen:?}").contains("value"));
    }

    /// What is known of namespace `hs-a` (system `a`): its application's Secret, just read.
    fn known_with_credentials() -> (CredentialsSeen, Seen) {
        let known = CredentialsSeen::default();
        let mut before = Seen::default();
        before.insert("database-credentials", ["password".to_string()]);
        known.lock().insert(
            "hs-a".into(),
            Entry {
                system: "a".into(),
                seen: before.clone(),
                version: 0,
                checked: Instant::now(),
            },
        );
        (known, before)
    }

    #[test]
    fn a_sweep_wakes_the_system_only_when_its_secrets_changed_and_no_record_raced_it() {
        let (known, before) = known_with_credentials();
        assert_eq!(known.update("hs-a", 0, before.clone()), None, "unchanged");
        // Read before a reconcile recorded a Secret it created: the read is stale.
        known.record("hs-a", "database-superuser", ["password".to_string()]);
        assert_eq!(known.update("hs-a", 0, Seen::default()), None, "raced");
        assert!(
            known.due(Instant::now() - SWEEP_EVERY).is_empty(),
            "just read"
        );
        let version = known.due(Instant::now())[0].1;
        assert_eq!(
            known.update("hs-a", version, Seen::default()),
            Some("a".to_string()),
            "deleted: the system is woken"
        );
        assert!(!known.lock()["hs-a"].seen.exists("database-credentials"));
        known.forget("hs-a");
        assert_eq!(known.update("hs-a", version + 1, before), None, "forgotten");
    }

    /// A namespace the operator has just created holds no Secret, whatever was known of an
    /// earlier namespace of that name: its credentials are created in the same pass.
    #[tokio::test]
    async fn a_namespace_just_created_is_known_empty_without_a_read() {
        let (known, _) = known_with_credentials();
        // Never contacted: a fresh namespace is not read.
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let seen = known.look(&client, "hs-a", "a", true).await.unwrap();
        assert!(matches!(seen, Ok(s) if s == Seen::default()));
        assert!(!known.lock()["hs-a"].seen.exists("database-credentials"));
    }

    #[test]
    fn the_trigger_names_the_system_as_a_childs_label_would() {
        let object = trigger("hs-a", "a");
        assert_eq!(object.metadata.labels.unwrap()[HEALTHSYSTEM], "a");
    }
}
