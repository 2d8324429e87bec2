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
