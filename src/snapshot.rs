//! A value that every request reads and that changes seldom (the knobs, the map of the RED
//! series, the native histogram that a reset replaces): an [`ArcSwap`], whose readers on the
//! request path keep its latest version in a cache of their thread's.
//!
//! An `ArcSwap`'s load is lock-free but not free: it claims a slot in the thread's debt list and
//! gives it back, two atomic read-modify-writes. A thread's [`arc_swap::Cache`] holds the
//! version it read last and checks it with one relaxed load of the pointer: no atomic
//! read-modify-write, for about as many instructions (the thread local, its `RefCell`), and a
//! read that begins after a store sees the new version, on every thread. The cache is the
//! crate's; what is here is only where it is kept: each reading site declares a thread local of
//! its own ([`Local`]) and passes it to [`Snapshot::read`].
//!
//! A thread's cache keeps the version it read last, and the `ArcSwap` itself, alive until the
//! thread reads that site again or ends: after a reset, the old map until the next request on
//! that thread; after a test's `Snapshot` is dropped, until the thread reads another.
//!
//! A map of series that requests count into ([`Snapshot::with_entry`]) is one: a key seen for
//! the first time copies the map with it added, a few dozen times in the life of the service;
//! every other request only reads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::ops::Deref;
use std::sync::Arc;
use std::thread::LocalKey;

use arc_swap::{ArcSwap, Cache};

/// An `ArcSwap` that can also be read through a thread's cache. Everything else (`load`,
/// `store`, `rcu`) is the `ArcSwap`'s own.
#[derive(Debug)]
pub struct Snapshot<T>(Arc<ArcSwap<T>>);

/// A thread's cache of one reading site: the version of a snapshot that the thread read last.
/// Declare it with `thread_local!` and a `const` initializer:
/// `static KNOBS: Local<Knobs> = const { RefCell::new(None) };`.
pub type Local<T> = RefCell<Option<Cache<Arc<ArcSwap<T>>, Arc<T>>>>;

impl<T> Snapshot<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(value)))
    }

    /// Calls `f` with the latest version, read through this thread's cache at `local`.
    ///
    /// A cache of another snapshot (tests make many of one kind) is replaced by one of this.
    /// When the cache cannot be had (`f` reads the same site again, or the thread is ending),
    /// `f` gets a plain load.
    pub(crate) fn read<R>(
        &self,
        local: &'static LocalKey<Local<T>>,
        mut f: impl FnMut(&T) -> R,
    ) -> R {
        let cached = local.try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let cache = match &mut *slot {
                Some(cache) if std::ptr::eq(cache.arc_swap(), &*self.0) => cache,
                other => other.insert(Cache::new(Arc::clone(&self.0))),
            };
            Some(f(cache.load()))
        });
        match cached {
            Ok(Some(read)) => read,
            _ => f(&self.0.load()),
        }
    }
}

impl<K, V, S> Snapshot<HashMap<K, Arc<V>, S>>
where
    K: Hash + Eq + Clone,
    S: BuildHasher + Clone,
{
    /// Calls `f` with the value of `key`, read through this thread's cache at `local`; a key
    /// that is not there yet is added first, with the value `new` makes, unless another thread
    /// added it meanwhile.
    pub(crate) fn with_entry<R>(
        &self,
        local: &'static LocalKey<Local<HashMap<K, Arc<V>, S>>>,
        key: &K,
        new: impl Fn() -> V,
        mut f: impl FnMut(&V) -> R,
    ) -> R {
        if let Some(read) = self.read(local, |map| map.get(key).map(|value| f(value))) {
            return read;
        }
        let mut added = None;
        self.rcu(|map| {
            let mut map = HashMap::clone(map);
            let value = map.entry(key.clone()).or_insert_with(|| Arc::new(new()));
            added = Some(Arc::clone(value));
            map
        });
        f(&added.expect("rcu runs its closure"))
    }
}

impl<T> Deref for Snapshot<T> {
    type Target = ArcSwap<T>;

    fn deref(&self) -> &ArcSwap<T> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};

    use super::{Local, Snapshot};

    thread_local! {
        static NUMBER: Local<u32> = const { RefCell::new(None) };
    }

    #[test]
    fn a_read_sees_the_latest_store_on_every_thread() {
        let snapshot = Arc::new(Snapshot::new(1));
        assert_eq!(snapshot.read(&NUMBER, |n| *n), 1);
        let other = std::thread::spawn({
            let snapshot = Arc::clone(&snapshot);
            move || {
                let first = snapshot.read(&NUMBER, |n| *n);
                snapshot.store(Arc::new(2));
                (first, snapshot.read(&NUMBER, |n| *n))
            }
        });
        assert_eq!(other.join().unwrap(), (1, 2));
        // This thread's cache holds 1, which is stale now.
        assert_eq!(snapshot.read(&NUMBER, |n| *n), 2);
        snapshot.store(Arc::new(3));
        assert_eq!(snapshot.read(&NUMBER, |n| *n), 3);
    }

    #[test]
    fn snapshots_read_at_one_site_each_give_their_own() {
        let one = Snapshot::new(1);
        let two = Snapshot::new(2);
        for _ in 0..3 {
            assert_eq!(one.read(&NUMBER, |n| *n), 1);
            assert_eq!(two.read(&NUMBER, |n| *n), 2);
        }
    }

    #[test]
    fn a_read_keeps_the_version_in_the_threads_cache_until_another_snapshot_is_read() {
        let one = Snapshot::new(1);
        let two = Snapshot::new(2);
        assert_eq!(Arc::strong_count(&one.0), 1);
        one.read(&NUMBER, |_| ());
        assert_eq!(Arc::strong_count(&one.0), 2, "the cache holds one");
        two.read(&NUMBER, |_| ());
        assert_eq!(Arc::strong_count(&one.0), 1, "the cache moved to two");
        assert_eq!(Arc::strong_count(&two.0), 2);
    }

    thread_local! {
        static COUNTS: Local<Counts> = const { RefCell::new(None) };
    }

    type Counts = HashMap<u32, Arc<AtomicU64>>;

    #[test]
    fn keys_added_by_threads_at_once_lose_no_count() {
        const THREADS: u64 = 4;
        const ROUNDS: u64 = 2_000;
        const KEYS: u32 = 16;
        let counts = Arc::new(Snapshot::new(Counts::default()));
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (counts, start) = (counts.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..ROUNDS {
                        for key in 0..KEYS {
                            counts.with_entry(&COUNTS, &key, AtomicU64::default, |n| {
                                n.fetch_add(1, Ordering::Relaxed);
                            });
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let map = counts.load();
        assert_eq!(map.len(), KEYS as usize);
        for (key, n) in map.iter() {
            assert_eq!(n.load(Ordering::Relaxed), THREADS * ROUNDS, "key {key}");
        }
    }

    #[test]
    fn an_entry_after_a_reset_lands_in_the_new_map_though_the_cache_was_warm() {
        let counts = Snapshot::new(Counts::default());
        let count = |key| {
            counts.with_entry(&COUNTS, &key, AtomicU64::default, |n| {
                n.fetch_add(1, Ordering::Relaxed);
            })
        };
        count(7);
        count(7);
        counts.store(Arc::new(Counts::default()));
        count(7);
        let n = counts.load().get(&7).map(|n| n.load(Ordering::Relaxed));
        assert_eq!(n, Some(1));
    }

    #[test]
    fn a_read_within_a_read_of_the_same_site_gets_a_plain_load() {
        let outer = Snapshot::new(1);
        let inner = Snapshot::new(2);
        let read = outer.read(&NUMBER, |o| *o * 10 + inner.read(&NUMBER, |i| *i));
        assert_eq!(read, 12);
        assert_eq!(inner.read(&NUMBER, |i| *i), 2);
    }
}
