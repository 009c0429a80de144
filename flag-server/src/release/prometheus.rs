//! The Prometheus guard (`guard.prometheus[]`): a PromQL query per variation, evaluated by the
//! scheduler through Prometheus' HTTP API (`GET /api/v1/query`, an instant query) at the
//! server's `--prometheus-url`, every `--prometheus-interval-seconds` while the release runs
//! and again before every stage advances.
//!
//! How a query is read: for each variation the release splits traffic between (the released
//! one, and those the fallthrough served before), `{{variation}}` is replaced by the
//! variation's key, `{{variation_index}}` by its index in the flag's variations, `{{flag}}`
//! and `{{environment}}` by the flag's and environment's keys. Each query must give one
//! number: a scalar, or an instant vector of exactly one series (aggregate with `sum`, `max`
//! or `histogram_quantile(...)`). The new variation's value is compared with the largest of
//! the other variations' values: a regression when it exceeds `(1 + max_increase) * rest`
//! (or `rest + max_increase_abs`). The query carries its own smoothing (`rate(...[5m])`),
//! so one reading decides. Prometheus unreachable, an error, no series, several series or
//! NaN: no verdict, and the release holds at its stage with the reason in its status.
//!
//! The HTTP call happens in the scheduler before it takes the write path, with a timeout;
//! the comparison itself is pure ([`PrometheusGuard::judge`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::metric_guard::{bound, margin_problem};
use crate::clock::Millis;

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A guard on a Prometheus query (`guard.prometheus[]`); give exactly one of
/// `max_increase` and `max_increase_abs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusGuard {
    /// PromQL with `{{variation}}` (or `{{variation_index}}`) where the variation goes.
    #[schema(
        example = "histogram_quantile(0.95, sum by (le) (rate(checkout_seconds_bucket{variation=\"{{variation}}\"}[5m])))"
    )]
    pub query: String,
    /// The largest accepted increase, relative to the rest's value (0.2 = 20%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
    /// The largest accepted increase, in the query's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase_abs: Option<f64>,
}

/// One look at Prometheus: when, when the next is due, and per guard the value of each
/// variation, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reading {
    /// When the queries ran (Unix ms).
    pub at: Millis,
    /// When they run next (Unix ms).
    pub next_at: Millis,
    /// Per guard (in `guard.prometheus` order), each variation's value.
    #[serde(default)]
    pub values: Vec<BTreeMap<String, f64>>,
    /// Why there is no verdict (Prometheus unreachable, no data, ...); `None` when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PrometheusGuard {
    /// Problems with the guard, as (field, message); `at` is its path.
    pub fn problems(&self, at: &str) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !self.query.contains("{{variation}}") && !self.query.contains("{{variation_index}}") {
            problems.push((
                format!("{at}.query"),
                "must contain `{{variation}}` (or `{{variation_index}}`) where the variation goes"
                    .to_owned(),
            ));
        }
        problems.extend(margin_problem(
            at,
            self.max_increase,
            self.max_increase_abs,
            "the query's",
        ));
        problems
    }

    /// The query for one variation.
    pub fn query_for(&self, flag: &str, env: &str, variation: &str, index: usize) -> String {
        self.query
            .replace("{{variation}}", variation)
            .replace("{{variation_index}}", &index.to_string())
            .replace("{{flag}}", flag)
            .replace("{{environment}}", env)
    }

    /// The regression's figures when the released variation's value (in `values`) exceeds
    /// the accepted bound over the largest of the others'; `None` when it does not.
    pub fn judge(&self, released: &str, values: &BTreeMap<String, f64>) -> Option<String> {
        let new = *values.get(released)?;
        let rest = values
            .iter()
            .filter(|(v, _)| *v != released)
            .map(|(_, x)| *x)
            .fold(f64::NEG_INFINITY, f64::max);
        if !rest.is_finite() {
            return None;
        }
        let bound = bound(rest, self.max_increase, self.max_increase_abs);
        (new > bound).then(|| {
            format!(
                "Prometheus `{}`: `{released}` {new:.4} vs {rest:.4} for the rest, above the accepted {bound:.4}",
                self.query
            )
        })
    }
}

/// The Prometheus server the scheduler asks.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    url: String,
    /// How often a running release's queries are evaluated.
    pub interval: Duration,
}

impl Prometheus {
    /// A client of the Prometheus at `url` (e.g. `http://127.0.0.1:9090`).
    pub fn new(url: &str, interval: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(QUERY_TIMEOUT).build()?;
        Ok(Prometheus {
            http,
            url: url.trim_end_matches('/').to_owned(),
            interval,
        })
    }

    /// Evaluates every guard for every variation (by key and index); a failure of any query
    /// makes the whole reading an error that says which and why.
    pub async fn read(
        &self,
        guards: &[PrometheusGuard],
        flag: &str,
        env: &str,
        variations: &[(String, usize)],
        now: Millis,
    ) -> Reading {
        let mut reading = Reading {
            at: now,
            next_at: now + self.interval.as_millis() as Millis,
            values: Vec::new(),
            error: None,
        };
        for (n, guard) in guards.iter().enumerate() {
            let mut values = BTreeMap::new();
            for (variation, index) in variations {
                let query = guard.query_for(flag, env, variation, *index);
                match self.query(&query).await {
                    Ok(value) => {
                        values.insert(variation.clone(), value);
                    }
                    Err(why) => {
                        reading.error = Some(format!(
                            "guard.prometheus[{n}] for `{variation}` (`{query}`): {why}"
                        ));
                        return reading;
                    }
                }
            }
            reading.values.push(values);
        }
        reading
    }

    async fn query(&self, query: &str) -> Result<f64, String> {
        let url = format!("{}/api/v1/query", self.url);
        let response = self
            .http
            .get(&url)
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| format!("Prometheus at {} unreachable: {e}", self.url))?;
        let status = response.status();
        let answer: Answer = response.json().await.map_err(|e| {
            format!("Prometheus answered {status} with something else than its API's JSON: {e}")
        })?;
        if answer.status != "success" {
            return Err(format!(
                "Prometheus answered {status}: {}",
                answer.error.unwrap_or_else(|| answer.status.clone())
            ));
        }
        let data = answer.data.ok_or("Prometheus answered without data")?;
        let value = match (data.result_type.as_str(), data.result) {
            ("scalar", QueryResult::Sample(sample)) => sample.1,
            ("vector", QueryResult::Series(series)) => match series.as_slice() {
                [] => return Err("no data (an empty result)".to_owned()),
                [one] => one.value.1.clone(),
                many => {
                    return Err(format!(
                        "{} series; aggregate the query to one (sum, max, histogram_quantile)",
                        many.len()
                    ))
                }
            },
            (other, _) => {
                return Err(format!(
                    "a {other} result; give an instant vector or a scalar"
                ))
            }
        };
        match value.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("no usable value (`{value}`)")),
        }
    }
}

/// `/api/v1/query`'s answer.
#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    data: Option<Data>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: QueryResult,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum QueryResult {
    Series(Vec<Series>),
    Sample(Sample),
    Other(#[allow(dead_code)] serde_json::Value),
}

/// `[unix seconds, "value"]`.
#[derive(Debug, Deserialize)]
struct Sample(#[allow(dead_code)] f64, String);

#[derive(Debug, Deserialize)]
struct Series {
    value: Sample,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_increase: f64) -> PrometheusGuard {
        PrometheusGuard {
            query:
                "latency{variation=\"{{variation}}\",flag=\"{{flag}}\",i=\"{{variation_index}}\"}"
                    .into(),
            max_increase: Some(max_increase),
            max_increase_abs: None,
        }
    }

    #[test]
    fn the_query_is_given_each_variation() {
        assert_eq!(
            guard(0.2).query_for("new-checkout", "production", "on", 0),
            "latency{variation=\"on\",flag=\"new-checkout\",i=\"0\"}"
        );
    }

    #[test]
    fn the_new_value_is_compared_with_the_largest_of_the_rest() {
        let values =
            |on, off, b| BTreeMap::from([("on".into(), on), ("off".into(), off), ("b".into(), b)]);
        assert!(guard(0.2).judge("on", &values(0.23, 0.2, 0.1)).is_none());
        assert!(guard(0.2).judge("on", &values(0.25, 0.2, 0.1)).is_some());
        assert!(guard(0.2).judge("on", &values(0.25, 0.1, 0.22)).is_none());
        let abs = PrometheusGuard {
            max_increase: None,
            max_increase_abs: Some(0.1),
            ..guard(0.0)
        };
        assert!(abs.judge("on", &values(0.29, 0.2, 0.0)).is_none());
        assert!(abs.judge("on", &values(0.31, 0.2, 0.0)).is_some());
    }

    #[test]
    fn problems_name_the_field() {
        let bad = PrometheusGuard {
            query: "up".into(),
            max_increase: None,
            max_increase_abs: None,
        };
        let fields: Vec<_> = bad
            .problems("guard.prometheus[0]")
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "guard.prometheus[0].query",
                "guard.prometheus[0].max_increase"
            ]
        );
        assert!(guard(0.2).problems("g").is_empty());
    }
}
