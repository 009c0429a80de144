//! Flags: their definition (kind, name, tags, default variations, archived), shared by every
//! environment. Their configuration per environment is in `flag_configs`.

use std::collections::BTreeMap;

use flag_sdk::validate::{
    check_key, validate_flag, validate_flag_in, FieldError, ValidationErrors,
};
use flag_sdk::{Change, Flag, FlagKind, Variation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::flag_configs::{default_config, insert_config};
use super::sql::{self, params, Conn, Row};
use super::{json, to_json, Effect, WriteCtx};
use crate::error::ApiError;

/// A flag's definition, shared by every environment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlagMeta {
    /// The flag's key.
    pub key: String,
    /// `boolean`, `string`, `number` or `json`.
    pub kind: FlagKind,
    /// A human name.
    pub name: Option<String>,
    /// What the flag is for.
    pub description: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// The variations a new environment's configuration starts with.
    pub variations: Vec<Variation>,
    /// Archived flags are gone from every environment's snapshot.
    pub archived: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// Per environment: whether the flag is on and its configuration's version
    /// (filled in by the API from the live snapshots; absent for archived flags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, FlagState>,
}

/// A flag's state in one environment, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlagState {
    /// `false` = killed or off.
    pub enabled: bool,
    /// The configuration's version (its `ETag`).
    pub version: u64,
    /// Killed: off by the kill switch, `restore` puts back what was there.
    pub killed: bool,
    /// On, with a percentage rollout as its fallthrough.
    pub rollout: bool,
    /// A release of the flag is running in the environment.
    pub release: bool,
}

/// `POST /flags`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlag {
    /// The key, `^[a-z0-9][a-z0-9._-]{0,99}$`.
    pub key: String,
    /// `boolean`, `string`, `number` or `json`.
    #[schema(example = "boolean")]
    pub kind: String,
    /// A human name.
    pub name: Option<String>,
    /// What the flag is for.
    pub description: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The variations; a boolean flag defaults to `on` = true, `off` = false.
    pub variations: Option<Vec<Variation>>,
}

/// `PATCH /flags/{key}`: the fields given are replaced.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagPatch {
    /// A human name.
    pub name: Option<String>,
    /// What the flag is for.
    pub description: Option<String>,
    /// Free-form labels.
    pub tags: Option<Vec<String>>,
}

const META_COLUMNS: &str =
    "key, kind, name, description, tags, variations, archived, created_at, updated_at";

fn meta_from_row(r: &Row) -> Result<(FlagMeta, String, String, String), sql::Error> {
    Ok((
        FlagMeta {
            key: r.get(0)?,
            kind: FlagKind::Boolean,
            name: r.get(2)?,
            description: r.get(3)?,
            tags: Vec::new(),
            variations: Vec::new(),
            archived: r.get(6)?,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
            environments: BTreeMap::new(),
        },
        r.get(1)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn finish_meta(
    (mut meta, kind, tags, variations): (FlagMeta, String, String, String),
) -> Result<FlagMeta, ApiError> {
    meta.kind = json(&format!("\"{kind}\""))?;
    meta.tags = json(&tags)?;
    meta.variations = json(&variations)?;
    Ok(meta)
}

/// Every flag's definition by key; archived ones only when asked.
pub fn list(conn: &Conn, archived: bool) -> Result<Vec<FlagMeta>, ApiError> {
    let rows = conn.query_map(
        &format!("SELECT {META_COLUMNS} FROM flags WHERE ?1 OR archived = 0 ORDER BY key"),
        params![archived],
        meta_from_row,
    )?;
    rows.into_iter().map(finish_meta).collect()
}

/// What the flag list filters on: a flag's key, name and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The flag's key.
    pub key: String,
    /// A human name.
    pub name: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
}

/// Every flag's key, name and tags by key; archived ones only when asked.
pub fn summaries(conn: &Conn, archived: bool) -> Result<Vec<Summary>, ApiError> {
    let rows = conn.query_map(
        "SELECT key, name, tags FROM flags WHERE ?1 OR archived = 0 ORDER BY key",
        params![archived],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<Option<String>>(1)?,
                r.get::<String>(2)?,
            ))
        },
    )?;
    rows.into_iter()
        .map(|(key, name, tags)| {
            let tags = if tags == "[]" {
                Vec::new()
            } else {
                json(&tags)?
            };
            Ok(Summary { key, name, tags })
        })
        .collect()
}

/// The definitions of `keys` (that exist), by key.
pub fn get_many(conn: &Conn, keys: &[String]) -> Result<Vec<FlagMeta>, ApiError> {
    /// Keys per query: far below every backend's limit on parameters.
    const CHUNK: usize = 500;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
        let params: Vec<sql::Param<'_>> = chunk.iter().map(|k| k.as_str().into()).collect();
        let rows = conn.query_map(
            &format!(
                "SELECT {META_COLUMNS} FROM flags WHERE key IN ({}) ORDER BY key",
                marks.join(", ")
            ),
            &params,
            meta_from_row,
        )?;
        for row in rows {
            out.push(finish_meta(row)?);
        }
    }
    Ok(out)
}

/// One flag's definition.
pub fn get(conn: &Conn, key: &str) -> Result<FlagMeta, ApiError> {
    let row = conn.query_opt(
        &format!("SELECT {META_COLUMNS} FROM flags WHERE key = ?1"),
        params![key],
    )?;
    match row {
        Some(row) => finish_meta(meta_from_row(&row)?),
        None => Err(no_flag(key)),
    }
}

pub(super) fn no_flag(key: &str) -> ApiError {
    ApiError::NotFound(format!("no flag `{key}`"))
}

/// Creates a flag in every environment, disabled.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    new: NewFlag,
    reason: Option<&str>,
) -> Result<FlagMeta, ApiError> {
    let mut errors = Vec::new();
    if let Err(m) = check_key(&new.key) {
        errors.push(field("key", m));
    }
    let kind = Some(FlagKind::from_name(&new.kind)).filter(|k| !matches!(k, FlagKind::Unknown(_)));
    if kind.is_none() {
        errors.push(field(
            "kind",
            "must be one of `boolean`, `string`, `number`, `json`",
        ));
    }
    let variations = match (new.variations, &kind) {
        (Some(v), _) => v,
        (None, Some(FlagKind::Boolean)) => vec![
            Variation {
                key: "on".into(),
                value: Value::Bool(true),
            },
            Variation {
                key: "off".into(),
                value: Value::Bool(false),
            },
        ],
        (None, Some(_)) => {
            errors.push(field("variations", "required for a non-boolean flag"));
            Vec::new()
        }
        (None, None) => Vec::new(),
    };
    if variations.is_empty() && kind.is_some() && !errors.iter().any(|e| e.field == "variations") {
        errors.push(field("variations", "must not be empty"));
    }
    let tags = check_tags(&new.tags, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(ValidationErrors(errors)));
    }
    let kind = kind.unwrap_or(FlagKind::Json);
    let config = default_config(&new.key, kind.clone(), variations);
    validate_flag(&config)?;
    let exists = ctx
        .conn
        .query_opt(
            "SELECT archived FROM flags WHERE key = ?1",
            params![&new.key],
        )?
        .map(|r| r.get::<bool>(0))
        .transpose()?;
    if let Some(archived) = exists {
        let state = if archived { " (archived)" } else { "" };
        return Err(ApiError::Conflict(format!(
            "flag `{}` already exists{state}",
            new.key
        )));
    }
    ctx.conn.execute(
        "INSERT INTO flags (key, kind, name, description, tags, variations, archived, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7)",
        params![
            &new.key,
            kind.as_str(),
            new.name.as_ref(),
            new.description.as_ref(),
            &to_json(&tags),
            &to_json(&config.variations),
            ctx.now
        ],
    )?;
    let json = to_json(&config);
    for env in ctx.environments() {
        insert_config(ctx.conn, &env, &config, &json)?;
        let revision = ctx.bump_revision(&env)?;
        let change = Change::Flag {
            revision,
            flag: config.clone(),
        };
        ctx.emit(Effect::change(&env, change, Some(json.clone())));
    }
    let meta = FlagMeta {
        key: new.key.clone(),
        kind,
        name: new.name,
        description: new.description,
        tags,
        variations: config.variations.clone(),
        archived: false,
        created_at: ctx.now.to_owned(),
        updated_at: ctx.now.to_owned(),
        environments: BTreeMap::new(),
    };
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "flag.create",
            flag: Some(&meta.key),
            after: audit::text(&meta),
            reason,
            ..NewAudit::default()
        },
    );
    Ok(meta)
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn check_tags(tags: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    for (i, tag) in tags.iter().enumerate() {
        if tag.is_empty() || tag.len() > 100 {
            errors.push(field(&format!("tags[{i}]"), "must be 1 to 100 characters"));
        }
    }
    if tags.len() > 100 {
        errors.push(field("tags", "at most 100 tags"));
    }
    tags.to_vec()
}

/// Replaces the name, description or tags of a flag.
pub fn update(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    key: &str,
    patch: FlagPatch,
    reason: Option<&str>,
) -> Result<FlagMeta, ApiError> {
    let before = get(ctx.conn, key)?;
    let mut errors = Vec::new();
    let mut after = before.clone();
    if let Some(name) = patch.name {
        after.name = Some(name);
    }
    if let Some(description) = patch.description {
        after.description = Some(description);
    }
    if let Some(tags) = patch.tags {
        after.tags = check_tags(&tags, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(ValidationErrors(errors)));
    }
    after.updated_at = ctx.now.to_owned();
    ctx.conn.execute(
        "UPDATE flags SET name = ?2, description = ?3, tags = ?4, updated_at = ?5 WHERE key = ?1",
        params![
            key,
            after.name.as_ref(),
            after.description.as_ref(),
            &to_json(&after.tags),
            ctx.now
        ],
    )?;
    recorded(ctx, actor, "flag.update", &before, after, reason)
}

/// Archives a flag: it leaves every environment's snapshot. Refused while another live flag
/// names it as a prerequisite.
pub fn archive(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    key: &str,
    reason: Option<&str>,
) -> Result<FlagMeta, ApiError> {
    let before = archived_or_not(ctx.conn, key, false)?;
    let mut dependents = Vec::new();
    for env in ctx.environments() {
        for flag in ctx.snapshot(&env)?.flags.values() {
            if flag.prerequisites.iter().any(|p| p.flag == key) {
                dependents.push(format!("{} in {env}", flag.key));
            }
        }
    }
    if !dependents.is_empty() {
        return Err(ApiError::Conflict(format!(
            "flag `{key}` is a prerequisite of {}",
            dependents.join(", ")
        )));
    }
    for env in ctx.environments() {
        let revision = ctx.bump_revision(&env)?;
        let change = Change::FlagDeleted {
            revision,
            key: key.to_owned(),
        };
        ctx.emit(Effect::change(&env, change, None));
    }
    mark_archived(ctx, actor, before, true, reason)
}

/// The definition of `key`, which must be `archived` (or not): a 409 otherwise.
fn archived_or_not(conn: &Conn, key: &str, archived: bool) -> Result<FlagMeta, ApiError> {
    let meta = get(conn, key)?;
    match (meta.archived, archived) {
        (true, false) => Err(ApiError::Conflict(format!(
            "flag `{key}` is already archived"
        ))),
        (false, true) => Err(ApiError::Conflict(format!("flag `{key}` is not archived"))),
        _ => Ok(meta),
    }
}

/// Marks the flag archived (or not) and writes the audit row.
fn mark_archived(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    before: FlagMeta,
    archived: bool,
    reason: Option<&str>,
) -> Result<FlagMeta, ApiError> {
    ctx.conn.execute(
        "UPDATE flags SET archived = ?2, updated_at = ?3 WHERE key = ?1",
        params![&before.key, archived, ctx.now],
    )?;
    let mut after = before.clone();
    after.archived = archived;
    after.updated_at = ctx.now.to_owned();
    let action = if archived {
        "flag.archive"
    } else {
        "flag.unarchive"
    };
    recorded(ctx, actor, action, &before, after, reason)
}

/// Brings an archived flag back into every environment with the configuration it had when it
/// was archived (under a new version; a default, disabled one in an environment created
/// since). Refused (409, naming each problem) while a configuration names a flag or segment
/// that is gone.
pub fn unarchive(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    key: &str,
    reason: Option<&str>,
) -> Result<FlagMeta, ApiError> {
    let before = archived_or_not(ctx.conn, key, true)?;
    let mut configs = Vec::new();
    let mut problems = Vec::new();
    for env in ctx.environments() {
        let stored = ctx
            .conn
            .query_opt(
                "SELECT config FROM flag_configs WHERE flag = ?1 AND environment = ?2",
                params![key, &env],
            )?
            .map(|r| r.get::<String>(0))
            .transpose()?;
        let config = match &stored {
            Some(text) => {
                let mut config: Flag = json(text)?;
                config.version += 1;
                config
            }
            None => default_config(key, before.kind.clone(), before.variations.clone()),
        };
        if let Err(errors) = validate_flag_in(&config, ctx.snapshot(&env)?) {
            problems.extend(
                errors
                    .0
                    .into_iter()
                    .map(|e| format!("in `{env}`: {}: {}", e.field, e.message)),
            );
        }
        configs.push((env, config, stored.is_some()));
    }
    if !problems.is_empty() {
        return Err(ApiError::Conflict(format!(
            "flag `{key}` cannot come back as it was: {}; fix what it names first",
            problems.join("; ")
        )));
    }
    for (env, config, stored) in configs {
        let json = to_json(&config);
        if stored {
            ctx.conn.execute(
                "UPDATE flag_configs SET version = ?3, config = ?4
                 WHERE flag = ?1 AND environment = ?2",
                params![key, &env, config.version as i64, &json],
            )?;
        } else {
            insert_config(ctx.conn, &env, &config, &json)?;
        }
        let revision = ctx.bump_revision(&env)?;
        let change = Change::Flag {
            revision,
            flag: config,
        };
        ctx.emit(Effect::change(&env, change, Some(json)));
    }
    mark_archived(ctx, actor, before, false, reason)
}

/// Writes the audit row of a change of a flag's definition from `before` to `after`.
fn recorded(
    ctx: &WriteCtx<'_>,
    actor: &str,
    action: &str,
    before: &FlagMeta,
    after: FlagMeta,
    reason: Option<&str>,
) -> Result<FlagMeta, ApiError> {
    audit::record(
        ctx,
        NewAudit {
            actor,
            action,
            flag: Some(&after.key),
            before: audit::text(before),
            after: audit::text(&after),
            reason,
            ..NewAudit::default()
        },
    );
    Ok(after)
}
