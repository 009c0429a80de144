//! Alert bindings and the alert occurrences already acted on, and running a notification's
//! plan (`alerts::plan`) inside one write: each action goes through the same write path as
//! the kill, restore and release endpoints, so its audit row, stream patch and webhooks are
//! theirs.
//!
//! Idempotency: an occurrence is (binding, fingerprint, `startsAt`); its row is inserted on
//! the first notification that fires it, and only that one acts. Repeats (Alertmanager's
//! `repeat_interval`, a group's other alerts, a retry, another replica) find the row and do
//! nothing, so a flag a person restored stays restored. The resolution acts once, too.

use super::audit::{self, NewAudit};
use super::releases::{self, Command};
use super::sql::{params, Conn};
use super::{flag_configs, json, to_json, WriteCtx};
use crate::alerts::{
    self, ActionReport, AlertAction, AlertStatus, AlertmanagerPayload, Binding, BindingSpec,
    OnResolved, Outcome, Receipt, Target, UnmatchedAlert,
};
use crate::clock::Millis;
use crate::error::ApiError;

/// Every binding not deleted, by id.
pub fn list(conn: &Conn) -> Result<Vec<Binding>, ApiError> {
    let rows = conn.query_map(
        "SELECT id, body, created_at, created_by FROM alert_bindings
         WHERE deleted_at IS NULL ORDER BY id",
        params![],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            ))
        },
    )?;
    rows.into_iter()
        .map(|(id, body, created_at, created_by)| {
            Ok(Binding {
                id,
                spec: json(&body)?,
                created_at,
                created_by,
            })
        })
        .collect()
}

/// Whether `flag` is a live flag of `environment` (the message says what is missing).
fn exists(ctx: &WriteCtx<'_>, flag: &str, environment: &str) -> Result<(), String> {
    let snapshot = ctx
        .snapshot(environment)
        .map_err(|_| format!("no environment `{environment}`"))?;
    if snapshot.flags.contains_key(flag) {
        Ok(())
    } else {
        Err(format!(
            "no flag `{flag}` in `{environment}` (or it is archived)"
        ))
    }
}

/// Creates a binding: 422 naming the field for a bad one, or a fixed flag or environment
/// that does not exist.
pub fn create(ctx: &mut WriteCtx<'_>, actor: &str, spec: BindingSpec) -> Result<Binding, ApiError> {
    let mut problems = spec.problems();
    if let Target::Fixed(env) = &spec.environment {
        if ctx.snapshot(env).is_err() {
            problems.push(flag_sdk::validate::FieldError {
                field: "environment".into(),
                message: format!("no environment `{env}`"),
            });
        }
    }
    if let Target::Fixed(flag) = &spec.flag {
        let known = match &spec.environment {
            Target::Fixed(env) => exists(ctx, flag, env).is_ok() || ctx.snapshot(env).is_err(),
            Target::Label { .. } => ctx
                .environments()
                .iter()
                .any(|env| exists(ctx, flag, env).is_ok()),
        };
        if !known {
            problems.push(flag_sdk::validate::FieldError {
                field: "flag".into(),
                message: format!("no flag `{flag}` (or it is archived)"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(flag_sdk::validate::ValidationErrors(
            problems,
        )));
    }
    let id: i64 = ctx
        .conn
        .query_one(
            "INSERT INTO alert_bindings (body, created_at, created_by) VALUES (?1, ?2, ?3)
             RETURNING id",
            params![&to_json(&spec), ctx.now, actor],
        )?
        .get(0)?;
    let binding = Binding {
        id,
        spec,
        created_at: ctx.now.to_owned(),
        created_by: actor.to_owned(),
    };
    record_binding(ctx, actor, "alert_binding.create", None, Some(&binding))?;
    Ok(binding)
}

/// Deletes a binding (its occurrences stay, for the record); 404 when there is none.
pub fn delete(ctx: &mut WriteCtx<'_>, actor: &str, id: i64) -> Result<Binding, ApiError> {
    let binding = list(ctx.conn)?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no alert binding {id}")))?;
    ctx.conn.execute(
        "UPDATE alert_bindings SET deleted_at = ?2 WHERE id = ?1",
        params![id, ctx.now],
    )?;
    record_binding(ctx, actor, "alert_binding.delete", Some(&binding), None)?;
    Ok(binding)
}

fn record_binding(
    ctx: &WriteCtx<'_>,
    actor: &str,
    action: &str,
    before: Option<&Binding>,
    after: Option<&Binding>,
) -> Result<(), ApiError> {
    let binding = before.or(after);
    let fixed = |t: &Target| match t {
        Target::Fixed(key) => Some(key.clone()),
        Target::Label { .. } => None,
    };
    let flag = binding.and_then(|b| fixed(&b.spec.flag));
    let environment = binding.and_then(|b| fixed(&b.spec.environment));
    audit::record(
        ctx,
        NewAudit {
            actor,
            action,
            flag: flag.as_deref(),
            environment: environment.as_deref(),
            before: before.and_then(audit::text),
            after: after.and_then(audit::text),
            ..NewAudit::default()
        },
    );
    Ok(())
}

/// Runs a notification: plans it against the bindings (422 and nothing done for an alert
/// naming a flag or environment label it lacks, or one that does not exist), then acts
/// once per occurrence. `actor` is `alertmanager:<token name>`.
pub fn receive(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    payload: &AlertmanagerPayload,
    now: Millis,
) -> Result<Receipt, ApiError> {
    let bindings = list(ctx.conn)?;
    let (tasks, unmatched) = alerts::plan(payload, &bindings, |flag, env| exists(ctx, flag, env))?;
    let mut actions = Vec::with_capacity(tasks.len());
    for task in tasks {
        let alert = &payload.alerts[task.alert];
        let key = Occurrence {
            binding: task.binding.id,
            fingerprint: &alert.fingerprint,
            starts_at: &alert.starts_at,
            flag: &task.flag,
            environment: &task.environment,
        };
        let spec = &task.binding.spec;
        let (outcome, detail) = match alert.status {
            AlertStatus::Firing => fire(ctx, actor, &key, spec.action, &alert.reason(), now)?,
            AlertStatus::Resolved => resolve(ctx, actor, &key, spec, &alert.reason(), now)?,
        };
        actions.push(ActionReport {
            alert: alert.name().to_owned(),
            fingerprint: alert.fingerprint.clone(),
            status: alert.status,
            binding: task.binding.id,
            flag: task.flag,
            environment: task.environment,
            action: spec.action,
            outcome,
            detail,
        });
    }
    let unmatched = unmatched
        .into_iter()
        .map(|i| {
            let alert = &payload.alerts[i];
            UnmatchedAlert {
                alert: alert.name().to_owned(),
                fingerprint: alert.fingerprint.clone(),
                status: alert.status,
            }
        })
        .collect();
    Ok(Receipt {
        alerts: payload.alerts.len(),
        actions,
        unmatched,
    })
}

/// One alert occurrence through one binding, on one flag.
struct Occurrence<'a> {
    binding: i64,
    fingerprint: &'a str,
    starts_at: &'a str,
    flag: &'a str,
    environment: &'a str,
}

/// What is stored of an occurrence: the flag version its kill produced (or 0 for a release
/// it paused) when it acted, and whether its resolution was handled.
struct Stored {
    acted_version: Option<i64>,
    resolved: bool,
}

impl Occurrence<'_> {
    fn stored(&self, conn: &Conn) -> Result<Option<Stored>, ApiError> {
        conn.query_opt(
            "SELECT acted_version, resolved_at FROM alert_occurrences
                 WHERE binding_id = ?1 AND fingerprint = ?2 AND starts_at = ?3",
            params![self.binding, self.fingerprint, self.starts_at],
        )?
        .map(|r| -> Result<Stored, ApiError> {
            Ok(Stored {
                acted_version: r.get(0)?,
                resolved: r.get::<Option<String>>(1)?.is_some(),
            })
        })
        .transpose()
    }

    /// Inserts the occurrence's row; `false` when it was there already.
    fn insert(&self, ctx: &WriteCtx<'_>, fired: bool) -> Result<bool, ApiError> {
        let (fired_at, resolved_at) = if fired {
            (Some(ctx.now), None)
        } else {
            (None, Some(ctx.now))
        };
        let inserted = ctx.conn.execute(
            "INSERT INTO alert_occurrences
                (binding_id, fingerprint, starts_at, flag, environment, fired_at, resolved_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            params![
                self.binding,
                self.fingerprint,
                self.starts_at,
                self.flag,
                self.environment,
                fired_at,
                resolved_at
            ],
        )?;
        Ok(inserted == 1)
    }

    /// Records the flag version the firing's kill produced (0: a release it moved).
    fn acted(&self, ctx: &WriteCtx<'_>, version: i64) -> Result<(), ApiError> {
        ctx.conn.execute(
            "UPDATE alert_occurrences SET acted_version = ?4
             WHERE binding_id = ?1 AND fingerprint = ?2 AND starts_at = ?3",
            params![self.binding, self.fingerprint, self.starts_at, version],
        )?;
        Ok(())
    }

    /// Records that the resolution was handled.
    fn resolved(&self, ctx: &WriteCtx<'_>) -> Result<(), ApiError> {
        ctx.conn.execute(
            "UPDATE alert_occurrences SET resolved_at = ?4
             WHERE binding_id = ?1 AND fingerprint = ?2 AND starts_at = ?3",
            params![self.binding, self.fingerprint, self.starts_at, ctx.now],
        )?;
        Ok(())
    }
}

/// A firing occurrence: acts the first time only.
fn fire(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    occurrence: &Occurrence<'_>,
    action: AlertAction,
    reason: &str,
    now: Millis,
) -> Result<(Outcome, String), ApiError> {
    if !occurrence.insert(ctx, true)? {
        return Ok((
            Outcome::Repeat,
            "this occurrence was handled before; nothing done".into(),
        ));
    }
    let (flag, env) = (occurrence.flag, occurrence.environment);
    let acted = match action {
        AlertAction::Kill => match flag_configs::kill(ctx, actor, flag, env, reason) {
            Ok(outcome) => outcome.changed.then_some(outcome.flag.version as i64),
            // The binding's own flag was archived (or its environment removed) since.
            Err(ApiError::NotFound(detail)) => return Ok((Outcome::Unchanged, detail)),
            Err(e) => return Err(e),
        },
        AlertAction::PauseRelease => {
            release_command(ctx, actor, flag, env, Command::Pause(reason.into()), now)?.map(|_| 0)
        }
        AlertAction::RollbackRelease => {
            release_command(ctx, actor, flag, env, Command::RollBack(reason.into()), now)?
                .map(|_| 0)
        }
    };
    let Some(version) = acted else {
        let detail = match action {
            AlertAction::Kill => format!("`{flag}` was already killed in `{env}`"),
            _ => format!("`{flag}` has no running release in `{env}`"),
        };
        return Ok((Outcome::Unchanged, detail));
    };
    occurrence.acted(ctx, version)?;
    let detail = match action {
        AlertAction::Kill => format!("killed `{flag}` in `{env}`"),
        AlertAction::PauseRelease => format!("paused the release of `{flag}` in `{env}`"),
        AlertAction::RollbackRelease => format!("rolled back the release of `{flag}` in `{env}`"),
    };
    Ok((Outcome::Acted, detail))
}

/// A person's command to a release on the alert's behalf; `None` when there is no release
/// or its state does not allow the command (nothing changed).
fn release_command(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    command: Command,
    now: Millis,
) -> Result<Option<()>, ApiError> {
    match releases::command(ctx, actor, flag, env, command, now) {
        Ok(_) => Ok(Some(())),
        Err(ApiError::NotFound(_) | ApiError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A resolved occurrence: with `on_resolved: restore`, undoes what its firing did, once,
/// unless the flag changed since (a person's restore, or another change, is kept).
fn resolve(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    occurrence: &Occurrence<'_>,
    spec: &BindingSpec,
    reason: &str,
    now: Millis,
) -> Result<(Outcome, String), ApiError> {
    let stored = occurrence.stored(ctx.conn)?;
    let Some(stored) = stored else {
        occurrence.insert(ctx, false)?;
        return Ok((
            Outcome::Kept,
            "resolved before this server saw it fire; nothing to undo".into(),
        ));
    };
    if stored.resolved {
        return Ok((
            Outcome::Repeat,
            "this resolution was handled before; nothing done".into(),
        ));
    }
    occurrence.resolved(ctx)?;
    let (flag, env) = (occurrence.flag, occurrence.environment);
    if spec.on_resolved == OnResolved::Nothing {
        return Ok((Outcome::Kept, "on_resolved is `nothing`".into()));
    }
    let Some(version) = stored.acted_version else {
        return Ok((
            Outcome::Kept,
            "its firing changed nothing; nothing to undo".into(),
        ));
    };
    match spec.action {
        AlertAction::Kill => {
            let current = ctx.snapshot(env)?.flags.get(flag).map(|f| f.version as i64);
            if current != Some(version) || !flag_configs::killed(ctx, flag, env)? {
                return Ok((
                    Outcome::Kept,
                    format!("`{flag}` changed since the alert killed it; left as it is"),
                ));
            }
            flag_configs::restore(ctx, actor, flag, env, Some(reason))?;
            Ok((Outcome::Restored, format!("restored `{flag}` in `{env}`")))
        }
        AlertAction::PauseRelease => {
            match release_command(ctx, actor, flag, env, Command::Resume, now)? {
                Some(()) => Ok((
                    Outcome::Restored,
                    format!("resumed the release of `{flag}` in `{env}`"),
                )),
                None => Ok((
                    Outcome::Kept,
                    format!("the release of `{flag}` is not paused (or the flag is killed); left as it is"),
                )),
            }
        }
        AlertAction::RollbackRelease => Ok((Outcome::Kept, "a rollback is not undone".into())),
    }
}
