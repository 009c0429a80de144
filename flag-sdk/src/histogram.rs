//! The fixed-size histogram of a tracked metric (contract section 7): what an SDK aggregates
//! per flag, variation and metric between two batches, what it sends, and what the server's
//! release guard merges and tests. Plain data and arithmetic; no I/O.
//!
//! Buckets are log-linear, as in HDR histograms: each power of two from 2^-10 (about 0.001)
//! to 2^40 (about 10^12) is cut into 16 equal buckets, so a bucket's width is at most 1/16
//! (6.25%) of its lower bound. Bucket 0 holds everything below 2^-10 (zero and negative
//! values included) and the last one everything from 2^40 up. The index is read from the
//! value's bits (exponent and top four mantissa bits): no logarithm, no loop. The exact
//! count, sum and sum of squares travel beside the buckets, so the mean and variance are
//! exact; quantiles are known to a bucket.

use serde::{Deserialize, Serialize};

/// Buckets per power of two.
pub const SUB_BUCKETS: usize = 16;
const SUB_BITS: u32 = 4;
/// The smallest power of two with buckets of its own (2^-10).
const MIN_EXPONENT: i32 = -10;
/// The power of two from which everything shares the last bucket (2^40).
const MAX_EXPONENT: i32 = 40;
/// How many buckets a histogram has.
pub const BUCKETS: usize = 2 + (MAX_EXPONENT - MIN_EXPONENT) as usize * SUB_BUCKETS;

/// The bucket `value` falls in. `NaN` falls in bucket 0 (callers drop it before).
#[inline]
pub fn bucket_of(value: f64) -> usize {
    let bits = value.to_bits();
    if value.is_sign_negative() || value.is_nan() {
        return 0;
    }
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exponent < MIN_EXPONENT {
        return 0;
    }
    if exponent >= MAX_EXPONENT {
        return BUCKETS - 1;
    }
    let sub = ((bits >> (52 - SUB_BITS)) & (SUB_BUCKETS as u64 - 1)) as usize;
    1 + (exponent - MIN_EXPONENT) as usize * SUB_BUCKETS + sub
}

/// The values bucket `index` holds: `[lower, upper)`.
pub fn bucket_bounds(index: usize) -> (f64, f64) {
    if index == 0 {
        return (f64::NEG_INFINITY, 2f64.powi(MIN_EXPONENT));
    }
    if index >= BUCKETS - 1 {
        return (2f64.powi(MAX_EXPONENT), f64::INFINITY);
    }
    let exponent = MIN_EXPONENT + ((index - 1) / SUB_BUCKETS) as i32;
    let sub = ((index - 1) % SUB_BUCKETS) as f64;
    let base = 2f64.powi(exponent);
    let width = base / SUB_BUCKETS as f64;
    (base + sub * width, base + (sub + 1.0) * width)
}

/// A histogram on the wire and in storage: exact moments, and the non-empty buckets as
/// `[index, count]` pairs in ascending index order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Histogram {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_squares: f64,
    /// `[bucket index, count]`, ascending, counts adding up to `count`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<u64>>))]
    pub buckets: Vec<(u16, u64)>,
}

/// Why a received histogram cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// A bucket index past [`BUCKETS`], or indexes not ascending.
    #[error("bucket indexes must ascend and be below {BUCKETS}")]
    Buckets,
    /// The bucket counts do not add up to `count`.
    #[error("the bucket counts do not add up to `count`")]
    Count,
    /// `sum` or `sum_squares` is not a finite number.
    #[error("`sum` and `sum_squares` must be finite")]
    Moments,
}

impl Histogram {
    /// Builds the sparse form from dense bucket counts and the moments.
    pub fn from_dense(dense: &[u32], sum: f64, sum_squares: f64) -> Histogram {
        let buckets: Vec<(u16, u64)> = dense
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i as u16, u64::from(*n)))
            .collect();
        Histogram {
            count: buckets.iter().map(|(_, n)| n).sum(),
            sum,
            sum_squares,
            buckets,
        }
    }

    /// Whether a received histogram is consistent.
    pub fn check(&self) -> Result<(), HistogramError> {
        if !self.sum.is_finite() || !self.sum_squares.is_finite() {
            return Err(HistogramError::Moments);
        }
        let ascending = self.buckets.windows(2).all(|w| w[0].0 < w[1].0);
        if !ascending || self.buckets.iter().any(|(i, _)| usize::from(*i) >= BUCKETS) {
            return Err(HistogramError::Buckets);
        }
        let total = self
            .buckets
            .iter()
            .try_fold(0u64, |total, (_, n)| total.checked_add(*n));
        if total != Some(self.count) {
            return Err(HistogramError::Count);
        }
        Ok(())
    }

    /// Adds `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
        let (a, b) = (&self.buckets, &other.buckets);
        let mut merged = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    merged.push((x.0, x.1.saturating_add(y.1)));
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    merged.push(*x);
                    i += 1;
                }
                (Some(x), None) => {
                    merged.push(*x);
                    i += 1;
                }
                (_, Some(y)) => {
                    merged.push(*y);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        self.buckets = merged;
    }

    /// The exact mean; 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The exact sample variance (n - 1 in the denominator); 0 below two values.
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        let n = self.count as f64;
        ((self.sum_squares - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }

    /// The upper bound of the bucket holding the value of rank `rank` (1-based, clamped to
    /// the count): no recorded value of that rank exceeds it. `None` when empty.
    pub fn upper_bound_at_rank(&self, rank: u64) -> Option<f64> {
        let rank = rank.clamp(1, self.count.max(1));
        let mut seen = 0u64;
        for (i, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(bucket_bounds(usize::from(*i)).1);
            }
        }
        None
    }

    /// The `q` quantile (0..=1) to a bucket: the upper bound of the bucket holding it.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.upper_bound_at_rank((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64)
    }

    /// Values certainly above `threshold`: those in buckets whose lower bound is at least it.
    pub fn count_above(&self, threshold: f64) -> u64 {
        self.buckets
            .iter()
            .filter(|(i, _)| bucket_bounds(usize::from(*i)).0 >= threshold)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_inside_its_buckets_bounds() {
        for value in [0.001, 0.5, 1.0, 1.03, 7.9, 200.0, 612.0, 1e6, 1e11] {
            let (lower, upper) = bucket_bounds(bucket_of(value));
            assert!(
                lower <= value && value < upper,
                "{value}: [{lower}, {upper})"
            );
            assert!(
                upper - lower <= lower / 16.0 + 1e-12,
                "{value}: a bucket is 1/16 wide"
            );
        }
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(-5.0), 0);
        assert_eq!(bucket_of(1e300), BUCKETS - 1);
        assert_eq!(bucket_of(f64::INFINITY), BUCKETS - 1);
        assert!(bucket_of(1.0) < bucket_of(1.07), "ascending");
    }

    fn of(values: &[f64]) -> Histogram {
        let mut dense = vec![0u32; BUCKETS];
        for v in values {
            dense[bucket_of(*v)] += 1;
        }
        Histogram::from_dense(
            &dense,
            values.iter().sum(),
            values.iter().map(|v| v * v).sum(),
        )
    }

    #[test]
    fn moments_are_exact_and_quantiles_known_to_a_bucket() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let h = of(&values);
        assert_eq!(h.count, 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);
        assert!((h.variance() - 841.666_666_666_666_7).abs() < 1e-6);
        let p95 = h.quantile(0.95).unwrap();
        assert!((95.0..=95.0 * 1.0625).contains(&p95), "{p95}");
        assert_eq!(h.count_above(100.5), 0);
        // 90 lies in [88, 92): only the buckets from 92 up are certainly above it.
        assert_eq!(h.count_above(90.0), 9);
        assert!(h.check().is_ok());
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (a, b) = ([1.0, 5.0, 5.0, 300.0], [5.0, 7.0, 1024.0, 0.5]);
        let mut merged = of(&a);
        merged.merge(&of(&b));
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        assert_eq!(merged, of(&all));
    }

    #[test]
    fn inconsistent_histograms_are_refused() {
        let mut h = of(&[1.0, 2.0]);
        h.count = 3;
        assert_eq!(h.check(), Err(HistogramError::Count));
        let mut h = of(&[1.0, 2.0]);
        h.buckets.reverse();
        assert_eq!(h.check(), Err(HistogramError::Buckets));
        let mut h = of(&[1.0]);
        h.buckets[0].0 = BUCKETS as u16;
        assert_eq!(h.check(), Err(HistogramError::Buckets));
        let mut h = of(&[1.0]);
        h.sum = f64::NAN;
        assert_eq!(h.check(), Err(HistogramError::Moments));
    }
}
