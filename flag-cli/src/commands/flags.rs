//! Flags: `kill`, `restore`, `on`, `off`, `rollout`, `list`, `get`, `create`, `archive`,
//! `unarchive`, `tag`.

use std::collections::BTreeMap;

use clap::Args;
use flag_sdk::{Flag, Variation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::request;
use super::rmw::{self, Percent, Remote};
use super::Ctx;
use crate::api::{config_path, KillOutcome, Method, What};
use crate::output::{self, emit, emit_json};

/// `flag rollout` help.
pub const ROLLOUT_HELP: &str = "\
Sets the flag's fallthrough (what contexts get when no target or rule matches) to
  [VARIATION: PERCENT, REST: 100 - PERCENT]
where VARIATION is --variation or the flag's first variation, and REST is --rest, or the
flag's off variation, or (when that is VARIATION) its first other variation.
The rollout's bucket_by and salt are kept, and VARIATION is listed first, so raising the
percentage never moves a context out of VARIATION. Targets, rules and on/off are untouched.
Percentages take up to 3 decimals (0.001% steps).

Examples:
  flag rollout new-checkout 5
  flag rollout new-checkout 25
  flag rollout theme 10 --variation dark --rest light --bucket-by org";

/// A flag key.
#[derive(Debug, Args)]
pub struct KeyArg {
    /// The flag key.
    pub key: String,
}

/// `flag on` / `flag off`.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// The flag key.
    pub key: String,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// `flag archive` / `flag unarchive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The flag key.
    pub key: String,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// `flag tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The flag key.
    pub key: String,
    /// `add` or `remove`.
    pub action: TagAction,
    /// The tags.
    #[arg(required = true)]
    pub tags: Vec<String>,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// What `flag tag` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TagAction {
    /// Add the tags (those it has stay).
    Add,
    /// Remove the tags.
    Remove,
}

/// `flag kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The flag key.
    pub key: String,
    /// Why (written to the audit log), e.g. the incident id.
    #[arg(long, short)]
    pub reason: String,
}

/// `flag restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The flag key.
    pub key: String,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// `flag rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The flag key.
    pub key: String,
    /// Share of the variation, 0 to 100 (e.g. 25 or 0.5).
    pub percent: Percent,
    /// The variation rolled out [default: the flag's first].
    #[arg(long)]
    pub variation: Option<String>,
    /// The variation everyone else gets [default: the off variation, or the first other].
    #[arg(long)]
    pub rest: Option<String>,
    /// The context attribute hashed into buckets [default: the current one, or `key`].
    #[arg(long)]
    pub bucket_by: Option<String>,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// `flag list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include archived flags.
    #[arg(long)]
    pub archived: bool,
    /// Only flags whose key or name contains this (any case).
    #[arg(long, short)]
    pub search: Option<String>,
    /// Only flags with this tag (repeatable: all of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only flags in this state in the environment: on, off, killed, rollout, release.
    #[arg(long)]
    pub state: Option<String>,
}

/// `flag create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The flag key (`^[a-z0-9][a-z0-9._-]{0,99}$`).
    pub key: String,
    /// boolean, string, number or json.
    #[arg(long, default_value = "boolean")]
    pub kind: String,
    /// A human name.
    #[arg(long)]
    pub name: Option<String>,
    /// A description.
    #[arg(long)]
    pub description: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// A variation as KEY=JSON, e.g. dark='"dark"' (repeatable; booleans default to on/off).
    #[arg(long = "variation", value_parser = parse_variation)]
    pub variations: Vec<Variation>,
}

fn parse_variation(s: &str) -> Result<Variation, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=JSON"))?;
    let value: Value = serde_json::from_str(value).map_err(|e| {
        format!("the value of `{key}` is not JSON ({e}); quote strings: {key}='\"text\"'")
    })?;
    Ok(Variation {
        key: key.to_owned(),
        value,
    })
}

/// A flag's definition as `GET /flags` answers it.
#[derive(Debug, Deserialize)]
struct FlagMeta {
    key: String,
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    environments: BTreeMap<String, FlagState>,
}

#[derive(Debug, Deserialize)]
struct FlagState {
    enabled: bool,
    version: u64,
    #[serde(default)]
    killed: bool,
}

/// `flag kill KEY --reason ...`.
pub fn kill(ctx: &Ctx, a: KillArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let path = format!("{}/kill", config_path(&a.key, &env));
    let what = What::Flag {
        key: &a.key,
        env: &env,
    };
    let raw: Value = api.post(&path, &json!({ "reason": a.reason }), what)?;
    if request::held(ctx, &raw, &format!("the kill of {} in {env}", a.key)) {
        return Ok(());
    }
    let out: KillOutcome = serde_json::from_value(raw.clone())?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let flag = &out.flag;
    if out.changed {
        emit(format!(
            "KILLED {} in {env} (version {} -> {})",
            flag.key, out.before.version, flag.version
        ));
    } else {
        emit(format!(
            "{} in {env} was already off; nothing changed (version {})",
            flag.key, flag.version
        ));
    }
    emit(format!("  before:    {}", output::state(&out.before)));
    emit(format!("  now:       {}", output::state(flag)));
    emit(format!(
        "  reaching:  {} SDK connection(s) in {env}",
        out.subscribers
    ));
    emit(format!("  reason:    {}", a.reason));
    emit(format!(
        "  undo:      flag restore {} --env {env}",
        flag.key
    ));
    release_note(
        &raw,
        &flag.key,
        &env,
        "paused by this kill; after the restore,",
    );
    Ok(())
}

/// `flag restore KEY`.
pub fn restore(ctx: &Ctx, a: RestoreArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let path = format!("{}/restore", config_path(&a.key, &env));
    let what = What::Flag {
        key: &a.key,
        env: &env,
    };
    let raw: Value = api.post(&path, &json!({ "reason": a.reason }), what)?;
    if request::held(ctx, &raw, &format!("the restore of {} in {env}", a.key)) {
        return Ok(());
    }
    let out: KillOutcome = serde_json::from_value(raw.clone())?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    emit(format!(
        "RESTORED {} in {env} (version {} -> {})",
        out.flag.key, out.before.version, out.flag.version
    ));
    emit(format!("  before:    {}", output::state(&out.before)));
    emit(format!("  now:       {}", output::state(&out.flag)));
    emit(format!(
        "  reaching:  {} SDK connection(s) in {env}",
        out.subscribers
    ));
    release_note(&raw, &out.flag.key, &env, "still paused;");
    Ok(())
}

/// After a kill or restore: how to carry on the flag's paused release, if it has one.
fn release_note(raw: &Value, key: &str, env: &str, what: &str) {
    if raw["release_paused"] == true {
        emit(format!(
            "  release:   {what} carry it on with: flag release resume {key} --env {env}"
        ));
    }
    if let Some(n) = raw["schedules_paused"].as_u64().filter(|n| *n > 0) {
        emit(format!(
            "  schedules: {n} paused; see them with `flag schedule {key} --list --env {env}`, carry one on with `flag schedule {key} --resume ID --env {env}`"
        ));
    }
}

/// `flag on KEY` / `flag off KEY`.
pub fn set_enabled(ctx: &Ctx, a: SwitchArgs, enabled: bool) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let store = Remote {
        api: &api,
        key: &a.key,
        env: &env,
        reason: a.reason.as_deref(),
    };
    let change = move |f: &mut Flag| {
        f.enabled = enabled;
        Ok(())
    };
    let c = rmw::read_modify_write(&store, &change)?;
    report(ctx, &env, &c, if enabled { "ON" } else { "OFF" });
    Ok(())
}

/// `flag rollout KEY PERCENT`.
pub fn rollout(ctx: &Ctx, a: RolloutArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let store = Remote {
        api: &api,
        key: &a.key,
        env: &env,
        reason: a.reason.as_deref(),
    };
    let change = |f: &mut Flag| {
        rmw::apply_rollout(
            f,
            a.percent.0,
            a.variation.as_deref(),
            a.rest.as_deref(),
            a.bucket_by.as_deref(),
        )
    };
    let c = rmw::read_modify_write(&store, &change)?;
    report(ctx, &env, &c, "ROLLOUT");
    if !c.after.enabled && !ctx.json {
        emit(format!("  note:      the flag is off, so everyone still gets its off variation; `flag on {}` to serve the rollout", a.key));
    }
    Ok(())
}

/// Prints what a read-modify-write did (or its JSON with `--json`); a held change names
/// its change request.
pub(crate) fn report(ctx: &Ctx, env: &str, c: &rmw::Changed, verb: &str) {
    if let Some(held) = &c.held {
        let raw = serde_json::to_value(held).unwrap_or_default();
        let what = format!("{verb} {} in {env}", c.after.key);
        request::announce(ctx, &raw, held, &what);
        return;
    }
    if ctx.json {
        emit_json(
            &json!({ "before": c.before, "flag": c.after, "changed": c.written, "retried": c.retried }),
        );
        return;
    }
    let key = &c.after.key;
    if c.written {
        emit(format!(
            "{verb} {key} in {env} (version {} -> {})",
            c.before.version, c.after.version
        ));
        emit(format!("  before:    {}", output::state(&c.before)));
    } else {
        emit(format!(
            "{key} in {env} is already like that; nothing changed (version {})",
            c.after.version
        ));
    }
    emit(format!("  now:       {}", output::state(&c.after)));
    if c.retried {
        emit("  note:      someone changed the flag meanwhile (412); re-read and applied on top of their change");
    }
}

/// `flag list`.
pub fn list(ctx: &Ctx, a: ListArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let mut query = vec![("archived", a.archived.to_string())];
    query.extend(a.search.map(|q| ("q", q)));
    query.extend(a.tags.into_iter().map(|t| ("tag", t)));
    if let Some(state) = a.state {
        query.push(("state", state));
        query.push(("environment", env.clone()));
    }
    let raw: Value = api.get_query("/api/v1/flags", &query, What::Other)?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let metas: Vec<FlagMeta> = serde_json::from_value(raw)?;
    let rows: Vec<Vec<String>> = metas
        .iter()
        .map(|m| {
            let (state, version) = match m.environments.get(&env) {
                _ if m.archived => ("archived".to_owned(), "-".to_owned()),
                Some(s) => (
                    (if s.killed {
                        "killed"
                    } else if s.enabled {
                        "on"
                    } else {
                        "off"
                    })
                    .to_owned(),
                    s.version.to_string(),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            vec![
                m.key.clone(),
                m.kind.clone(),
                state,
                version,
                m.name.clone().unwrap_or_default(),
                m.tags.join(","),
            ]
        })
        .collect();
    let env_header = format!("IN {}", env.to_uppercase());
    emit(output::table(
        &["KEY", "KIND", &env_header, "VERSION", "NAME", "TAGS"],
        &rows,
    ));
    Ok(())
}

/// `flag get KEY`.
pub fn get(ctx: &Ctx, key: &str) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let v = api.flag_config(key, &env)?;
    if ctx.json {
        emit_json(&v.flag);
        return Ok(());
    }
    let f = &v.flag;
    emit(format!(
        "{} ({}) in {env}, version {}",
        f.key,
        f.kind.as_str(),
        v.version
    ));
    emit(format!("  state:         {}", output::state(f)));
    emit(format!(
        "  off variation: {}",
        output::variation(f, &f.off_variation)
    ));
    emit(format!(
        "  fallthrough:   {}",
        output::serve(&f.fallthrough)
    ));
    let vars: Vec<String> = f
        .variations
        .iter()
        .map(|x| format!("{}={}", x.key, x.value))
        .collect();
    emit(format!("  variations:    {}", vars.join(", ")));
    for p in &f.prerequisites {
        emit(format!(
            "  prerequisite:  {} serves {}",
            p.flag, p.variation
        ));
    }
    for t in &f.targets {
        emit(format!(
            "  target:        {} -> {}",
            output::plural(t.keys.len(), "key"),
            t.variation
        ));
    }
    for (i, r) in f.rules.iter().enumerate() {
        let id = r.id.clone().unwrap_or_else(|| format!("#{i}"));
        emit(format!(
            "  rule:          {id}: {} -> {}",
            output::plural(r.clauses.len(), "clause"),
            output::serve(&r.serve)
        ));
    }
    Ok(())
}

/// `flag create KEY`.
pub fn create(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<()> {
    let (api, _env) = ctx.api()?;
    let mut body = json!({ "key": a.key, "kind": a.kind, "tags": a.tags });
    if let Some(n) = a.name {
        body["name"] = json!(n);
    }
    if let Some(d) = a.description {
        body["description"] = json!(d);
    }
    if !a.variations.is_empty() {
        body["variations"] = serde_json::to_value(&a.variations)?;
    }
    let raw: Value = api.post("/api/v1/flags", &body, What::Other)?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let meta: FlagMeta = serde_json::from_value(raw)?;
    let envs: Vec<&str> = meta.environments.keys().map(String::as_str).collect();
    emit(format!(
        "CREATED {} ({}) in {}: off everywhere; `flag on {}` to serve it",
        meta.key,
        meta.kind,
        if envs.is_empty() {
            "every environment".to_owned()
        } else {
            envs.join(", ")
        },
        meta.key
    ));
    Ok(())
}

/// `flag archive KEY` / `flag unarchive KEY`.
pub fn archive(ctx: &Ctx, a: ArchiveArgs, archived: bool) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let what = What::Flag {
        key: &a.key,
        env: &env,
    };
    let path = format!("/api/v1/flags/{}", a.key);
    let reason = a.reason.as_deref();
    let raw: Value = if archived {
        api.delete_because(&path, reason, what)?;
        api.get(&path, what)?
    } else {
        api.write(
            Method::POST,
            &format!("{path}/unarchive"),
            &json!({}),
            reason,
            what,
        )?
    };
    if ctx.json {
        emit_json(&raw);
    } else if archived {
        emit(format!(
            "ARCHIVED {}: gone from every environment; `flag unarchive {}` brings it back",
            a.key, a.key
        ));
    } else {
        emit(format!(
            "UNARCHIVED {}: back in every environment as it was",
            a.key
        ));
    }
    Ok(())
}

/// `flag tag KEY add|remove TAG...`.
pub fn tag(ctx: &Ctx, a: TagArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let what = What::Flag {
        key: &a.key,
        env: &env,
    };
    let path = format!("/api/v1/flags/{}", a.key);
    let current: FlagMeta = api.get(&path, what)?;
    let mut tags = current.tags;
    match a.action {
        TagAction::Add => {
            for t in a.tags {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
        }
        TagAction::Remove => tags.retain(|t| !a.tags.contains(t)),
    }
    let raw: Value = api.write(
        Method::PATCH,
        &path,
        &json!({ "tags": tags }),
        a.reason.as_deref(),
        what,
    )?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let meta: FlagMeta = serde_json::from_value(raw)?;
    emit(format!(
        "TAGS of {}: {}",
        meta.key,
        if meta.tags.is_empty() {
            "(none)".to_owned()
        } else {
            meta.tags.join(", ")
        }
    ));
    Ok(())
}
