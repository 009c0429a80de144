//! Bucketing against data made by independent murmur3 implementations (`data/make_vectors.py`).

use flag_sdk::bucket::{bucket, murmur3_x86_32};
use serde::Deserialize;

#[derive(Deserialize)]
struct HashVector {
    hex: String,
    seed: u32,
    hash: u32,
}

#[derive(Deserialize)]
struct BucketVector {
    salt: String,
    value: String,
    bucket: u32,
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn murmur3_matches_published_reference_vectors() {
    let vectors: Vec<HashVector> =
        serde_json::from_str(include_str!("data/murmur3_vectors.json")).unwrap();
    assert!(vectors.len() >= 20);
    for v in &vectors {
        let data = hex_bytes(&v.hex);
        assert_eq!(
            murmur3_x86_32(&data, v.seed),
            v.hash,
            "{} seed {:#x}",
            v.hex,
            v.seed
        );
        // The `murmur3` crate is the reference our fast path is held to.
        let reference = murmur3::murmur3_32(&mut std::io::Cursor::new(&data), v.seed).unwrap();
        assert_eq!(reference, v.hash);
    }
}

#[test]
fn buckets_match_the_independent_table() {
    let table: Vec<BucketVector> =
        serde_json::from_str(include_str!("data/bucket_vectors.json")).unwrap();
    assert!(table.len() >= 300);
    for v in &table {
        assert_eq!(
            bucket(&v.salt, &v.value),
            v.bucket,
            "{:?}:{:?}",
            v.salt,
            v.value
        );
        let joined = format!("{}:{}", v.salt, v.value);
        let reference = murmur3::murmur3_32(&mut joined.as_bytes(), 0).unwrap();
        assert_eq!(reference % 100_000, v.bucket);
    }
}
