//! The state in memory: the ordered set of live keys with their values, the expiry index
//! and the tombstones.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::Entry;

/// `Item::expires_at` of a key without a TTL. Comparing `expires_at <= now` is then false
/// for every real clock, so no branch is needed; a TTL so long that it saturates to this
/// value is indistinguishable from none.
pub(crate) const NO_EXPIRY: i64 = i64::MAX;

/// One live key: its key and value in a single heap block, `[key length: u32 LE][key][value]`,
/// with its revision and expiry. 32 bytes in the tree plus one allocation: one block rather
/// than two saves an allocation header and a rounding per key, and the tree's element shrinks
/// from 48 to 32 bytes. Ordered, compared and borrowed as its key's bytes only (UTF-8 orders
/// as its bytes do), so the set is looked up with `key.as_bytes()`.
#[derive(Clone)]
pub(crate) struct Item {
    block: Box<[u8]>,
    pub(crate) revision: u64,
    pub(crate) expires_at: i64,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("key", &self.key())
            .field("value_len", &self.value().len())
            .field("revision", &self.revision)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Item {
    pub(crate) fn new(key: &str, value: &[u8], revision: u64, expiry: Option<i64>) -> Item {
        let mut block = Vec::with_capacity(4 + key.len() + value.len());
        // Keys are shorter than a log record, whose length is a u32.
        block.extend_from_slice(&(key.len() as u32).to_le_bytes());
        block.extend_from_slice(key.as_bytes());
        block.extend_from_slice(value);
        Item {
            block: block.into_boxed_slice(),
            revision,
            expires_at: expiry.unwrap_or(NO_EXPIRY),
        }
    }

    /// An item from a block laid out as [`Item`] says; `None` if it is not.
    pub(crate) fn from_block(block: Box<[u8]>, revision: u64, expires_at: i64) -> Option<Item> {
        let item = Item {
            block,
            revision,
            expires_at,
        };
        let sound = item.block.len() >= 4
            && 4 + item.key_len() <= item.block.len()
            && std::str::from_utf8(item.key_bytes()).is_ok();
        sound.then_some(item)
    }

    fn key_len(&self) -> usize {
        self.block
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_le_bytes(*b) as usize)
    }

    pub(crate) fn key_bytes(&self) -> &[u8] {
        self.block.get(4..4 + self.key_len()).unwrap_or_default()
    }

    /// The key (built from a `&str`, so always UTF-8).
    pub(crate) fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).unwrap_or_default()
    }

    pub(crate) fn value(&self) -> &[u8] {
        self.block.get(4 + self.key_len()..).unwrap_or_default()
    }

    pub(crate) fn expiry(&self) -> Option<i64> {
        (self.expires_at != NO_EXPIRY).then_some(self.expires_at)
    }

    pub(crate) fn is_live(&self, now_us: i64) -> bool {
        self.expires_at > now_us
    }

    pub(crate) fn to_entry(&self) -> Entry {
        Entry {
            value: self.value().to_vec(),
            revision: self.revision,
            expires_at_us: self.expiry(),
        }
    }
}

impl Borrow<[u8]> for Item {
    fn borrow(&self) -> &[u8] {
        self.key_bytes()
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes() == other.key_bytes()
    }
}

impl Eq for Item {}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key_bytes().cmp(other.key_bytes())
    }
}

/// The fold of the change log.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Every key whose last change is a put, expired or not yet swept included.
    pub(crate) map: BTreeSet<Item>,
    /// `(expires_at, key)` of every key in `map` with a TTL, soonest first.
    pub(crate) expiry: BTreeSet<(i64, Box<str>)>,
    /// Revision of the last change (a delete or an expire) of keys absent from `map`, while
    /// that change is still in the log: history starts there, and a new put links to it.
    pub(crate) tombstones: BTreeMap<Box<str>, u64>,
}

impl State {
    /// The key's item, expired or not.
    pub(crate) fn get(&self, key: &str) -> Option<&Item> {
        self.map.get(key.as_bytes())
    }

    /// The key's item, if it is live at `now_us`.
    pub(crate) fn live(&self, key: &str, now_us: i64) -> Option<&Item> {
        self.get(key).filter(|s| s.is_live(now_us))
    }

    /// The revision of the key's last change still known: its put, or its delete or expire.
    pub(crate) fn last_revision(&self, key: &str) -> Option<u64> {
        match self.get(key) {
            Some(item) => Some(item.revision),
            None => self.tombstones.get(key).copied(),
        }
    }

    /// Applies a put.
    pub(crate) fn put(&mut self, key: &str, value: &[u8], revision: u64, expiry: Option<i64>) {
        let item = Item::new(key, value, revision, expiry);
        let expires_at = item.expires_at;
        match self.map.replace(item) {
            Some(old) => {
                if old.expires_at != expires_at {
                    if old.expires_at != NO_EXPIRY {
                        self.expiry.remove(&(old.expires_at, Box::from(key)));
                    }
                    if expires_at != NO_EXPIRY {
                        self.expiry.insert((expires_at, Box::from(key)));
                    }
                }
            }
            None => {
                if !self.tombstones.is_empty() {
                    self.tombstones.remove(key);
                }
                if expires_at != NO_EXPIRY {
                    self.expiry.insert((expires_at, Box::from(key)));
                }
            }
        }
    }

    /// Applies a delete or an expire at `revision`.
    pub(crate) fn remove(&mut self, key: &str, revision: u64) {
        let key: Box<str> = Box::from(key);
        if let Some(old) = self.map.take(key.as_bytes()) {
            if old.expires_at != NO_EXPIRY {
                self.expiry.remove(&(old.expires_at, key.clone()));
            }
        }
        self.tombstones.insert(key, revision);
    }

    /// Forgets tombstones whose change the log no longer holds.
    pub(crate) fn prune_tombstones(&mut self, first_offset: u64) {
        self.tombstones.retain(|_, &mut rev| rev >= first_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_key_overhead_is_small() {
        // The tree's element is the block's pointer and length, the revision and the expiry.
        // A BTreeSet leaf holds up to 11 of them in a 364-byte node, and is between half and
        // completely full, so the tree costs about 33 to 66 bytes a key (plus about a sixth
        // of that in internal nodes); the key and value share one heap block, with 4 bytes
        // of key length. See tests/memory.rs for a measurement.
        assert_eq!(std::mem::size_of::<Item>(), 32);
        let item = Item::new("key", b"value", 7, None);
        assert_eq!(item.block.len(), 4 + 3 + 5);
        assert_eq!((item.key(), item.value()), ("key", &b"value"[..]));
    }

    #[test]
    fn items_order_and_compare_by_key_only() {
        let a = Item::new("a", b"zzz", 9, Some(1));
        let b = Item::new("b", b"", 0, None);
        let a2 = Item::new("a", b"other", 1, None);
        assert!(a < b);
        assert_eq!(a, a2);
        let empty_value = Item::new("k", b"", 0, None);
        assert_eq!((empty_value.key(), empty_value.value()), ("k", &b""[..]));
        // UTF-8 orders as its bytes do, as `str` does.
        let mut keys = ["é", "z", "a/b", "a", "日本", "a0"];
        let mut items: Vec<Item> = keys.iter().map(|k| Item::new(k, b"", 0, None)).collect();
        keys.sort();
        items.sort();
        assert_eq!(items.iter().map(Item::key).collect::<Vec<_>>(), keys);
    }

    #[test]
    fn blocks_from_disk_are_checked() {
        assert!(Item::from_block(Box::from(&[1u8, 0, 0][..]), 0, 0).is_none());
        assert!(Item::from_block(Box::from(&[5u8, 0, 0, 0, b'a'][..]), 0, 0).is_none());
        assert!(Item::from_block(Box::from(&[1u8, 0, 0, 0, 0xff][..]), 0, 0).is_none());
        let ok = Item::from_block(Box::from(&[1u8, 0, 0, 0, b'a', b'v'][..]), 3, 4).unwrap();
        assert_eq!((ok.key(), ok.value(), ok.revision), ("a", &b"v"[..], 3));
    }

    #[test]
    fn put_remove_keep_indexes_in_step() {
        let mut s = State::default();
        s.put("a", b"1", 0, Some(100));
        s.put("b", b"2", 1, None);
        assert_eq!(s.expiry.len(), 1);
        s.put("a", b"3", 2, Some(200));
        assert_eq!(
            s.expiry.iter().cloned().collect::<Vec<_>>(),
            vec![(200, Box::from("a"))]
        );
        assert_eq!(s.get("a").map(Item::value), Some(&b"3"[..]));
        s.put("a", b"4", 3, None);
        assert!(s.expiry.is_empty());
        s.put("a", b"5", 4, Some(50));
        s.remove("a", 5);
        assert!(s.expiry.is_empty());
        assert_eq!(s.last_revision("a"), Some(5));
        assert!(s.live("a", 0).is_none());
        s.put("a", b"6", 6, None);
        assert!(s.tombstones.is_empty());
        assert_eq!(s.live("a", 0).map(|s| s.revision), Some(6));
        s.remove("b", 7);
        s.prune_tombstones(8);
        assert!(s.tombstones.is_empty());
        assert_eq!(s.map.len(), 1);
    }

    #[test]
    fn expiry_is_exclusive_of_the_instant() {
        let item = Item::new("k", b"", 0, Some(10));
        assert!(item.is_live(9));
        assert!(!item.is_live(10));
        assert_eq!(item.expiry(), Some(10));
        assert_eq!(Item::new("k", b"", 0, None).expiry(), None);
    }
}
