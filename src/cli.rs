//! The `tutorq` command line: one binary for the API, the workers and the operator tools.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::{AppState, Application};
use crate::auth::{Authenticator, Role};
use crate::config::Settings;
use crate::prompts::PromptSet;
use crate::shutdown::{self, Shutdown};

#[derive(Debug, Parser)]
#[command(
    name = "tutorq",
    version,
    about = "AI engine of the student-coaching platform: API, workers and tools"
)]
#[command(
    after_help = "Configuration: config/default.yaml, then config/$TUTORQ_ENV.yaml (development by default), \
then TUTORQ__SECTION__KEY environment variables. See README.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API on server.host:server.port.
    Serve,
    /// Run the job worker pools.
    Worker {
        /// Comma-separated job queues to consume (default: all).
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
    },
    /// Serve the API and run the workers in one process (the development default).
    All,
    /// Apply pending PostgreSQL migrations and exit.
    Migrate,
    /// Prompt file tools.
    Prompts {
        #[command(subcommand)]
        command: PromptsCommand,
    },
    /// Benchmarks that print figures (see README: Benchmarks).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Submit a batch to a running server and follow it (a client: needs no configuration).
    Batch {
        #[command(subcommand)]
        command: crate::batch_cli::BatchCommand,
    },
    /// Print a signed development JWT (not available in production).
    Token {
        /// The user id (`sub` claim).
        #[arg(long)]
        sub: String,
        /// student, teacher, admin or service.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Queue engine: drain, steady state, pickup latency, HTTP intake, RSS. Uses the configured
    /// Redis and PostgreSQL and FLUSHES the Redis database: point it at a scratch one.
    Queue(crate::bench::QueueBench),
    /// Server-Sent Events: RSS and delivery delay with many subscribers on one web process, and
    /// submit → succeeded round trips. Also FLUSHES the configured Redis database.
    Sse(crate::bench::SseBench),
    /// Admission: the limit scripts' cost per request, and inline requests/s with limits on and
    /// off. Also FLUSHES the configured Redis database.
    Limits(crate::bench::LimitsBench),
    /// Provider resilience: the latency one failover hop and one open breaker add (a local
    /// HTTP server plays the vendors; no Redis or PostgreSQL needed).
    Providers(crate::bench::ProvidersBench),
    /// The audit trail: events/s its writer puts into PostgreSQL, and inline req/s with auditing
    /// on and off. FLUSHES the configured Redis database and empties audit_events.
    Audit(crate::bench::AuditBench),
    /// Interactive hints' latency idle and during a 10,000-item batch (p99 goal: within 2×).
    /// FLUSHES the configured Redis database.
    Batch(crate::bench::BatchBench),
    /// Provider capacity: a fleet and a batch against a vendor that enforces its limits, with
    /// the capacity ledger on and off. FLUSHES the configured Redis database.
    Capacity(crate::bench::CapacityBench),
}

#[derive(Debug, Subcommand)]
enum PromptsCommand {
    /// Load and check every prompt file; print each problem with its path and line.
    Check {
        /// The prompt directory (default: prompts.dir from the configuration).
        dir: Option<PathBuf>,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    value.parse()
}

/// `90s`, `15m`, `1h`, `7d`, or plain seconds; never zero.
fn parse_ttl(value: &str) -> Result<Duration, String> {
    let ttl = crate::config::duration::parse(value)?;
    if ttl.is_zero() {
        return Err("the lifetime must be greater than zero".into());
    }
    Ok(ttl)
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Batch { command } = cli.command {
        return crate::batch_cli::run(command);
    }
    let settings = match (&cli.command, Settings::load()) {
        (_, Ok(settings)) => Some(settings),
        (
            Command::Prompts {
                command: PromptsCommand::Check { dir: Some(_) },
            },
            Err(_),
        ) => None,
        (_, Err(err)) => {
            eprintln!("tutorq: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Token { sub, role, ttl } => token(settings.expect("loaded"), &sub, role, ttl),
        Command::Prompts {
            command: PromptsCommand::Check { dir },
        } => prompts_check(settings.as_ref(), dir),
        command => {
            let settings = settings.expect("loaded");
            crate::telemetry::init(&settings.log);
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(serve(command, settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "tutorq stopped with an error");
                    eprintln!("tutorq: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The async runtime of every command that needs one; `None` (said on stderr) when the
/// system refuses it.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            eprintln!("tutorq: cannot start the async runtime: {err}");
            None
        }
    }
}

async fn serve(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let db = crate::storage::connect_postgres(&settings.database)?;
            crate::storage::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            let shutdown = Shutdown::on_signals()?;
            let app = Application::build(settings).await?;
            shutdown::reload_prompts_on_sighup(Arc::clone(app.state().service.prompts()))?;
            announce(&app);
            app.run_until_stopped(shutdown.wait()).await
        }
        Command::Worker { queues } => {
            let shutdown = Shutdown::on_signals()?;
            let grace = Duration::from_secs(settings.server.shutdown_grace_secs);
            let state = AppState::build(settings).await?;
            shutdown::reload_prompts_on_sighup(Arc::clone(state.service.prompts()))?;
            let admin = crate::app::AdminListener::bind(&state).await?;
            let admin =
                admin.map(|admin| tokio::spawn(admin.run_until_stopped(shutdown.clone().wait())));
            let worked =
                crate::service::workers::run(state.service.clone(), queues, shutdown, grace).await;
            if let Some(admin) = admin {
                admin.await??;
            }
            worked
        }
        Command::All => {
            let shutdown = Shutdown::on_signals()?;
            let app = Application::build(settings).await?;
            shutdown::reload_prompts_on_sighup(Arc::clone(app.state().service.prompts()))?;
            announce(&app);
            let grace = Duration::from_secs(app.state().settings.server.shutdown_grace_secs);
            let workers = crate::service::workers::run(
                app.state().service.clone(),
                Vec::new(),
                shutdown.clone(),
                grace,
            );
            let (served, worked) = tokio::join!(app.run_until_stopped(shutdown.wait()), workers);
            served.and(worked)
        }
        Command::Bench {
            command: BenchCommand::Queue(options),
        } => crate::bench::queue(settings, options).await,
        Command::Bench {
            command: BenchCommand::Sse(options),
        } => crate::bench::sse(settings, options).await,
        Command::Bench {
            command: BenchCommand::Limits(options),
        } => crate::bench::limits(settings, options).await,
        Command::Bench {
            command: BenchCommand::Providers(options),
        } => crate::bench::providers(settings, options).await,
        Command::Bench {
            command: BenchCommand::Audit(options),
        } => crate::bench::audit(settings, options).await,
        Command::Bench {
            command: BenchCommand::Batch(options),
        } => crate::bench::batch(settings, options).await,
        Command::Bench {
            command: BenchCommand::Capacity(options),
        } => crate::bench::capacity(settings, options).await,
        Command::Token { .. } | Command::Prompts { .. } | Command::Batch { .. } => {
            unreachable!("handled without a runtime")
        }
    }
}

fn announce(app: &Application) {
    let host = &app.state().settings.server.host;
    tracing::info!(address = %format!("http://{host}:{}", app.port()), "tutorq is listening");
}

fn token(settings: Settings, sub: &str, role: Role, ttl: Duration) -> ExitCode {
    if settings.is_production() {
        eprintln!(
            "tutorq: `tutorq token` is a development convenience and is disabled in production"
        );
        return ExitCode::from(2);
    }
    if sub.trim().is_empty() {
        eprintln!("tutorq: --sub must not be empty");
        return ExitCode::from(2);
    }
    if let Err(rule) = crate::auth::check_id(sub) {
        eprintln!("tutorq: --sub {rule}");
        return ExitCode::from(2);
    }
    println!(
        "{}",
        Authenticator::new(&settings.auth).mint(sub, role, ttl)
    );
    ExitCode::SUCCESS
}

fn prompts_check(settings: Option<&Settings>, dir: Option<PathBuf>) -> ExitCode {
    let (dir, ignore_diacritics) = match (dir, settings) {
        (Some(dir), settings) => (dir, settings.is_none_or(|s| s.prompts.ignore_diacritics)),
        (None, Some(settings)) => (
            settings.prompts.dir.clone(),
            settings.prompts.ignore_diacritics,
        ),
        (None, None) => unreachable!("settings are loaded when no directory is given"),
    };
    match PromptSet::load(&dir, ignore_diacritics) {
        Ok(set) => {
            let versions = set.versions();
            let count: usize = versions.iter().map(|(_, v)| v.len()).sum();
            println!(
                "{}: ok, {} features, {count} prompt versions",
                dir.display(),
                versions.len()
            );
            for (feature, versions) in versions {
                println!("  {feature}: {}", versions.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            for problem in &err.0 {
                eprintln!("{problem}");
            }
            eprintln!("{}: {} problem(s) found", dir.display(), err.0.len());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
