use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
fn parts(c: &mut Criterion) {
    let key = "user-4f1c2a9e-7d3b-4c21-9a55-0e2b3c4d5e6f";
    c.bench_function("bucket", |b| {
        b.iter(|| flag_sdk::bucket::bucket(black_box("rollout-10"), black_box(key)))
    });
    let joined = format!("rollout-10:{key}");
    c.bench_function("murmur_slice52", |b| {
        b.iter(|| flag_sdk::bucket::murmur3_x86_32(black_box(joined.as_bytes()), 0))
    });
    let k36 = &joined.as_bytes()[..36];
    c.bench_function("murmur_slice36", |b| {
        b.iter(|| flag_sdk::bucket::murmur3_x86_32(black_box(k36), 0))
    });
    c.bench_function("murmur3_crate36", |b| {
        b.iter(|| murmur3::murmur3_32(&mut black_box(k36), 0).unwrap())
    });
    let re = regex::Regex::new("@(example|corp)\\.com$").unwrap();
    c.bench_function("regex", |b| {
        b.iter(|| re.is_match(black_box("ann@example.com")))
    });
    c.bench_function("semver", |b| {
        b.iter(|| semver::Version::parse(black_box("2.4.1")).unwrap())
    });
    let ctx = flag_benches::bench_context();
    c.bench_function("attr", |b| {
        b.iter(|| ctx.attribute(black_box("country")).is_some())
    });
    let set: rustc_hash::FxHashSet<Box<str>> = ["a".into()].into_iter().collect();
    c.bench_function("fxset41", |b| b.iter(|| set.contains(black_box(key))));
}
criterion_group!(benches, parts);
criterion_main!(benches);
