//! The flag list of `GET /api/v1/flags`: its query (`q`, `tag`, `state`, `environment`,
//! `limit`, `cursor`, `archived`; anything else is a 400 naming it), each flag's state per
//! environment from the live snapshots, and key-ordered pages. Pure: the definitions and the
//! killed / releasing sets come from `store`, the configurations from `snapshots`.

use std::collections::HashSet;

use flag_sdk::validate::check_key;
use flag_sdk::{Flag, Serve};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::snapshots::Snapshots;
use crate::store::flags::{FlagMeta, FlagState, Summary};

/// The largest page.
pub const MAX_LIMIT: usize = 1000;

/// A state a flag can be in, in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    /// Enabled (serving its targets, rules and fallthrough).
    On,
    /// Disabled (serving its off variation), killed or not.
    Off,
    /// Off by the kill switch.
    Killed,
    /// Enabled, with a percentage rollout as its fallthrough.
    Rollout,
    /// A release is running.
    Release,
}

/// `GET /flags`: filters (all must match) and paging, ordered by key.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include archived flags.
    pub archived: Option<bool>,
    /// A case-insensitive substring of the key or the name.
    pub q: Option<String>,
    /// A tag the flag must have (repeatable: every one given).
    #[param(rename = "tag", style = Form, explode)]
    pub tag: Option<Vec<String>>,
    /// Only flags in this state: in `environment`, or in any environment without it.
    #[param(inline)]
    pub state: Option<StateFilter>,
    /// The environment `state` is evaluated in.
    pub environment: Option<String>,
    /// Page size, 1 to 1000; every matching flag when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Reads the query's pairs; an unknown parameter or a bad value is a 400 naming it.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
        let mut query = ListQuery::default();
        for (name, value) in pairs {
            match name.as_str() {
                "archived" => query.archived = Some(parse_bool(&value)?),
                "q" => query.q = Some(value),
                "tag" => query.tag.get_or_insert_with(Vec::new).push(value),
                "state" => {
                    let state =
                        serde_json::from_value(serde_json::Value::String(value)).map_err(|_| {
                            ApiError::bad_field(
                                "state",
                                "must be one of `on`, `off`, `killed`, `rollout`, `release`",
                            )
                        })?;
                    query.state = Some(state);
                }
                "environment" => query.environment = Some(value),
                "limit" => {
                    let limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            ApiError::bad_field("limit", format!("must be 1 to {MAX_LIMIT}"))
                        })?;
                    query.limit = Some(limit);
                }
                "cursor" => {
                    check_key(&value).map_err(|_| {
                        ApiError::bad_field("cursor", "not a cursor from `X-Next-Cursor`")
                    })?;
                    query.cursor = Some(value);
                }
                other => {
                    return Err(ApiError::bad_field(
                        other,
                        "unknown query parameter; known: q, tag, state, environment, limit, \
                         cursor, archived",
                    ))
                }
            }
        }
        Ok(query)
    }
}

fn parse_bool(value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_field("archived", "must be `true` or `false`")),
    }
}

/// Which flags are killed and which have a release running, as (flag, environment).
#[derive(Debug, Default)]
pub struct Marks {
    /// Killed.
    pub killed: HashSet<(String, String)>,
    /// A release running.
    pub releasing: HashSet<(String, String)>,
}

impl Marks {
    fn has(set: &HashSet<(String, String)>, flag: &str, env: &str) -> bool {
        // Both sets are small (a few flags at a time); no key pair is built for an empty one.
        !set.is_empty() && set.contains(&(flag.to_owned(), env.to_owned()))
    }
}

/// One page of the list.
#[derive(Debug)]
pub struct Page {
    /// The keys of the page's flags, in order.
    pub keys: Vec<String>,
    /// How many flags match, on every page.
    pub total: usize,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

fn state_of(flag: &Flag, key: &str, env: &str, marks: &Marks) -> FlagState {
    FlagState {
        enabled: flag.enabled,
        version: flag.version,
        killed: Marks::has(&marks.killed, key, env),
        rollout: flag.enabled && matches!(flag.fallthrough, Serve::Rollout(_)),
        release: Marks::has(&marks.releasing, key, env),
    }
}

fn is_in(state: &FlagState, wanted: StateFilter) -> bool {
    match wanted {
        StateFilter::On => state.enabled,
        StateFilter::Off => !state.enabled,
        StateFilter::Killed => state.killed,
        StateFilter::Rollout => state.rollout,
        StateFilter::Release => state.release,
    }
}

/// Fills in a flag's state in every environment (none for an archived flag).
pub fn with_states(snapshots: &Snapshots, marks: &Marks, mut meta: FlagMeta) -> FlagMeta {
    if meta.archived {
        return meta;
    }
    for env in snapshots.environments() {
        if let Some(s) = snapshots.get(&env) {
            if let Some(flag) = s.snapshot().flags.get(&meta.key) {
                let state = state_of(flag, &meta.key, &env, marks);
                meta.environments.insert(env, state);
            }
        }
    }
    meta
}

/// The page of `flags` (ordered by key) that `query` asks for. An unknown `environment` is a
/// 400 naming it.
pub fn page(
    snapshots: &Snapshots,
    marks: &Marks,
    flags: Vec<Summary>,
    query: &ListQuery,
) -> Result<Page, ApiError> {
    let envs: Vec<_> = match &query.environment {
        Some(env) => vec![(
            env.clone(),
            snapshots.get(env).ok_or_else(|| {
                ApiError::bad_field("environment", format!("no environment `{env}`"))
            })?,
        )],
        None => snapshots
            .environments()
            .into_iter()
            .filter_map(|env| snapshots.get(&env).map(|s| (env, s)))
            .collect(),
    };
    let needle = query.q.as_deref().map(str::to_lowercase);
    let tags = query.tag.as_deref().unwrap_or_default();
    let matches = |meta: &Summary| {
        if let Some(needle) = &needle {
            let in_name = meta
                .name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains(needle.as_str()));
            if !meta.key.contains(needle.as_str()) && !in_name {
                return false;
            }
        }
        if !tags.iter().all(|t| meta.tags.contains(t)) {
            return false;
        }
        let Some(wanted) = query.state else {
            return true;
        };
        envs.iter().any(|(env, s)| {
            s.snapshot()
                .flags
                .get(&meta.key)
                .is_some_and(|flag| is_in(&state_of(flag, &meta.key, env, marks), wanted))
        })
    };
    let mut total = 0;
    let mut keys = Vec::new();
    let mut next_cursor = None;
    let limit = query.limit.unwrap_or(usize::MAX);
    for flag in flags.into_iter().filter(|m| matches(m)) {
        total += 1;
        if query.cursor.as_ref().is_some_and(|c| flag.key <= *c) {
            continue;
        }
        if keys.len() == limit {
            if next_cursor.is_none() {
                next_cursor = keys.last().cloned();
            }
            continue;
        }
        keys.push(flag.key);
    }
    Ok(Page {
        keys,
        total,
        next_cursor,
    })
}
