//! String-keyed tables for the lookups evaluation makes on every call: a flag by its key, the
//! context key in a flag's targets or a segment's `included`/`excluded`, a string in an `in`
//! clause's values.
//!
//! Built once per snapshot, then only read. The keys are short (flag keys have at most 100
//! bytes, context keys are typically ids), and for short keys a general-purpose map spends
//! more on its probe machinery and a call to `memcmp` than on the key itself. Here a key of up
//! to 16 bytes is read as two words ([`ends`]), hashed from them with the FxHash step, and
//! each entry keeps its hash and words, so a probe compares three words and never reads the
//! key's bytes; longer keys are hashed word by word and compared byte by byte. A lookup never
//! allocates. The keys come from the snapshot (written by admins), so the table needs no
//! defence against chosen collisions: a looked-up key only decides where a probe starts.

/// A map from string keys to `V`, read-only once built.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap<V> {
    /// Open addressing with linear probing; a power-of-two length, at most half full, so
    /// every probe ends at an empty slot.
    slots: Box<[Option<Entry<V>>]>,
    /// `64 - log2(slots.len())`: the top bits of a hash pick the first slot.
    shift: u32,
    len: usize,
}

/// A set of string keys.
pub(crate) type KeySet = KeyMap<()>;

#[derive(Debug, Clone)]
struct Entry<V> {
    probe: Probe,
    key: Box<str>,
    value: V,
}

/// What a lookup computes from a key once, and each entry keeps of its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    hash: u64,
    /// [`ends`] of a key of up to 16 bytes; zeros for a longer one.
    ends: (u64, u64),
}

impl Probe {
    #[inline]
    fn new(key: &[u8]) -> Probe {
        if key.len() > 16 {
            return Probe {
                hash: hash_long(key),
                ends: (0, 0),
            };
        }
        let ends = ends(key);
        Probe {
            hash: hash_ends(key.len() as u64, ends),
            ends,
        }
    }

    /// Whether `entry` holds `key`, of which this is the probe. For keys of up to 16 bytes
    /// equal probes are proof: the hash mixes in the length, and the words are the bytes.
    #[inline]
    fn finds<V>(&self, entry: &Entry<V>, key: &[u8]) -> bool {
        entry.probe == *self && (key.len() <= 16 || entry.key.as_bytes() == key)
    }
}

impl<V> KeyMap<V> {
    /// Builds the map from `(key, value)` pairs; for a repeated key the first value wins.
    pub fn new(pairs: impl IntoIterator<Item = (impl Into<Box<str>>, V)>) -> Self {
        let pairs: Vec<(Box<str>, V)> = pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let capacity = match pairs.len() {
            0 => 0,
            n => (2 * n).next_power_of_two(),
        };
        let mut map = KeyMap {
            slots: (0..capacity).map(|_| None).collect(),
            shift: 64 - capacity.max(1).trailing_zeros(),
            len: 0,
        };
        for (key, value) in pairs {
            let probe = Probe::new(key.as_bytes());
            let mut i = map.first_slot(probe.hash);
            loop {
                match &map.slots[i] {
                    None => {
                        map.slots[i] = Some(Entry { probe, key, value });
                        map.len += 1;
                        break;
                    }
                    Some(e) if probe.finds(e, key.as_bytes()) => break,
                    Some(_) => i = (i + 1) & (capacity - 1),
                }
            }
        }
        map
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let key = key.as_bytes();
        let probe = Probe::new(key);
        let mask = self.slots.len() - 1;
        let mut i = self.first_slot(probe.hash);
        loop {
            let entry = self.slots[i].as_ref()?;
            if probe.finds(entry, key) {
                return Some(&entry.value);
            }
            i = (i + 1) & mask;
        }
    }

    /// Whether the map holds `key`.
    #[inline]
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Whether the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn first_slot(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize
    }
}

impl<K: Into<Box<str>>> FromIterator<K> for KeySet {
    fn from_iter<I: IntoIterator<Item = K>>(keys: I) -> Self {
        KeyMap::new(keys.into_iter().map(|k| (k, ())))
    }
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap::new(std::iter::empty::<(Box<str>, V)>())
    }
}

/// Whether two strings are equal. Strings of up to 16 bytes compare as two words each,
/// without a call to `memcmp`.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len()
        && if a.len() <= 16 {
            ends(a) == ends(b)
        } else {
            a == b
        }
}

/// A key of up to 16 bytes as two little-endian words: its first and last 8 bytes (they
/// overlap when the key is shorter than 16), its first and last 4 bytes when it is shorter
/// than 8, or its bytes when it is shorter than 4. Keys of the same length are equal exactly
/// when their words are.
#[inline]
fn ends(key: &[u8]) -> (u64, u64) {
    if let (Some(head), Some(tail)) = (key.first_chunk::<8>(), key.last_chunk::<8>()) {
        (u64::from_le_bytes(*head), u64::from_le_bytes(*tail))
    } else if let (Some(head), Some(tail)) = (key.first_chunk::<4>(), key.last_chunk::<4>()) {
        (
            u32::from_le_bytes(*head).into(),
            u32::from_le_bytes(*tail).into(),
        )
    } else {
        (key.iter().fold(0, |w, &b| w << 8 | u64::from(b)), 0)
    }
}

/// The FxHash multiplier (rustc-hash 2).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// The FxHash step. It ends with a multiplication, so the top bits of a hash (which pick
/// the slot) depend on every bit mixed in.
#[inline]
fn step(h: u64, word: u64) -> u64 {
    (h.rotate_left(26) ^ word).wrapping_mul(K)
}

/// Mixes the two words of a key's last 16 bytes or less into `h` (the length, for a short
/// key).
#[inline]
fn hash_ends(h: u64, (head, tail): (u64, u64)) -> u64 {
    step(step(h, head), tail)
}

/// The hash of a key over 16 bytes: its length, its 8-byte words but those of the last 9 to
/// 16 bytes, then [`hash_ends`] of those. Out of line, so the short keys' path stays small.
#[inline(never)]
fn hash_long(key: &[u8]) -> u64 {
    let mut h = key.len() as u64;
    let mut rest = key;
    while rest.len() > 16 {
        let (word, tail) = rest.split_at(8);
        h = step(h, u64::from_le_bytes(word.try_into().unwrap_or_default()));
        rest = tail;
    }
    hash_ends(h, ends(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<String> = (0..300)
            .map(|i| "k".repeat(i % 40) + &i.to_string())
            .collect();
        let map = KeyMap::new(keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)));
        assert_eq!(map.len, keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(k), Some(&i), "{k}");
            assert_eq!(map.get(&format!("{k}x")), None);
        }
        assert_eq!(map.get(""), None);
        assert_eq!(KeySet::default().get("a"), None);
    }

    #[test]
    fn first_value_wins_for_a_repeated_key() {
        let map = KeyMap::new([("a", 1), ("b", 2), ("a", 3)]);
        assert_eq!(map.len, 2);
        assert_eq!(map.get("a"), Some(&1));
    }

    #[test]
    fn keys_compare_by_every_byte_at_every_length() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for n in 0..text.len() {
            let a = &text[..n];
            assert!(same(a, a));
            for i in 0..n {
                let mut b = a.as_bytes().to_vec();
                b[i] = b'_';
                let b = String::from_utf8(b).unwrap();
                assert!(!same(a, &b), "{a:?} {b:?}");
                assert_ne!(Probe::new(a.as_bytes()), Probe::new(b.as_bytes()));
            }
            assert!(!same(a, &text[..n + 1]));
        }
        let set: KeySet = ["", "a", "ab", "abc", "abcd"].into_iter().collect();
        assert!(set.contains("") && set.contains("abc") && !set.contains("abcde"));
    }
}
