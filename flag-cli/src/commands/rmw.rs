//! Read-modify-write of a flag's configuration: `GET` (with its `ETag`), change, `PUT` with
//! `If-Match`; on `412` re-read and retry once, so two people never overwrite each other
//! silently. Also the precise meaning of `flag rollout`.

use anyhow::bail;
use flag_sdk::model::TOTAL_WEIGHT;
use flag_sdk::{Flag, Serve, WeightedVariation};

use crate::api::{Api, ApiError, Held, Versioned, Written};
use crate::error::CliError;

/// Where a configuration is read from and written to (the API, or a fake in tests).
pub trait ConfigStore {
    /// The current configuration and its version.
    fn read(&self) -> Result<Versioned, ApiError>;
    /// Writes `flag` if the stored version is still `version` (or has it held for approval).
    fn write(&self, flag: &Flag, version: u64) -> Result<Written, ApiError>;
}

/// One flag in one environment of a server.
pub struct Remote<'a> {
    /// The client.
    pub api: &'a Api,
    /// The flag key.
    pub key: &'a str,
    /// The environment.
    pub env: &'a str,
    /// Why (written to the audit log).
    pub reason: Option<&'a str>,
}

impl ConfigStore for Remote<'_> {
    fn read(&self) -> Result<Versioned, ApiError> {
        self.api.flag_config(self.key, self.env)
    }
    fn write(&self, flag: &Flag, version: u64) -> Result<Written, ApiError> {
        self.api
            .put_flag_config(self.env, flag, version, self.reason)
    }
}

/// What a read-modify-write did.
#[derive(Debug)]
pub struct Changed {
    /// The configuration it changed.
    pub before: Flag,
    /// The configuration now stored.
    pub after: Flag,
    /// `false` when the change was already in place (nothing was written).
    pub written: bool,
    /// `true` when the first write lost a race (412) and the change was re-applied.
    pub retried: bool,
    /// The environment requires approval: the change waits in this change request
    /// (`after` is what was proposed).
    pub held: Option<Held>,
}

/// Applies `change` to the current configuration and writes it with `If-Match`; on 412
/// re-reads and tries once more. A second 412 is returned as the error.
pub fn read_modify_write(
    store: &dyn ConfigStore,
    change: &dyn Fn(&mut Flag) -> anyhow::Result<()>,
) -> anyhow::Result<Changed> {
    let mut retried = false;
    loop {
        let Versioned {
            flag: before,
            version,
        } = store.read()?;
        let mut after = before.clone();
        change(&mut after)?;
        if after == before {
            return Ok(Changed {
                after: before.clone(),
                before,
                written: false,
                retried,
                held: None,
            });
        }
        match store.write(&after, version) {
            Ok(Written::Stored(stored)) => {
                return Ok(Changed {
                    before,
                    after: *stored,
                    written: true,
                    retried,
                    held: None,
                })
            }
            Ok(Written::Held(held)) => {
                return Ok(Changed {
                    before,
                    after,
                    written: false,
                    retried,
                    held: Some(held),
                })
            }
            Err(e) if e.status() == Some(412) && !retried => retried = true,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A percentage in thousandths (`25` → 25000, `0.5` → 500), parsed exactly, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent(pub u32);

impl std::str::FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a percentage from 0 to 100 with at most 3 decimals");
        let t = s.trim().trim_end_matches('%');
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty()
            || frac.len() > 3
            || !(whole.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<3}").parse().map_err(|_| bad())?
        };
        let v = whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(bad)?;
        if v > TOTAL_WEIGHT {
            return Err(bad());
        }
        Ok(Percent(v))
    }
}

/// `flag rollout KEY PERCENT`: the fallthrough becomes
/// `rollout{[chosen: PERCENT, rest: 100 - PERCENT]}`.
///
/// * `chosen` is `--variation`, else the flag's first variation.
/// * `rest` is `--rest`, else the flag's `off_variation`, or (when that is `chosen`) the
///   first other variation.
/// * `bucket_by` and `salt` of a current fallthrough rollout are kept (so buckets stay put);
///   `--bucket-by` replaces `bucket_by`. The chosen variation is listed first, so raising its
///   percentage never moves a context out of it (contract section 3).
/// * `enabled`, targets and rules are not touched.
pub fn apply_rollout(
    flag: &mut Flag,
    weight: u32,
    variation: Option<&str>,
    rest: Option<&str>,
    bucket_by: Option<&str>,
) -> anyhow::Result<()> {
    let has = |k: &str| flag.variations.iter().any(|v| v.key == k);
    let chosen = match variation {
        Some(v) if has(v) => v.to_owned(),
        Some(v) => bail!(CliError::Usage(format!(
            "flag `{}` has no variation `{v}` (it has: {})",
            flag.key,
            keys(flag)
        ))),
        None => match flag.variations.first() {
            Some(v) => v.key.clone(),
            None => bail!("flag `{}` has no variations", flag.key),
        },
    };
    let rest = match rest {
        Some(r) if r == chosen => bail!(CliError::Usage(format!(
            "--rest must differ from `{chosen}`"
        ))),
        Some(r) if has(r) => r.to_owned(),
        Some(r) => bail!(CliError::Usage(format!(
            "flag `{}` has no variation `{r}` (it has: {})",
            flag.key,
            keys(flag)
        ))),
        None if flag.off_variation != chosen && has(&flag.off_variation) => {
            flag.off_variation.clone()
        }
        None => match flag.variations.iter().find(|v| v.key != chosen) {
            Some(v) => v.key.clone(),
            None => bail!(CliError::Usage(format!(
                "flag `{}` has one variation; a rollout needs two",
                flag.key
            ))),
        },
    };
    flag.fallthrough = Serve::sticky_rollout(
        &flag.fallthrough,
        bucket_by,
        &chosen,
        weight,
        &[WeightedVariation {
            variation: rest,
            weight: TOTAL_WEIGHT,
        }],
    );
    Ok(())
}

fn keys(flag: &Flag) -> String {
    flag.variations
        .iter()
        .map(|v| v.key.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    fn flag() -> Flag {
        serde_json::from_value(serde_json::json!({
            "key": "f", "kind": "boolean", "version": 3, "enabled": false, "off_variation": "off",
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "fallthrough": {"variation": "on"}
        }))
        .unwrap()
    }

    struct Fake {
        stored: RefCell<Flag>,
        version: Cell<u64>,
        /// How many writes get a 412 (someone else writes first).
        races: Cell<u32>,
        writes: Cell<u32>,
    }

    impl ConfigStore for Fake {
        fn read(&self) -> Result<Versioned, ApiError> {
            Ok(Versioned {
                flag: self.stored.borrow().clone(),
                version: self.version.get(),
            })
        }
        fn write(&self, flag: &Flag, version: u64) -> Result<Written, ApiError> {
            self.writes.set(self.writes.get() + 1);
            if self.races.get() > 0 {
                self.races.set(self.races.get() - 1);
                self.version.set(self.version.get() + 1);
                self.stored.borrow_mut().rules.clear();
            }
            if version != self.version.get() {
                return Err(ApiError::Status {
                    status: 412,
                    detail: "stale".into(),
                    errors: vec![],
                    hint: String::new(),
                });
            }
            self.version.set(version + 1);
            *self.stored.borrow_mut() = flag.clone();
            Ok(Written::Stored(Box::new(flag.clone())))
        }
    }

    fn fake(races: u32) -> Fake {
        Fake {
            stored: RefCell::new(flag()),
            version: Cell::new(3),
            races: Cell::new(races),
            writes: Cell::new(0),
        }
    }

    fn turn_on(f: &mut Flag) -> anyhow::Result<()> {
        f.enabled = true;
        Ok(())
    }

    #[test]
    fn writes_once_without_race() {
        let store = fake(0);
        let c = read_modify_write(&store, &turn_on).unwrap();
        assert!(c.written && !c.retried && c.after.enabled && !c.before.enabled);
        assert_eq!(store.writes.get(), 1);
    }

    #[test]
    fn retries_once_after_412() {
        let store = fake(1);
        let c = read_modify_write(&store, &turn_on).unwrap();
        assert!(c.written && c.retried);
        assert_eq!(store.writes.get(), 2);
        assert_eq!(store.version.get(), 5);
    }

    #[test]
    fn gives_up_after_second_412() {
        let store = fake(2);
        let e = read_modify_write(&store, &turn_on).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 5);
        assert_eq!(store.writes.get(), 2);
    }

    #[test]
    fn no_write_when_nothing_changes() {
        let store = fake(0);
        let c = read_modify_write(&store, &|f: &mut Flag| {
            f.enabled = false;
            Ok(())
        })
        .unwrap();
        assert!(!c.written);
        assert_eq!(store.writes.get(), 0);
    }

    #[test]
    fn percent_parses_exactly() {
        assert_eq!("25".parse::<Percent>().unwrap(), Percent(25_000));
        assert_eq!("0.5".parse::<Percent>().unwrap(), Percent(500));
        assert_eq!("12.345%".parse::<Percent>().unwrap(), Percent(12_345));
        assert_eq!("100".parse::<Percent>().unwrap(), Percent(100_000));
        for bad in ["101", "-1", "1.2345", "abc", "", ".5", "1e2"] {
            assert!(bad.parse::<Percent>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rollout_gives_first_variation_the_share_and_off_the_rest() {
        let mut f = flag();
        apply_rollout(&mut f, 25_000, None, None, None).unwrap();
        assert_eq!(
            serde_json::to_value(&f.fallthrough).unwrap(),
            serde_json::json!({"rollout": {"bucket_by": "key", "weights": [
                {"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}})
        );
        assert!(flag_sdk::validate::validate_flag(&f).is_ok());
    }

    #[test]
    fn rollout_keeps_bucket_by_and_salt() {
        let mut f = flag();
        f.fallthrough = serde_json::from_value(serde_json::json!({"rollout": {"bucket_by": "org", "salt": "s1",
            "weights": [{"variation": "on", "weight": 5000}, {"variation": "off", "weight": 95000}]}}))
        .unwrap();
        apply_rollout(&mut f, 50_000, None, None, None).unwrap();
        let Serve::Rollout(r) = &f.fallthrough else {
            panic!()
        };
        assert_eq!(
            (r.bucket_by.as_str(), r.salt.as_deref()),
            ("org", Some("s1"))
        );
        assert_eq!(r.weights[0].weight, 50_000);
    }

    #[test]
    fn rollout_of_the_off_variation_gives_the_rest_to_another() {
        let mut f = flag();
        apply_rollout(&mut f, 10_000, Some("off"), None, Some("org")).unwrap();
        let Serve::Rollout(r) = &f.fallthrough else {
            panic!()
        };
        assert_eq!(r.weights[0].variation, "off");
        assert_eq!(r.weights[1].variation, "on");
        assert_eq!(r.bucket_by, "org");
        let e = apply_rollout(&mut f, 10_000, Some("nope"), None, None).unwrap_err();
        assert!(e.to_string().contains("on, off"));
    }
}
