//! `flag`: what a responder types at 3 a.m. and what product owners script (contract section 8).
//!
//! This file is the command tree and the exit path: parse, run one command, print any error
//! chain on one line to stderr, exit with the status of its class (see `error.rs`).
#![forbid(unsafe_code)]

mod api;
mod commands;
mod config;
mod diff;
mod error;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::commands::{
    alert, apply, compare, env, eval, flags, log, profiles, release, request, schedule, segment,
    status, targeting, token,
};

const AFTER_HELP: &str = "\
In an incident:
  flag kill new-checkout --reason \"INC-2042\"   turn it off everywhere in this env, now
  flag restore new-checkout                     put back exactly what was there
  flag get new-checkout                         what it serves right now
  flag log new-checkout                         who changed what, when, why
  flag status                                   is the server up, how many SDKs listen

Everyday:
  flag create new-checkout --kind boolean
  flag rollout new-checkout 5                   5% get `on`, the rest `off`
  flag on new-checkout
  flag eval new-checkout --context '{\"key\": \"user-1\", \"country\": \"NL\"}'
  flag eval new-checkout --snapshot snapshot.json --contexts users.jsonl
  flag --profile prod list --json

Product owners:
  flag rule add new-checkout --id benelux --clause 'country in NL,BE' --serve on
  flag target add new-checkout on user-1 user-2
  flag edit new-checkout                        $EDITOR on the configuration, applied with If-Match
  flag apply -f new-checkout.json --reason \"JIRA-7\"
  flag diff new-checkout --env staging --env production
  flag copy new-checkout --from staging --to production

Exit status: 0 ok, 1 other failure, 2 usage, 3 not found, 4 token rejected or not allowed,
5 conflict or lost an If-Match race, 6 server unreachable, 7 server error.";

/// Turn features off in seconds; roll them out, inspect and script them.
#[derive(Debug, Parser)]
#[command(name = "flag", version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where to point, valid for every command.
#[derive(Debug, Args)]
struct Global {
    /// Server base URL [default: http://127.0.0.1:8080, or the profile's].
    #[arg(long, global = true, env = "FLAG_SERVER_URL")]
    server: Option<String>,
    /// Admin token (sent as `Authorization: Bearer ...`).
    #[arg(long, global = true, env = "FLAG_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Environment [default: production, or the profile's]; `flag diff` takes two.
    #[arg(long, global = true, env = "FLAG_ENV")]
    env: Vec<String>,
    /// Named profile from the config file (server, token, env); explicit options win.
    #[arg(long, global = true, env = "FLAG_PROFILE")]
    profile: Option<String>,
    /// Config file [default: $XDG_CONFIG_HOME/flag/config.json or ~/.config/flag/config.json].
    #[arg(long, global = true, env = "FLAG_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kill switch: turn a flag off in the environment at once (one request, no prompt).
    #[command(
        after_help = "Example:\n  flag kill new-checkout --reason \"INC-2042: checkout errors\"\n\nUndo with `flag restore KEY`: it puts back exactly the configuration from before the kill."
    )]
    Kill(flags::KillArgs),
    /// Undo a kill: put back exactly the configuration from before it.
    #[command(after_help = "Example:\n  flag restore new-checkout --reason \"INC-2042 resolved\"")]
    Restore(flags::RestoreArgs),
    /// Turn a flag on (it serves its targets, rules and fallthrough).
    #[command(after_help = "Example:\n  flag on new-checkout --reason \"JIRA-7 launch\"")]
    On(flags::SwitchArgs),
    /// Turn a flag off (it serves its off variation); prefer `kill` in an incident.
    #[command(after_help = "Example:\n  flag off new-checkout")]
    Off(flags::SwitchArgs),
    /// Set the fallthrough to a percentage rollout of one variation.
    #[command(after_help = flags::ROLLOUT_HELP)]
    Rollout(flags::RolloutArgs),
    /// List flags and their state in the environment.
    #[command(
        after_help = "Examples:\n  flag list\n  flag list --search checkout --tag payments --state on\n  flag --env staging list --json"
    )]
    List(flags::ListArgs),
    /// Show a flag's configuration in the environment.
    #[command(after_help = "Example:\n  flag get new-checkout --json")]
    Get(flags::KeyArg),
    /// Create a flag (in every environment, disabled).
    #[command(
        after_help = "Examples:\n  flag create new-checkout\n  flag create theme --kind string --variation light='\"light\"' --variation dark='\"dark\"'"
    )]
    Create(flags::CreateArgs),
    /// Apply a flag's configuration or a segment from a JSON file, with If-Match.
    #[command(
        after_help = "Examples:\n  flag get new-checkout --json > new-checkout.json   # edit it, then:\n  flag apply -f new-checkout.json --reason \"JIRA-7\"\n  flag --env staging apply -f beta-testers.json\n\nA file with `fallthrough` is a flag's configuration, one without is a segment (created when\nit does not exist). Its `version` is sent as If-Match: a change made meanwhile gets 412."
    )]
    Apply(apply::ApplyArgs),
    /// Open $EDITOR on a flag's configuration (or a segment) and apply it with If-Match.
    #[command(
        after_help = "Examples:\n  flag edit new-checkout\n  EDITOR=\"code --wait\" flag edit beta-testers --segment\n\nOn a validation error the editor opens again with the errors at the top (`//` lines).\nSaving it unchanged writes nothing."
    )]
    Edit(apply::EditArgs),
    /// Individual targets: context keys pinned to a variation.
    #[command(subcommand)]
    Target(targeting::TargetCommand),
    /// Targeting rules: clauses and what matching contexts get.
    #[command(subcommand)]
    Rule(targeting::RuleCommand),
    /// Segments of the environment.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
    /// Archive a flag: it leaves every environment (SDKs get a delete).
    #[command(after_help = "Example:\n  flag archive old-banner --reason \"launched 2024\"")]
    Archive(flags::ArchiveArgs),
    /// Bring an archived flag back, as it was.
    #[command(after_help = "Example:\n  flag unarchive old-banner")]
    Unarchive(flags::ArchiveArgs),
    /// Add or remove tags of a flag.
    #[command(
        after_help = "Examples:\n  flag tag new-checkout add payments q3\n  flag tag new-checkout remove q3"
    )]
    Tag(flags::TagArgs),
    /// Compare a flag's configuration in two environments.
    #[command(after_help = "Example:\n  flag diff new-checkout --env staging --env production")]
    Diff(compare::DiffArgs),
    /// Copy a flag's configuration from one environment to another (If-Match, audited).
    #[command(
        after_help = "Example:\n  flag copy new-checkout --from staging --to production --reason \"JIRA-7 verified\""
    )]
    Copy(compare::CopyArgs),
    /// Evaluate a flag for contexts, on the server or offline from a snapshot file.
    #[command(after_help = eval::HELP)]
    Eval(eval::EvalArgs),
    /// The audit log, newest first: who changed what, when and why.
    #[command(
        after_help = "Examples:\n  flag log\n  flag log new-checkout --limit 5\n  flag log --since 2h\n  flag log --around 2026-12-01T03:00Z            30 minutes either side\n  flag log --around 2026-12-01T03:00Z --window 2h"
    )]
    Log(log::LogArgs),
    /// Environments.
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// API tokens (admin, or SDK bound to one environment).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Progressive releases with automatic rollback.
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Schedule a change for a time; list, cancel or resume the flag's schedules.
    #[command(
        after_help = "Examples:\n  flag schedule new-checkout --at 2026-12-24T08:00Z on --reason \"Christmas launch\"\n  flag schedule new-checkout --at 2026-12-27T08:00Z 25\n  flag schedule new-checkout --list\n  flag schedule new-checkout --cancel 3\n\nA kill pauses the flag's schedules; after `flag restore`, `--resume ID` carries one on."
    )]
    Schedule(schedule::ScheduleArgs),
    /// Change requests: where an environment requires approval, writes wait here.
    #[command(subcommand)]
    Request(request::RequestCommand),
    /// Alerts that act on flags: bind Alertmanager alerts to a kill, a release pause or rollback.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// Is the server up, what revision is the environment at, how many SDKs listen.
    #[command(after_help = "Example:\n  flag --profile prod status")]
    Status,
    /// The profiles of the config file.
    #[command(
        after_help = "The config file is JSON:\n  {\"default_profile\": \"prod\",\n   \"profiles\": {\"prod\": {\"server\": \"https://flags.example.com\", \"token\": \"...\", \"env\": \"production\"}}}"
    )]
    Profiles,
    /// Print shell completions.
    #[command(
        after_help = "Example:\n  flag completions bash > /etc/bash_completion.d/flag\n  flag completions zsh > \"${fpath[1]}/_flag\"\n  flag completions fish > ~/.config/fish/completions/flag.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("flag: internal error: {info}; please report it");
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flag: error: {}", one_line(&e));
            ExitCode::from(error::exit_code(&e))
        }
    }
}

/// The error chain on one line: `outer: inner: root`.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    let envs = g.env;
    if envs.len() > 1 && !matches!(cli.command, Command::Diff(_)) {
        anyhow::bail!(error::CliError::Usage(
            "--env is given more than once; only `flag diff` compares two".into()
        ));
    }
    let explicit = config::Explicit {
        server: g.server,
        token: g.token,
        env: envs.first().cloned(),
        profile: g.profile,
        config: g.config,
    };
    let ctx = commands::Ctx::new(explicit, g.json);
    match cli.command {
        Command::Kill(a) => flags::kill(&ctx, a),
        Command::Restore(a) => flags::restore(&ctx, a),
        Command::On(a) => flags::set_enabled(&ctx, a, true),
        Command::Off(a) => flags::set_enabled(&ctx, a, false),
        Command::Apply(a) => apply::apply(&ctx, a),
        Command::Edit(a) => apply::edit(&ctx, a),
        Command::Target(c) => targeting::target(&ctx, c),
        Command::Rule(c) => targeting::rule(&ctx, c),
        Command::Segment(c) => segment::run(&ctx, c),
        Command::Archive(a) => flags::archive(&ctx, a, true),
        Command::Unarchive(a) => flags::archive(&ctx, a, false),
        Command::Tag(a) => flags::tag(&ctx, a),
        Command::Diff(a) => compare::diff(&ctx, a, &envs),
        Command::Copy(a) => compare::copy(&ctx, a),
        Command::Rollout(a) => flags::rollout(&ctx, a),
        Command::List(a) => flags::list(&ctx, a),
        Command::Get(a) => flags::get(&ctx, &a.key),
        Command::Create(a) => flags::create(&ctx, a),
        Command::Eval(a) => eval::run(&ctx, a),
        Command::Log(a) => log::run(&ctx, a),
        Command::Env(c) => env::run(&ctx, c),
        Command::Token(c) => token::run(&ctx, c),
        Command::Release(c) => release::run(&ctx, c),
        Command::Schedule(a) => schedule::run(&ctx, a),
        Command::Request(c) => request::run(&ctx, c),
        Command::Alert(c) => alert::run(&ctx, c),
        Command::Status => status::run(&ctx),
        Command::Profiles => profiles::run(&ctx),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "flag", &mut script);
            output::emit(String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from(["flag", "kill", "x", "--reason", "r", "--env", "staging"])
            .unwrap();
        assert_eq!(cli.global.env, ["staging"]);
        assert!(matches!(cli.command, Command::Kill(_)));
    }

    #[test]
    fn kill_needs_a_reason() {
        let e = Cli::try_parse_from(["flag", "kill", "x"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn rollout_parses_percent() {
        let cli = Cli::try_parse_from(["flag", "rollout", "x", "12.5"]).unwrap();
        let Command::Rollout(a) = cli.command else {
            panic!("not a rollout")
        };
        assert_eq!(a.percent.0, 12_500);
        assert!(Cli::try_parse_from(["flag", "rollout", "x", "101"]).is_err());
    }
}
