//! A bounded in-memory cache of folded journeys for the write path, so a submission folds
//! only the person's events since the cached version instead of their whole history.
//! Only events read back from the log (durable) or just acknowledged are ever folded in,
//! so a cached journey is never ahead of the log; a stale one makes the append conflict
//! and the write path re-reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use throughcare_events::PersonId;
use throughcare_projections::Journey;

pub(crate) struct JourneyCache {
    map: Mutex<HashMap<PersonId, Arc<Journey>>>,
    capacity: usize,
}

impl JourneyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        JourneyCache {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub(crate) fn get(&self, person: PersonId) -> Option<Arc<Journey>> {
        self.map.lock().expect("cache lock").get(&person).cloned()
    }

    /// Folds `apply` into the cached journey of `base`'s person if the cache holds exactly
    /// `base`'s version: in place when no one else holds it (no copy of the person's
    /// history), else on a copy. Keeps `base` with `apply` folded in when the cache has
    /// nothing for the person or an older version, and leaves a newer one alone.
    pub(crate) fn advance(&self, base: Arc<Journey>, apply: impl FnOnce(&mut Journey)) {
        let mut map = self.map.lock().expect("cache lock");
        match map.get_mut(&base.person_id) {
            Some(current) if current.version > base.version => return,
            Some(current) if current.version == base.version => {
                // Usually `base` is this very entry: let go of it so the entry is unshared
                // and `make_mut` folds in place.
                drop(base);
                apply(Arc::make_mut(current));
                return;
            }
            _ => {}
        }
        drop(map);
        let mut next = Arc::unwrap_or_clone(base);
        apply(&mut next);
        self.put(Arc::new(next));
    }

    /// Keeps `journey` unless the cache already holds a newer one for the person.
    pub(crate) fn put(&self, journey: Arc<Journey>) {
        let mut map = self.map.lock().expect("cache lock");
        if map.len() >= self.capacity && !map.contains_key(&journey.person_id) {
            // Crude but bounded: drop an arbitrary half when full.
            let evict: Vec<PersonId> = map.keys().copied().take(map.len() / 2).collect();
            for person in evict {
                map.remove(&person);
            }
        }
        match map.get(&journey.person_id) {
            Some(current) if current.version >= journey.version => {}
            _ => {
                map.insert(journey.person_id, journey);
            }
        }
    }
}
