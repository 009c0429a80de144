//! Tracked metric values (`Client::track_value`, `Client::time`, [`Timer`]): the dense
//! histogram a shard of the event recorder fills under its lock, and the timer that records
//! on drop. The buckets are `flag_sdk::histogram`'s; recording is an index computed from the
//! value's bits and three additions, with no allocation.

use std::time::Instant;

use crate::context::Context;
use crate::histogram::{bucket_of, Histogram, BUCKETS};

use super::Client;

/// One (flag, variation, metric)'s values since the last batch, every bucket in place.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    sum: f64,
    sum_squares: f64,
    buckets: [u32; BUCKETS],
}

impl Dense {
    pub(crate) fn new() -> Box<Dense> {
        Box::new(Dense {
            sum: 0.0,
            sum_squares: 0.0,
            buckets: [0; BUCKETS],
        })
    }

    #[inline]
    pub(crate) fn record(&mut self, value: f64) {
        let bucket = &mut self.buckets[bucket_of(value)];
        *bucket = bucket.saturating_add(1);
        self.sum += value;
        self.sum_squares += value * value;
    }

    pub(crate) fn merge(&mut self, other: &Dense) {
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// The wire form.
    pub(crate) fn histogram(&self) -> Histogram {
        Histogram::from_dense(&self.buckets, self.sum, self.sum_squares)
    }
}

/// Measures the time from [`Client::timer`] to its drop (or [`stop`](Timer::stop)) and
/// records it, in milliseconds, as a value of its metric for its context.
#[must_use = "a timer records when it is dropped"]
#[derive(Debug)]
pub struct Timer<'a> {
    client: &'a Client,
    ctx: &'a Context,
    metric: &'a str,
    started: Instant,
}

impl<'a> Timer<'a> {
    pub(crate) fn start(client: &'a Client, ctx: &'a Context, metric: &'a str) -> Self {
        Timer {
            client,
            ctx,
            metric,
            started: Instant::now(),
        }
    }

    /// Records now (what dropping the timer does).
    pub fn stop(self) {}
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.client.track_value(self.ctx, self.metric, ms);
    }
}
