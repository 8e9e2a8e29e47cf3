//! Bounded caches of work already done once: verified tokens and opened session
//! cookies, so a repeated credential skips its signature check or decryption.
//!
//! Entries are keyed by a 128-bit keyed hash of the whole credential (SipHash-2-4-128
//! under a secret key drawn per VM), so no token or cookie is kept, and a different
//! credential with the same key would take a 2^128 search by someone who cannot even
//! see the keys. It replaced SHA-256, which cost ~6 µs per KB of token under V8 (7%
//! of the hot path's throughput, 12% of the session path's). Only credentials
//! that passed every check are inserted: an attacker cannot fill the cache (and
//! evict good entries) without valid tokens or sessions. Eviction is CLOCK
//! (second chance): entries used since the last sweep survive it, so a flood of
//! one-off credentials displaces one-off entries before busy ones.

use siphasher::sip128::{Hasher128 as _, SipHasher24};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

pub type Key = u128;

/// The secret of a VM's cache keys: random bytes from the host.
pub type HashSecret = [u8; 16];

/// The cache key of a credential. `domain` keeps different kinds of credentials
/// apart (a token and a cookie with the same bytes are different things).
pub fn key_of(secret: &HashSecret, domain: &[u8], credential: &[u8]) -> Key {
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(domain);
    hasher.write_u8(0);
    hasher.write(credential);
    hasher.finish128().as_u128()
}

/// Keys are already uniform (keyed-hash outputs): the map uses their low bits as
/// they are instead of hashing them again.
#[derive(Default)]
struct KeyBits(u64);

impl Hasher for KeyBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

/// Bookkeeping an entry costs beyond its own estimate: key, slot, map and queue.
const ENTRY_OVERHEAD_BYTES: usize = 128;

struct Slot<V> {
    value: Rc<V>,
    bytes: usize,
    /// Seconds; the entry is gone at this time.
    expires_at: u64,
    referenced: bool,
}

pub struct BoundedCache<V> {
    limits: Limits,
    secret: HashSecret,
    slots: HashMap<Key, Slot<V>, BuildHasherDefault<KeyBits>>,
    /// Sweep order. May hold keys already removed; they are skipped and compacted.
    order: VecDeque<Key>,
    bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl<V> BoundedCache<V> {
    /// `secret` must be random and stay inside the VM.
    pub fn new(limits: Limits, secret: HashSecret) -> Self {
        Self {
            limits,
            secret,
            slots: HashMap::default(),
            order: VecDeque::new(),
            bytes: 0,
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Estimated bytes held, counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The key of `credential` in this cache.
    pub fn key_of(&self, domain: &[u8], credential: &[u8]) -> Key {
        key_of(&self.secret, domain, credential)
    }

    /// `maxEntries: 0` turns a cache off; callers then skip hashing keys at all.
    pub fn enabled(&self) -> bool {
        self.limits.max_entries > 0
    }

    /// The entry, if present and not expired. Callers count the lookup with
    /// [`BoundedCache::count`] once they know whether the entry was usable.
    pub fn get(&mut self, key: &Key, now: u64) -> Option<Rc<V>> {
        let expired = match self.slots.get_mut(key) {
            Some(slot) if now < slot.expires_at => {
                slot.referenced = true;
                return Some(Rc::clone(&slot.value));
            }
            Some(_) => true,
            None => false,
        };
        if expired {
            self.remove(key);
        }
        None
    }

    pub fn count(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    /// Stores `value` until `expires_at` and hands it back shared. `value_bytes`
    /// estimates its heap size. An entry larger than an eighth of the byte budget
    /// is not worth a slot.
    pub fn insert(
        &mut self,
        key: Key,
        value: V,
        value_bytes: usize,
        expires_at: u64,
        now: u64,
    ) -> Rc<V> {
        let value = Rc::new(value);
        let bytes = value_bytes.saturating_add(ENTRY_OVERHEAD_BYTES);
        if expires_at <= now || self.limits.max_entries == 0 || bytes > self.limits.max_bytes / 8 {
            return value;
        }
        self.remove(&key);
        self.make_room(bytes, now);
        self.bytes = self.bytes.saturating_add(bytes);
        let slot = Slot {
            value: Rc::clone(&value),
            bytes,
            expires_at,
            referenced: false,
        };
        self.slots.insert(key, slot);
        self.order.push_back(key);
        self.compact_order();
        value
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.order.clear();
        self.bytes = 0;
    }

    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.slots.remove(key) {
            self.bytes = self.bytes.saturating_sub(slot.bytes);
        }
    }

    fn is_full(&self, incoming_bytes: usize) -> bool {
        self.slots.len() >= self.limits.max_entries
            || self.bytes.saturating_add(incoming_bytes) > self.limits.max_bytes
    }

    /// CLOCK sweep: expired and unreferenced entries go; referenced ones get a
    /// second chance. Every key is looked at most twice, so this ends.
    fn make_room(&mut self, incoming_bytes: usize, now: u64) {
        let mut budget = self.order.len().saturating_mul(2);
        while self.is_full(incoming_bytes) && budget > 0 {
            budget -= 1;
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            if slot.referenced && now < slot.expires_at {
                slot.referenced = false;
                self.order.push_back(key);
            } else {
                self.remove(&key);
            }
        }
    }

    /// Keys removed on lookup stay in `order`; drop them before it outgrows the map.
    fn compact_order(&mut self) {
        if self.order.len() > self.slots.len().saturating_mul(2).max(64) {
            let slots = &self.slots;
            self.order.retain(|key| slots.contains_key(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const SECRET: HashSecret = [9; 16];

    fn cache(max_entries: usize, max_bytes: usize) -> BoundedCache<u32> {
        BoundedCache::new(
            Limits {
                max_entries,
                max_bytes,
            },
            SECRET,
        )
    }

    fn key(n: u32) -> Key {
        key_of(&SECRET, b"test", &n.to_be_bytes())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_differ_by_secret_domain_and_credential() {
        let key = |domain: &[u8], credential: &[u8]| key_of(&SECRET, domain, credential);
        assert_ne!(key(b"token", b"abc"), key(b"cookie", b"abc"));
        assert_ne!(key(b"token", b"abc"), key(b"token", b"abd"));
        // The separator keeps `ab`+`c` apart from `a`+`bc`.
        assert_ne!(key(b"ab", b"c"), key(b"a", b"bc"));
        assert_ne!(key_of(&[1; 16], b"token", b"abc"), key(b"token", b"abc"));
        assert_eq!(
            cache(1, 1 << 20).key_of(b"token", b"abc"),
            key(b"token", b"abc")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn siphash_2_4_128_reference_vector() {
        // The reference implementation's first 128-bit vector (vectors.h in
        // github.com/veorq/SipHash): key 00..0f, empty message.
        let mut hasher = SipHasher24::new_with_key(&core::array::from_fn(|i| i as u8));
        hasher.write(&[]);
        assert_eq!(
            hasher.finish128().as_bytes(),
            [
                0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
                0x02, 0x93
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_entry_is_served_until_it_expires() {
        let mut cache = cache(10, 1 << 20);
        cache.insert(key(1), 7, 10, 100, 0);
        assert_eq!(cache.get(&key(1), 99).as_deref(), Some(&7));
        assert_eq!(cache.get(&key(1), 100), None);
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn already_expired_or_oversized_entries_are_not_stored() {
        let mut cache = cache(10, 8 * 1024);
        cache.insert(key(1), 1, 10, 50, 50);
        cache.insert(key(2), 2, 2000, 100, 0);
        assert!(cache.is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_entry_count_is_bounded_and_used_entries_survive() {
        let mut cache = cache(3, 1 << 20);
        for n in 0..3 {
            cache.insert(key(n), n, 10, 100, 0);
        }
        assert!(cache.get(&key(0), 1).is_some());
        cache.insert(key(3), 3, 10, 100, 1);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key(0), 1).is_some(), "used entry evicted");
        assert!(cache.get(&key(1), 1).is_none(), "oldest unused entry kept");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_byte_budget_is_bounded() {
        let mut cache = cache(1000, 8 * 1024);
        for n in 0..100 {
            cache.insert(key(n), n, 500, 100, 0);
            assert!(cache.bytes() <= 8 * 1024, "{}", cache.bytes());
        }
        assert!(cache.len() >= 8);
        assert!(cache.get(&key(99), 1).is_some());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_flood_of_new_entries_keeps_the_queue_bounded() {
        let mut cache = cache(50, 1 << 20);
        for n in 0..10_000 {
            cache.insert(key(n), n, 10, 1 + u64::from(n % 3), 0);
            // Lookups after expiry remove entries but leave their queue positions.
            let _ = cache.get(&key(n), 5);
        }
        assert!(cache.order.len() <= 128, "{}", cache.order.len());
        assert!(cache.len() <= 50);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn replacing_an_entry_counts_its_bytes_once() {
        let mut cache = cache(10, 1 << 20);
        cache.insert(key(1), 1, 100, 100, 0);
        cache.insert(key(1), 2, 100, 100, 0);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), 100 + ENTRY_OVERHEAD_BYTES);
        assert_eq!(cache.get(&key(1), 1).as_deref(), Some(&2));
    }
}
