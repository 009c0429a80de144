//! String comparisons and string-keyed tables for what evaluation looks up on every call: a
//! flag by its key, the context key in a flag's targets or a segment's `included`/`excluded`,
//! a string in an `in` clause's values, an attribute of the context by name.
//!
//! The strings are short (flag keys have at most 100 bytes, attribute names and context keys
//! are names and ids), and for short strings a general-purpose map spends more on its probe
//! machinery and a call to `memcmp` than on the string itself. Here a string's [`Print`] (its
//! length and its first 16 bytes as two words) is computed once for a stored string and once
//! per lookup for the looked-up one; comparing prints compares three words and decides
//! equality for strings of up to 16 bytes. A [`KeyMap`] of a few keys is a list scanned by
//! print; a larger one an open-addressing table hashed from the print with the FxHash step.
//! Nothing here allocates on lookup. The keys come from the snapshot (written by admins), so
//! the table needs no defence against chosen collisions: a looked-up key only decides where a
//! probe starts.

/// A string's length and [`ends`] of its first 16 bytes: equal strings have equal prints,
/// and strings of up to 16 bytes with equal prints are equal.
#[derive(Debug, Clone, Copy, Eq)]
pub(crate) struct Print {
    len: usize,
    ends: (u64, u64),
}

impl PartialEq for Print {
    /// Three words compared without a branch between them: a scan of prints compares many.
    #[inline]
    fn eq(&self, other: &Print) -> bool {
        ((self.len ^ other.len) as u64
            | (self.ends.0 ^ other.ends.0)
            | (self.ends.1 ^ other.ends.1))
            == 0
    }
}

impl Print {
    #[inline]
    pub fn of(s: &str) -> Print {
        let bytes = s.as_bytes();
        Print {
            len: bytes.len(),
            ends: ends(&bytes[..bytes.len().min(16)]),
        }
    }

    /// Whether `a`, of which this is the print, equals `b`, whose print is `b_print`.
    #[inline]
    pub fn same(self, a: &str, b_print: Print, b: &str) -> bool {
        self == b_print && (self.len <= 16 || a == b)
    }
}

/// A name compiled for comparisons: the attribute a clause or a rollout reads.
#[derive(Debug, Clone)]
pub(crate) struct Name {
    text: Box<str>,
    print: Print,
    /// Whether the name is [`KEY_ATTRIBUTE`](crate::KEY_ATTRIBUTE), decided once.
    is_key: bool,
}

impl Name {
    pub fn new(text: &str) -> Name {
        Name {
            text: text.into(),
            print: Print::of(text),
            is_key: text == crate::KEY_ATTRIBUTE,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn print(&self) -> Print {
        self.print
    }

    pub fn is_key(&self) -> bool {
        self.is_key
    }
}

/// A map from string keys to `V`, read-only once built.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap<V> {
    /// Up to [`SCANNED`] keys: every entry, scanned in order. More: open addressing with
    /// linear probing, a power-of-two length at most half full, so every probe ends at an
    /// empty slot.
    slots: Box<[Option<Entry<V>>]>,
    /// `64 - log2(slots.len())`: the top bits of a hash pick the first slot.
    shift: u32,
    len: usize,
}

/// A set of string keys.
pub(crate) type KeySet = KeyMap<()>;

/// Up to this many keys, comparing the looked-up key's print with each key's costs less
/// than hashing it.
const SCANNED: usize = 8;

#[derive(Debug, Clone)]
struct Entry<V> {
    print: Print,
    key: Box<str>,
    value: V,
}

impl<V> Entry<V> {
    #[inline]
    fn holds(&self, key: &str, print: Print) -> bool {
        print.same(key, self.print, &self.key)
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
            let print = Print::of(&key);
            let mut i = map.first_slot(hash(&key, print));
            loop {
                match &map.slots[i] {
                    None => {
                        map.slots[i] = Some(Entry { print, key, value });
                        map.len += 1;
                        break;
                    }
                    Some(e) if e.holds(&key, print) => break,
                    Some(_) => i = (i + 1) & (capacity - 1),
                }
            }
        }
        if map.len <= SCANNED {
            map.slots = map
                .slots
                .into_vec()
                .into_iter()
                .filter(Option::is_some)
                .collect();
        }
        map
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.get_inlined(key)
    }

    /// [`get`](Self::get), always inlined: for the flag table, probed once per read.
    #[inline(always)]
    pub fn get_inlined(&self, key: &str) -> Option<&V> {
        let bytes = key.as_bytes();
        if bytes.len() > 16 {
            return self.get_long(key, Print::of(key));
        }
        let print = Print {
            len: bytes.len(),
            ends: ends(bytes),
        };
        // Equal prints are equal keys of up to 16 bytes.
        let hash = (self.len > SCANNED).then(|| hash_short(print));
        self.find(hash, |e| e.print == print)
    }

    /// [`get`](Self::get) of a key over 16 bytes, out of line: the short keys' path stays small.
    #[inline(never)]
    fn get_long(&self, key: &str, print: Print) -> Option<&V> {
        let hash = (self.len > SCANNED).then(|| hash_long(key.as_bytes()));
        self.find(hash, |e| e.print == print && *e.key == *key)
    }

    /// The value of the entry that `holds`, whose hash is `hash` (`None` when the map is
    /// scanned).
    #[inline(always)]
    fn find(&self, hash: Option<u64>, holds: impl Fn(&Entry<V>) -> bool) -> Option<&V> {
        let Some(hash) = hash else {
            // A scanned map holds no empty slot (see `new`).
            for entry in self.slots.iter() {
                match entry {
                    Some(e) if holds(e) => return Some(&e.value),
                    _ => {}
                }
            }
            return None;
        };
        let mask = self.slots.len() - 1;
        let mut i = self.first_slot(hash);
        loop {
            let entry = self.slots[i].as_ref()?;
            if holds(entry) {
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

    /// The same keys with each value mapped; the table is reused as it is.
    pub fn map_values<W>(self, mut f: impl FnMut(V) -> W) -> KeyMap<W> {
        KeyMap {
            slots: self
                .slots
                .into_vec()
                .into_iter()
                .map(|slot| {
                    slot.map(|e| Entry {
                        print: e.print,
                        key: e.key,
                        value: f(e.value),
                    })
                })
                .collect(),
            shift: self.shift,
            len: self.len,
        }
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

/// A key of up to 16 bytes as two little-endian words: its first and last 8 bytes (they
/// overlap when the key is shorter than 16), its first and last 4 bytes when it is shorter
/// than 8, or its first, middle and last bytes when it is shorter than 4. Keys of the same
/// length are equal exactly when their words are.
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
        match key {
            [] => (0, 0),
            [first, .., last] | [first @ last] => (
                u64::from(*first) | u64::from(key[key.len() / 2]) << 8 | u64::from(*last) << 16,
                0,
            ),
        }
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

/// The hash of `key`, whose print is `print`.
fn hash(key: &str, print: Print) -> u64 {
    if print.len > 16 {
        hash_long(key.as_bytes())
    } else {
        hash_short(print)
    }
}

/// The hash of a key of up to 16 bytes, from its print.
#[inline]
fn hash_short(print: Print) -> u64 {
    step(step(print.len as u64, print.ends.0), print.ends.1)
}

/// The hash of a key over 16 bytes: its length, then its 8-byte words (the last one
/// overlapping the one before). Out of line, so the short keys' path stays small.
#[inline(never)]
fn hash_long(key: &[u8]) -> u64 {
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        h = step(h, u64::from_le_bytes(word.try_into().unwrap_or_default()));
    }
    match key.last_chunk::<8>() {
        Some(last) if !words.remainder().is_empty() => step(h, u64::from_le_bytes(*last)),
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        Print::of(a).same(a, Print::of(b), b)
    }

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
                assert_ne!(
                    hash(a, Print::of(a)),
                    hash(&b, Print::of(&b)),
                    "{a:?} {b:?}"
                );
            }
            assert!(!same(a, &text[..n + 1]));
        }
        let set: KeySet = ["", "a", "ab", "abc", "abcd"].into_iter().collect();
        assert!(set.contains("") && set.contains("abc") && !set.contains("abcde"));
    }
}
