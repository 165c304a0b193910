//! The `refdesk` binary: one program for the service and its operators.
//!
//! - `serve`: run the service (SQLite in the data folder by default;
//!   PostgreSQL and NATS for several nodes);
//! - `migrate`: bring the database schema up to date;
//! - `demo`: load the demo cooperative;
//! - `user add`: create a staff member;
//! - `config`: print the default configuration;
//! - `bench`: the load generator (see `docs/performance.md`).
#![forbid(unsafe_code)]

mod bench;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use refdesk_app::{demo, App, Clock};
use refdesk_domain::org::Role;
use refdesk_server::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "refdesk",
    version,
    about = "Virtual reference service: live chat between library patrons and librarians"
)]
struct Cli {
    /// Configuration file (TOML); `refdesk config` prints the defaults.
    #[arg(long, short, global = true, env = "REFDESK_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder (SQLite database). Overrides the file and REFDESK_DATA_DIR.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL database (`postgres://…`) instead of SQLite in the data
    /// folder. Overrides the file and REFDESK_DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// NATS server linking several nodes (`nats://…`; needs a PostgreSQL
    /// database). Overrides the file and REFDESK_NATS_URL.
    #[arg(long, global = true)]
    nats_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Load the demo data if the database is empty.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Load the demo cooperative into an empty database.
    Demo,
    /// Manage staff.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the default configuration (TOML).
    Config,
    /// Run the load generator against a running server.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a staff member.
    Add(UserAdd),
}

#[derive(Args)]
struct UserAdd {
    /// Sign-in name (a-z, 0-9, '.', '_', '-').
    username: String,
    /// Home library (its slug, as in /ask/<slug>).
    #[arg(long)]
    library: String,
    /// librarian, library_admin, institution_admin or cooperative_admin.
    #[arg(long, default_value = "librarian")]
    role: String,
    /// Display name (defaults to the username).
    #[arg(long)]
    name: Option<String>,
    /// Password; read from REFDESK_PASSWORD if not given.
    #[arg(long, env = "REFDESK_PASSWORD", hide_env_values = true)]
    password: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REFDESK_LOG").unwrap_or_else(|_| "info,refdesk=info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &cli.database_url {
        config.database_url = Some(url.clone());
    }
    if let Some(url) = &cli.nats_url {
        config.nats_url = Some(url.clone());
    }
    // Flags may have changed what the file and environment set.
    config.validate()?;
    Ok(config)
}

/// The configuration for a command that serves nobody (migrate, demo, user
/// add): it needs the database, not the link to the other nodes.
fn offline(mut config: Config) -> Config {
    config.nats_url = None;
    config
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Config => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Command::Bench(args) => {
            let storage = bench::Storage { data_dir: cli.data_dir.clone(), database_url: cli.database_url.clone() };
            bench::run(args.clone(), storage).await
        }
        Command::Migrate => {
            let config = offline(load_config(&cli)?);
            refdesk_server::open(&config, Clock::system()).await?.app.store.close().await;
            match &config.database_url {
                None => println!("database at {} is up to date", config.database_path().display()),
                Some(_) => println!("the PostgreSQL database is up to date"),
            }
            Ok(())
        }
        Command::Demo => {
            let state = refdesk_server::open(&offline(load_config(&cli)?), Clock::system()).await?;
            load_demo(&state.app).await?;
            state.app.store.close().await;
            print_demo_logins();
            Ok(())
        }
        Command::User { command: UserCommand::Add(u) } => {
            let state = refdesk_server::open(&offline(load_config(&cli)?), Clock::system()).await?;
            let role = Role::parse(&u.role).with_context(|| {
                format!(
                    "unknown role {:?}: use librarian, library_admin, institution_admin or cooperative_admin",
                    u.role
                )
            })?;
            let name = u.name.clone().unwrap_or_else(|| u.username.clone());
            let id = state
                .app
                .add_staff(None, &u.library, &u.username, &name, role, &u.password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"));
            state.app.store.close().await;
            let id = id?;
            println!("created staff member {} (id {id}) at {}", u.username, u.library);
            Ok(())
        }
        Command::Serve { listen, demo } => {
            let mut config = load_config(&cli)?;
            if let Some(l) = listen {
                config.listen = *l;
            }
            let state = refdesk_server::open(&config, Clock::system()).await?;
            if *demo {
                if state.app.store.is_empty().await.map_err(|e| anyhow::anyhow!("{e}"))? {
                    load_demo(&state.app).await?;
                    println!("loaded the demo data");
                }
                print_demo_logins();
            }
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("listening on {}", config.listen))?;
            let addr = listener.local_addr()?;
            let libs = state.app.libraries().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            match &config.database_url {
                None => println!("refdesk is serving on http://{addr}/ (data in {})", config.data_dir.display()),
                Some(_) => println!("refdesk is serving on http://{addr}/ (data in PostgreSQL)"),
            }
            println!("  librarian desk:  http://{addr}/desk");
            for lib in libs.iter().take(10) {
                println!("  patron chat:     http://{addr}/ask/{}  ({})", lib.slug, lib.name);
            }
            if libs.is_empty() {
                println!("  no libraries yet: run `refdesk demo` or start with --demo");
            }
            refdesk_server::run(listener, state, shutdown_signal()).await
        }
    }
}

async fn load_demo(app: &App) -> anyhow::Result<()> {
    if !app.store.is_empty().await.map_err(|e| anyhow::anyhow!("{e}"))? {
        bail!("the database already has data; the demo loads only into an empty one");
    }
    demo::load(app).await.map_err(|e| anyhow::anyhow!("loading the demo data: {e}"))
}

fn print_demo_logins() {
    println!("demo logins (password for all: {}):", demo::PASSWORD);
    for (user, name, role, lib) in demo::ACCOUNTS {
        println!("  {user:<6} {name:<14} {:<18} {lib}", role.as_str());
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
