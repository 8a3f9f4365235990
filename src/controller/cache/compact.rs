//! One watched kind's objects in memory, found by name and by the system they belong to
//! (their `HEALTHSYSTEM` label). kube's reflector store can only be scanned whole: pruning
//! and the Job lookups then walked every object of the fleet on every reconcile, a cost
//! that grew with the square of the fleet.
//!
//! Each object is held as compact JSON and parsed when it is read: a reconcile reads a few
//! dozen small objects, while the fleet's tens of thousands sit in memory. As trees of maps
//! (a map node, strings and an allocation per field) they took four to five times the
//! bytes, most of the operator's memory at 1,000 systems. The two labels every child carries
//! (managed-by, which the watches select on, and its system's name, which the index holds)
//! are left out of the JSON and put back when it is read: about a fifth of each object.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher;

use crate::resources::labels::{HEALTHSYSTEM, MANAGED_BY, MANAGER};

/// "namespace/name" ("/name" for cluster-scoped objects), one allocation shared by both
/// indexes.
type Key = Arc<str>;

fn key_of(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// A live object as cached: what the operator reads of it and, for the kinds it applies, a
/// digest of the fields it owns in place of their values ([`crate::controller::cache::owned_fields`]).
#[derive(Clone, Debug)]
pub struct Live {
    /// The object, without the parts the operator never reads.
    pub object: DynamicObject,
    /// The digest of the fields this operator's field manager owns, when they were dropped.
    pub owned: Option<u64>,
}

impl Live {
    /// An object kept as it is.
    pub fn whole(object: DynamicObject) -> Self {
        Self {
            object,
            owned: None,
        }
    }
}

impl std::ops::Deref for Live {
    type Target = DynamicObject;
    fn deref(&self) -> &DynamicObject {
        &self.object
    }
}

/// A live object as it is held: its JSON without the labels below, and what indexes it.
struct Stored {
    json: Box<str>,
    owned: Option<u64>,
    /// Its `HEALTHSYSTEM` label (shared with the index of that system).
    system: Option<Arc<str>>,
    /// Whether it is labelled as managed by this operator.
    managed: bool,
}

impl Stored {
    fn new(live: Live) -> Self {
        let Live { mut object, owned } = live;
        let labels = object.labels_mut();
        let system = labels.remove(HEALTHSYSTEM).map(Arc::<str>::from);
        let managed = labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGER);
        if managed {
            labels.remove(MANAGED_BY);
        }
        if labels.is_empty() {
            object.metadata.labels = None;
        }
        Self {
            json: serde_json::to_string(&object)
                .unwrap_or_default()
                .into_boxed_str(),
            owned,
            system,
            managed,
        }
    }

    /// The object again, labels included (what was serialized always parses back).
    fn read(&self) -> Option<Arc<Live>> {
        let mut object: DynamicObject = serde_json::from_str(&self.json).ok()?;
        if self.managed || self.system.is_some() {
            let labels = object.labels_mut();
            if self.managed {
                labels.insert(MANAGED_BY.into(), MANAGER.into());
            }
            if let Some(system) = &self.system {
                labels.insert(HEALTHSYSTEM.into(), system.to_string());
            }
        }
        Some(Arc::new(Live {
            object,
            owned: self.owned,
        }))
    }
}

#[derive(Default)]
struct Inner {
    objects: HashMap<Key, Stored>,
    /// The keys of each system's objects.
    by_system: HashMap<Arc<str>, HashSet<Key>>,
    /// Objects of a relist under way, swapped in whole when it completes (so objects deleted
    /// while the watch was down disappear).
    relist: Option<HashMap<Key, Stored>>,
}

impl Inner {
    fn insert(&mut self, key: Key, mut object: Stored) {
        self.forget(&key);
        if let Some(system) = object.system.take() {
            // The system's name is held once, by its index entry.
            let shared = match self.by_system.get_key_value(&system) {
                Some((shared, _)) => shared.clone(),
                None => system,
            };
            self.by_system
                .entry(shared.clone())
                .or_default()
                .insert(key.clone());
            object.system = Some(shared);
        }
        self.objects.insert(key, object);
    }

    fn forget(&mut self, key: &Key) {
        let Some(old) = self.objects.remove(key) else {
            return;
        };
        if let Some(system) = &old.system
            && let Some(keys) = self.by_system.get_mut(system)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_system.remove(system);
            }
        }
    }
}

/// The objects of one kind, shared by the watch that writes them and the reconciles that
/// read them.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<RwLock<Inner>>,
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            ready: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

fn key(object: &Live) -> Key {
    key_of(&object.namespace().unwrap_or_default(), &object.name_any()).into()
}

impl Cache {
    /// The object named `name` in `namespace` ("" for a cluster-scoped kind).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Live>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .objects
            .get(key_of(namespace, name).as_str())
            .and_then(Stored::read)
    }

    /// Every object labelled as belonging to the HealthSystem `system`, in any namespace.
    pub fn of_system(&self, system: &str) -> Vec<Arc<Live>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .by_system
            .get(system)
            .into_iter()
            .flatten()
            .filter_map(|key| inner.objects.get(key).and_then(Stored::read))
            .collect()
    }

    /// Every object held (a scan: for what is rare, never per reconcile).
    pub fn all(&self) -> Vec<Arc<Live>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.objects.values().filter_map(Stored::read).collect()
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.objects.len()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the first full list has been taken in.
    pub async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// Takes one watch event in (only the watch's own task calls this).
    pub fn write(&self, event: watcher::Event<Live>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(object) => inner.insert(key(&object), Stored::new(object)),
            watcher::Event::Delete(object) => inner.forget(&key(&object)),
            watcher::Event::Init => inner.relist = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                if let Some(relist) = inner.relist.as_mut() {
                    relist.insert(key(&object), Stored::new(object));
                }
            }
            watcher::Event::InitDone => {
                let relist = inner.relist.take().unwrap_or_default();
                inner.objects.clear();
                inner.by_system.clear();
                for (key, object) in relist {
                    inner.insert(key, object);
                }
                drop(inner);
                self.ready.send_replace(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(namespace: &str, name: &str, system: &str) -> Live {
        Live::whole(
            serde_json::from_value(json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": { "name": name, "namespace": namespace,
                              "labels": { HEALTHSYSTEM: system } }
            }))
            .unwrap(),
        )
    }

    #[test]
    fn objects_are_found_by_name_and_by_system() {
        let cache = Cache::default();
        cache.write(watcher::Event::Apply(object("hs-a", "backup-1", "a")));
        cache.write(watcher::Event::Apply(object("restore", "drill-a", "a")));
        cache.write(watcher::Event::Apply(object("hs-b", "backup-1", "b")));
        assert!(cache.get("hs-a", "backup-1").is_some());
        assert!(cache.get("hs-a", "drill-a").is_none());
        let mut names: Vec<String> = cache.of_system("a").iter().map(|o| o.name_any()).collect();
        names.sort();
        assert_eq!(names, ["backup-1", "drill-a"]);
        assert_eq!(cache.of_system("b").len(), 1);
        assert!(cache.of_system("c").is_empty());
    }

    /// What is read back is what was written: the object, its labels (two of which are held
    /// outside its JSON) and the digest of what it owns.
    #[test]
    fn an_object_reads_back_as_it_was_written() {
        let cache = Cache::default();
        let mut written = object("hs-a", "backup-1", "a");
        written.object.data = json!({ "status": { "active": [{ "name": "x" }], "succeeded": 1 } });
        written.owned = Some(42);
        let labels = written.object.labels_mut();
        labels.insert(MANAGED_BY.into(), MANAGER.into());
        labels.insert("app.kubernetes.io/component".into(), "backup".into());
        cache.write(watcher::Event::Apply(written.clone()));
        let read = cache.get("hs-a", "backup-1").unwrap();
        assert_eq!(read.object, written.object);
        assert_eq!(read.owned, Some(42));
        assert_eq!(cache.of_system("a")[0].object, written.object);
        assert_eq!(cache.all()[0].object, written.object);

        // Another manager's label is kept as it is; an object without labels stays without.
        let mut foreign = object("hs-a", "other", "a");
        foreign
            .object
            .labels_mut()
            .insert(MANAGED_BY.into(), "helm".into());
        let mut bare = object("hs-a", "bare", "a");
        bare.object.metadata.labels = None;
        for written in [foreign, bare] {
            cache.write(watcher::Event::Apply(written.clone()));
            let read = cache.get("hs-a", &written.name_any()).unwrap();
            assert_eq!(read.object, written.object);
        }
    }

    #[test]
    fn a_relabelled_or_deleted_object_leaves_its_system() {
        let cache = Cache::default();
        cache.write(watcher::Event::Apply(object("hs-a", "x", "a")));
        cache.write(watcher::Event::Apply(object("hs-a", "x", "b")));
        assert!(cache.of_system("a").is_empty());
        assert_eq!(cache.of_system("b").len(), 1);
        cache.write(watcher::Event::Delete(object("hs-a", "x", "b")));
        assert!(cache.of_system("b").is_empty());
        assert!(cache.is_empty());
    }

    /// A relist replaces what was held: an object deleted while the watch was down goes.
    #[test]
    fn a_relist_replaces_everything_and_only_when_done() {
        let cache = Cache::default();
        cache.write(watcher::Event::Apply(object("hs-a", "gone", "a")));
        cache.write(watcher::Event::Init);
        cache.write(watcher::Event::InitApply(object("hs-a", "kept", "a")));
        assert!(
            cache.get("hs-a", "gone").is_some(),
            "not before the relist ends"
        );
        cache.write(watcher::Event::InitDone);
        assert!(cache.get("hs-a", "gone").is_none());
        let names: Vec<String> = cache.of_system("a").iter().map(|o| o.name_any()).collect();
        assert_eq!(names, ["kept"]);
    }

    #[tokio::test]
    async fn ready_after_the_first_list() {
        let cache = Cache::default();
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        cache.write(watcher::Event::Init);
        cache.write(watcher::Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("ready once listed")
            .unwrap();
    }
}
