//! A bounded cache of persons' complete histories. Recorded events never change, so a
//! cached history is always a true prefix; `read_person` only fetches what came after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use throughcare_events::{PersonId, RecordedEvent};

pub(crate) type History = Arc<Vec<RecordedEvent>>;

pub(crate) struct HistoryCache {
    capacity: usize,
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    tick: u64,
    map: HashMap<PersonId, (u64, History)>,
}

impl HistoryCache {
    pub fn new(capacity: usize) -> Self {
        HistoryCache {
            capacity,
            inner: Mutex::new(State::default()),
        }
    }

    pub fn get(&self, person: PersonId) -> Option<History> {
        let mut s = self.inner.lock().expect("history cache lock");
        s.tick += 1;
        let tick = s.tick;
        s.map.get_mut(&person).map(|(used, h)| {
            *used = tick;
            h.clone()
        })
    }

    /// Keeps `history` (complete, oldest first) unless a longer one is cached already.
    pub fn put(&self, person: PersonId, history: History) {
        if self.capacity == 0 || history.is_empty() {
            return;
        }
        let mut s = self.inner.lock().expect("history cache lock");
        s.tick += 1;
        let tick = s.tick;
        let newer = |h: &History| h.last().map(|e| e.position);
        if let Some((used, cached)) = s.map.get_mut(&person) {
            if newer(cached) < newer(&history) {
                *cached = history;
            }
            *used = tick;
            return;
        }
        if s.map.len() >= self.capacity {
            // Drop the least recently used eighth in one go.
            let mut ticks: Vec<u64> = s.map.values().map(|(t, _)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks[(ticks.len() / 8).min(ticks.len() - 1)];
            s.map.retain(|_, (t, _)| *t > cut);
        }
        s.map.insert(person, (tick, history));
    }

    pub fn forget(&self, person: PersonId) {
        self.inner
            .lock()
            .expect("history cache lock")
            .map
            .remove(&person);
    }
}
