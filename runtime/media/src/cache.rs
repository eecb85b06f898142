//! A small bounded least-recently-used cache of decoded audio, shared by the TTS engine and
//! the fetcher so that a prompt played on every call is decoded once, while a flood of distinct
//! prompts cannot grow memory without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;

/// Audio by key, bounded both in entries and in total samples. Eviction scans for the least
/// recently used entry: linear, which is cheaper than bookkeeping at a few hundred entries.
#[derive(Debug)]
pub(crate) struct AudioCache<K> {
    inner: Mutex<Inner<K>>,
    max_entries: usize,
    max_samples: usize,
}

#[derive(Debug)]
struct Inner<K> {
    entries: HashMap<K, Entry>,
    samples: usize,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    audio: Arc<[i16]>,
    used: u64,
}

impl<K: Eq + Hash + Clone> AudioCache<K> {
    pub(crate) fn new(max_entries: usize, max_samples: usize) -> Self {
        Self {
            inner: Mutex::new(Inner { entries: HashMap::new(), samples: 0, clock: 0 }),
            max_entries,
            max_samples,
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<Arc<[i16]>> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(key)?;
        entry.used = now;
        Some(entry.audio.clone())
    }

    /// Stores `audio`; audio larger than the whole cache is not stored.
    pub(crate) fn insert(&self, key: K, audio: Arc<[i16]>) {
        if audio.len() > self.max_samples || self.max_entries == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(old) = inner.entries.remove(&key) {
            inner.samples -= old.audio.len();
        }
        while inner.entries.len() >= self.max_entries || inner.samples + audio.len() > self.max_samples {
            let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
            else {
                break;
            };
            let evicted = inner.entries.remove(&oldest).expect("key just found");
            inner.samples -= evicted.audio.len();
        }
        inner.samples += audio.len();
        inner.entries.insert(key, Entry { audio, used: now });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(len: usize) -> Arc<[i16]> {
        vec![1i16; len].into()
    }

    #[test]
    fn evicts_the_least_recently_used_entry() {
        let cache = AudioCache::new(2, 1_000);
        cache.insert("a", audio(1));
        cache.insert("b", audio(1));
        assert!(cache.get(&"a").is_some()); // b is now the oldest
        cache.insert("c", audio(1));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&"b").is_none());
        assert!(cache.get(&"a").is_some() && cache.get(&"c").is_some());
    }

    #[test]
    fn bounds_total_samples_and_skips_oversized_audio() {
        let cache = AudioCache::new(10, 100);
        cache.insert(1, audio(60));
        cache.insert(2, audio(30));
        cache.insert(3, audio(30)); // 120 > 100: evicts 1
        assert!(cache.get(&1).is_none());
        assert_eq!(cache.get(&2).unwrap().len(), 30);
        cache.insert(4, audio(101));
        assert!(cache.get(&4).is_none());
        // Replacing a key does not double-count it.
        cache.insert(2, audio(40));
        cache.insert(5, audio(30));
        assert_eq!(cache.len(), 3);
    }
}
