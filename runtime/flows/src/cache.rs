//! Bounds on what uploads cost the host: compiled components are kept in a least-recently-used
//! cache bounded in entries (not a map that grows with every upload), the disk cache of
//! precompiled files is bounded in bytes (`opentact_media::disk_budget`), and compiles run a
//! few at a time ([`CompileGate`]) within a time limit (`FlowHost::load_component_async`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Values by key, at most `capacity` of them; inserting past it drops the least recently
/// used. Eviction scans the entries: linear, cheaper than bookkeeping at a few hundred.
#[derive(Debug)]
pub(crate) struct Lru<V> {
    inner: Mutex<Inner<V>>,
    capacity: usize,
}

#[derive(Debug)]
struct Inner<V> {
    entries: HashMap<String, (V, u64)>,
    clock: u64,
}

impl<V: Clone> Lru<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { inner: Mutex::new(Inner { entries: HashMap::new(), clock: 0 }), capacity: capacity.max(1) }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let (value, used) = inner.entries.get_mut(key)?;
        *used = now;
        Some(value.clone())
    }

    pub(crate) fn insert(&self, key: String, value: V) {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.remove(&key);
        while inner.entries.len() >= self.capacity {
            let Some(oldest) =
                inner.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
            else {
                break;
            };
            inner.entries.remove(&oldest);
        }
        inner.entries.insert(key, (value, now));
    }

    pub(crate) fn remove(&self, key: &str) {
        self.inner.lock().entries.remove(key);
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }
}

/// The permits compiles run under, and how many ran at once (for tests and metrics).
#[derive(Debug)]
pub(crate) struct CompileGate {
    pub(crate) permits: std::sync::Arc<tokio::sync::Semaphore>,
    running: AtomicU64,
    peak: AtomicU64,
}

impl CompileGate {
    pub(crate) fn new(permits: u32) -> Self {
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(permits.max(1) as usize)),
            running: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Counts a compile as running until the guard drops.
    pub(crate) fn running(&self) -> Running<'_> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Running(self)
    }

    pub(crate) fn running_now(&self) -> u64 {
        self.running.load(Ordering::SeqCst)
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
}

/// A compile in progress ([`CompileGate::running`]).
pub(crate) struct Running<'a>(&'a CompileGate);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_least_recently_used_entry_past_its_capacity() {
        let lru = Lru::new(2);
        lru.insert("a".to_owned(), 1);
        lru.insert("b".to_owned(), 2);
        assert_eq!(lru.get("a"), Some(1)); // b is now the oldest
        lru.insert("c".to_owned(), 3);
        assert_eq!(lru.len(), 2);
        assert_eq!((lru.get("a"), lru.get("b"), lru.get("c")), (Some(1), None, Some(3)));
        lru.insert("c".to_owned(), 4); // replacing is not growing
        assert_eq!((lru.len(), lru.get("c")), (2, Some(4)));
        lru.remove("a");
        assert_eq!(lru.len(), 1);
    }
}
