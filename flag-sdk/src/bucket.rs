//! The bucketing formula of contract section 3, and nothing else:
//!
//! ```text
//! bucket = murmur3_x86_32(utf8(salt + ":" + value), seed = 0) mod 100000
//! ```
//!
//! The hash runs over the pieces in place, so bucketing allocates nothing. Test vectors
//! (published murmur3 vectors and a bucket table made with an independent implementation)
//! live in `tests/data/`.

use std::fmt::Write as _;

use crate::context::Attribute;
use crate::model::TOTAL_WEIGHT;

/// The bucket in `0..100000` of `value` under `salt`: what a rollout compares with its
/// running weights (a context is served the first variation whose running sum of weights
/// exceeds its bucket). `salt` is the rollout's salt, or the flag key when it has none;
/// `value` is the `bucket_by` attribute (a number as its decimal string), or the context key.
///
/// ```
/// // Stable across versions, platforms and SDKs: the contract's test vectors pin it.
/// let b = flag_sdk::bucket::bucket("new-checkout", "user-1");
/// assert!(b < 100_000);
/// assert_eq!(b, flag_sdk::bucket::bucket("new-checkout", "user-1"));
/// ```
pub fn bucket(salt: &str, value: &str) -> u32 {
    Salt::new(salt).bucket(value)
}

/// A salt with `salt + ":"` already run through murmur3, so bucketing hashes only the value.
/// Rollouts compile their salt into one of these once per snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Salt {
    /// The hash state after every whole 4-byte block of `salt + ":"`.
    h: u32,
    /// The bytes of `salt + ":"` after its last whole block, as a little-endian word.
    carry: u32,
    /// How many bytes `carry` holds (0 to 3).
    carried: usize,
    /// The length of `salt + ":"`, mixed in modulo 2^32 as the reference does.
    len: u32,
}

impl Salt {
    /// Runs `salt + ":"` through the hash.
    pub(crate) fn new(salt: &str) -> Self {
        let mut h = 0;
        let mut blocks = salt.as_bytes().chunks_exact(4);
        for block in &mut blocks {
            h = mix_block(
                h,
                u32::from_le_bytes([block[0], block[1], block[2], block[3]]),
            );
        }
        let tail = blocks.remainder();
        let mut carry = word(tail) | u32::from(b':') << (8 * tail.len());
        let mut carried = tail.len() + 1;
        if carried == 4 {
            h = mix_block(h, carry);
            (carry, carried) = (0, 0);
        }
        Salt {
            h,
            carry,
            carried,
            len: (salt.len() + 1) as u32,
        }
    }

    /// The bucket in `0..100000` of `value` under this salt.
    #[inline]
    pub(crate) fn bucket(&self, value: &str) -> u32 {
        let mut rest = value.as_bytes();
        let (mut h, mut carry) = (self.h, self.carry);
        if self.carried > 0 {
            // The value's first bytes complete the salt's last block.
            let (head, tail) = rest.split_at((4 - self.carried).min(rest.len()));
            carry |= word(head) << (8 * self.carried);
            if self.carried + head.len() == 4 {
                h = mix_block(h, carry);
                carry = 0;
            }
            rest = tail;
        }
        let mut blocks = rest.chunks_exact(4);
        for block in &mut blocks {
            h = mix_block(
                h,
                u32::from_le_bytes([block[0], block[1], block[2], block[3]]),
            );
        }
        // At most one of `carry` and the remainder holds bytes: a carry left incomplete
        // means the value ran out.
        let tail = carry | word(blocks.remainder());
        finish(h, tail, self.len.wrapping_add(value.len() as u32)) % TOTAL_WEIGHT
    }
}

/// The bucket of an attribute: strings as they are, numbers as their decimal string.
/// `None` for any other type (the caller falls back to the context key).
pub(crate) fn bucket_attribute(salt: &Salt, attribute: Attribute<'_>) -> Option<u32> {
    match attribute {
        Attribute::Key(key) => Some(salt.bucket(key)),
        Attribute::Value(serde_json::Value::String(s)) => Some(salt.bucket(s)),
        Attribute::Value(serde_json::Value::Number(n)) => {
            let mut buf = StackStr::default();
            write_number(&mut buf, n)?;
            Some(salt.bucket(buf.as_str()))
        }
        Attribute::Value(_) => None,
    }
}

/// A number's decimal string: integers without a fraction (`42`, also for `42.0`), other
/// numbers in their shortest round-trip form (`0.5`). Every SDK must write numbers this way.
fn write_number(out: &mut StackStr, n: &serde_json::Number) -> Option<()> {
    if let Some(i) = n.as_i64() {
        write!(out, "{i}").ok()
    } else if let Some(u) = n.as_u64() {
        write!(out, "{u}").ok()
    } else {
        let f = n.as_f64()?;
        // Display of f64 prints integral values without ".0" and others in shortest form.
        write!(out, "{f}").ok()
    }
}

/// A fixed buffer for formatting a number without touching the heap.
struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        StackStr {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl StackStr {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3 x86_32 of `data`: the reference form of the hash, for tests and tools.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        h = mix_block(
            h,
            u32::from_le_bytes([block[0], block[1], block[2], block[3]]),
        );
    }
    finish(h, word(blocks.remainder()), data.len() as u32)
}

/// The last 0-3 bytes of a piece as a little-endian word.
#[inline(always)]
fn word(bytes: &[u8]) -> u32 {
    bytes.iter().rev().fold(0, |w, &b| w << 8 | u32::from(b))
}

/// Mixes in the last 0-3 bytes (as a word; none is 0, which mixes in nothing) and the
/// length, then the finaliser.
#[inline(always)]
fn finish(h: u32, tail: u32, len: u32) -> u32 {
    fmix32(h ^ scramble(tail) ^ len)
}

#[inline(always)]
fn scramble(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline(always)]
fn mix_block(h: u32, k: u32) -> u32 {
    (h ^ scramble(k))
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn precomputed_salt_agrees_with_hashing_the_joined_string() {
        let text = "abcdefghijklmnopqrstu-ünï";
        for salt_end in 0..12 {
            for value_end in 0..text.len() {
                let (Some(salt), Some(value)) = (text.get(..salt_end), text.get(..value_end))
                else {
                    continue;
                };
                let joined = format!("{salt}:{value}");
                let expected = murmur3_x86_32(joined.as_bytes(), 0) % TOTAL_WEIGHT;
                assert_eq!(bucket(salt, value), expected, "{salt:?} {value:?}");
            }
        }
    }

    #[test]
    fn numbers_bucket_as_their_decimal_string() {
        let s = Salt::new("s");
        let as_number = bucket_attribute(&s, Attribute::Value(&json!(42))).unwrap();
        let as_float = bucket_attribute(&s, Attribute::Value(&json!(42.0))).unwrap();
        let as_fraction = bucket_attribute(&s, Attribute::Value(&json!(0.5))).unwrap();
        assert_eq!(as_number, bucket("s", "42"));
        assert_eq!(as_float, bucket("s", "42"));
        assert_eq!(as_fraction, bucket("s", "0.5"));
        assert_eq!(bucket_attribute(&s, Attribute::Value(&json!(true))), None);
    }
}
