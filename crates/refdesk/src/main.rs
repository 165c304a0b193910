//! The `refdesk` binary: one program for the service and its operators.
//!
//! - `serve`: run the service (SQLite in the data folder by default;
//!   PostgreSQL and NATS for several nodes);
//! - `setup`: set up a new service (its cooperative, first institution,
//!   library and cooperative admin) without the demo;
//! - `cooperative add`, `institution add`, `library add`, `list`: the
//!   organisation, for the operator;
//! - `migrate`: bring the database schema up to date;
//! - `demo`: load the demo cooperative (for trying out, on loopback only);
//! - `user add`: create a staff member;
//! - `config`: print the configuration in effect (secrets hidden), or check it;
//! - `backup`, `restore`: an online copy of the SQLite database, and
//!   putting one back (see `backup`);
//! - `bench`: the load generator (see `docs/performance.md`);
//! - `bench-relay`: the bare WebSocket relay the load generator measures
//!   refdesk against (see `relay`);
//! - `bench-reports`: a year of a large cooperative's history, and every
//!   report timed over it (docs/performance.md).
#![forbid(unsafe_code)]

/// `println!` that does not panic when standard output is closed (a pipe
/// whose reader went: `| head`, a log shipper restarting): what is printed
/// is for the operator, and its loss must not end the service.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] for standard error.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod backup;
mod bench;
mod bench_reports;
mod lock;
mod moving;
mod owner;
mod relay;

/// mimalloc, not the system allocator: under steady load with chats coming
/// and going, glibc's malloc kept most freed memory in its per-thread arenas
/// (the SQLite reads and writes run on their own threads), and the server's
/// RSS rose about 1.5 MiB a minute with only ~23 MiB in use (malloc_stats,
/// one-hour soak, docs/performance.md). mimalloc hands freed memory back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use refdesk_app::{demo, App, Clock};
use refdesk_domain::org::Role;
use refdesk_server::config::LogFormat;
use refdesk_server::Config;
use refdesk_store::Named;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "refdesk",
    version = refdesk_server::VERSION,
    about = "Virtual reference service: live chat between library patrons and librarians"
)]
struct Cli {
    /// Configuration file (TOML); `refdesk config --defaults` prints the defaults.
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
    /// Any setting, by its name in the file: `--set limits.block_hours=48`.
    /// Overrides the file and the environment; may be given several times.
    #[arg(long = "set", global = true, value_name = "NAME=VALUE")]
    sets: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_parser = listen_address)]
        listen: Option<SocketAddr>,
        /// Load the demo data if the database is empty.
        #[arg(long)]
        demo: bool,
    },
    /// Set up a new service on an empty database: a cooperative, its first
    /// institution and library, and its first cooperative admin.
    Setup(NewCooperativeArgs),
    /// Manage cooperatives (an operator hosting several).
    Cooperative {
        #[command(subcommand)]
        command: CooperativeCommand,
    },
    /// Manage institutions.
    Institution {
        #[command(subcommand)]
        command: InstitutionCommand,
    },
    /// Manage libraries.
    Library {
        #[command(subcommand)]
        command: LibraryCommand,
    },
    /// List the cooperatives, institutions and libraries, with their ids.
    List,
    /// Apply database migrations and exit.
    Migrate,
    /// Load the demo cooperative into an empty database.
    Demo,
    /// Manage staff.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the configuration in effect (file, environment, flags), with
    /// its secrets hidden; or check a configuration and say what is wrong.
    Config {
        /// Print the defaults instead, with the settings unset by default.
        #[arg(long, conflicts_with = "check")]
        defaults: bool,
        /// Check the configuration (the file, the environment and the
        /// flags); exit with 1 and the line at fault when it cannot work.
        #[arg(long)]
        check: bool,
    },
    /// Copy the SQLite database, consistently, while the service runs
    /// (SQLite's online backup). PostgreSQL: use pg_dump (docs/operations.md).
    Backup {
        /// The file to write (mode 0600). It is written under a temporary
        /// name beside it, checked and flushed, then renamed.
        #[arg(long)]
        to: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Put a backup in place of the SQLite database. The service must be
    /// stopped; the database it replaces is kept beside it.
    Restore {
        /// The backup to restore (from `refdesk backup`).
        #[arg(long)]
        from: PathBuf,
    },
    /// Copy the whole SQLite database into an empty PostgreSQL database, to
    /// serve from PostgreSQL (several nodes). The service must be stopped;
    /// the SQLite database is only read.
    MoveToPostgres {
        /// The PostgreSQL database to move into (`postgres://…`; its schema
        /// is made if need be; it must hold no data).
        #[arg(long)]
        to: String,
    },
    /// Run the load generator against a running server.
    Bench(bench::BenchArgs),
    /// Serve the bare WebSocket relay, the baseline of `bench --relay`.
    BenchRelay {
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:8091")]
        listen: SocketAddr,
    },
    /// The reports' benchmark: generate a year of a large cooperative's
    /// history into an empty database, then time every report over it.
    BenchReports {
        #[command(subcommand)]
        command: bench_reports::Command,
    },
}

#[derive(Subcommand)]
enum CooperativeCommand {
    /// Add a cooperative with its first institution, library and cooperative admin.
    Add(NewCooperativeArgs),
    /// Give a cooperative a new name.
    Rename {
        /// The cooperative's id (see `refdesk list`).
        #[arg(value_parser = record_id)]
        id: i64,
        /// Its new name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum InstitutionCommand {
    /// Add an institution to a cooperative.
    Add {
        /// Its name.
        name: String,
        /// The cooperative's id (see `refdesk list`).
        #[arg(long, value_parser = record_id)]
        cooperative: i64,
    },
    /// Give an institution a new name.
    Rename {
        /// The institution's id (see `refdesk list`).
        #[arg(value_parser = record_id)]
        id: i64,
        /// Its new name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum LibraryCommand {
    /// Add a library to an institution.
    Add {
        /// Its address, as in /ask/<slug> (a-z, 0-9, '.', '_', '-').
        slug: String,
        /// Its name, as patrons see it.
        #[arg(long)]
        name: String,
        /// The institution's id (see `refdesk list`).
        #[arg(long, value_parser = record_id)]
        institution: i64,
    },
    /// Print a library's widget snippet, to paste into its web pages (the
    /// desk's admin page sets the button's wording and colours too).
    /// Needs public_url: the snippet loads widget.js from it.
    Snippet {
        /// The library's address, as in /ask/<slug>.
        slug: String,
    },
    /// Give a library a new name, as patrons see it (its address, /ask/<slug>,
    /// and its snippets stay).
    Rename {
        /// The library's address, as in /ask/<slug>.
        slug: String,
        /// Its new name.
        #[arg(long)]
        name: String,
    },
}

/// A new cooperative. The admin's password is never a flag: it comes from
/// `--password-file`, `REFDESK_PASSWORD`, or a prompt.
#[derive(Args)]
struct NewCooperativeArgs {
    /// The cooperative's name.
    #[arg(long)]
    cooperative: String,
    /// Its first institution's name.
    #[arg(long)]
    institution: String,
    /// Its first library's address, as in /ask/<slug>.
    #[arg(long)]
    library: String,
    /// Its first library's name, as patrons see it.
    #[arg(long)]
    library_name: String,
    /// The first cooperative admin's sign-in name.
    #[arg(long)]
    admin: String,
    /// Their display name (defaults to the sign-in name).
    #[arg(long)]
    admin_name: Option<String>,
    /// A file holding the admin's password (its first line); else
    /// REFDESK_PASSWORD, else a prompt. Never a flag: flags show in `ps`.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a staff member.
    Add(UserAdd),
    /// Give an account a new password (an admin locked out): its sign-ins end.
    Password {
        /// Sign-in name.
        username: String,
        /// A file holding the password (its first line); else
        /// REFDESK_PASSWORD, else a prompt. Never a flag.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Disable an account: its sign-ins end, and its chats go back in line.
    Disable {
        /// Sign-in name.
        username: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// Sign-in name.
        username: String,
    },
    /// Every staff account, by cooperative: sign-in name, role, home
    /// library, and whether it is disabled (an operator locked out of the
    /// desk finds the names here).
    List,
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
    /// A file holding the password (its first line); else REFDESK_PASSWORD,
    /// else a prompt. Never a flag: flags show in `ps`.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

/// A password from a file, `REFDESK_PASSWORD`, or a prompt on a terminal
/// (asked twice) — never from a flag, which `ps` and shell history show.
fn read_password(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // The byte-order mark some editors begin a file with (Notepad's) is
        // not part of the password: nobody could type it.
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
        let first = text.lines().next().unwrap_or("");
        if first.is_empty() {
            bail!("{} holds no password on its first line", path.display());
        }
        // A space an editor left at the end would be part of the password,
        // and signing in with what was meant would fail.
        if first.trim() != first {
            bail!(
                "the password on the first line of {} begins or ends with a space or tab: remove it (a password \
                 given in a file has none there)",
                path.display()
            );
        }
        return Ok(first.to_owned());
    }
    if let Ok(p) = std::env::var("REFDESK_PASSWORD") {
        // Taken as a file's line: the line end a secret store or an
        // `EnvironmentFile` leaves is not part of it, and spaces around it
        // are refused (an account nobody could type the password of).
        let line = p.strip_suffix('\n').map_or(p.as_str(), |p| p.strip_suffix('\r').unwrap_or(p));
        if line.is_empty() {
            bail!("REFDESK_PASSWORD is empty");
        }
        if line.contains(['\n', '\r']) {
            bail!("REFDESK_PASSWORD holds more than one line: give the password alone");
        }
        if line.trim() != line {
            bail!("the password in REFDESK_PASSWORD begins or ends with a space or tab: remove it");
        }
        return Ok(line.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: give it in a file (--password-file) or in REFDESK_PASSWORD (it is never a flag)");
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let again = rpassword::prompt_password("Password again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

impl NewCooperativeArgs {
    fn read(&self) -> anyhow::Result<refdesk_app::setup::NewCooperative> {
        Ok(refdesk_app::setup::NewCooperative {
            name: self.cooperative.clone(),
            institution: self.institution.clone(),
            library_slug: self.library.clone(),
            library_name: self.library_name.clone(),
            admin_username: self.admin.clone(),
            admin_name: self.admin_name.clone().unwrap_or_else(|| self.admin.clone()),
            admin_password: read_password(self.password_file.as_deref())?,
        })
    }
}

fn print_set_up(done: &refdesk_app::setup::SetUp, admin: &str) {
    out!(
        "created cooperative {} with institution {} and library {} (/ask/{}); cooperative admin {admin} (id {})",
        done.cooperative,
        done.institution,
        done.library.placement.library,
        done.library.slug,
        done.admin
    );
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The format comes from the configuration in effect; a configuration
    // that does not load is reported by the command itself, in text.
    let format = load_config(&cli).map(|c| c.log_format).unwrap_or_default();
    let json = matches!(format, LogFormat::Json);
    init_logs(format);
    // Once, in the log's format: a misspelt variable is not ignored without
    // a word.
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    for name in Config::unknown_variables(names) {
        tracing::warn!(
            variable = %name,
            "not a refdesk setting, ignored (misspelt? `refdesk config --defaults` lists the settings; \
             each is REFDESK_ and its name in capitals)"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            err!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // After a shutdown that ran out of time (`shutdown_seconds`), a blocking
    // task may still be at work (a SQLite read): dropping the runtime would
    // wait for it without limit; the process exits instead.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // In JSON logs, a JSON line: a collector would miss the one line
        // that says why the service did not start. (In text when the log's
        // filter would drop it: `REFDESK_LOG=off` must not make it silent.)
        Err(e) if json && tracing::enabled!(tracing::Level::ERROR) => {
            tracing::error!(error = %error_text(&e), "refdesk stopped on an error");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            err!("error: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes, `: ` between them, each cause left out whose
/// text is already said (the store's errors repeat their source's text, for
/// logs that print only the message: a refused connection read three times).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// An error of a command that names what it adds to by id: an id that
/// names nothing points to `refdesk list`.
fn by_id(e: refdesk_app::AppError) -> anyhow::Error {
    match e {
        refdesk_app::AppError::Domain(refdesk_domain::DomainError::NotFound(what)) => {
            anyhow::anyhow!("there is no {what} with that id (`refdesk list` shows them, with their ids)")
        }
        e => anyhow::anyhow!("{e}"),
    }
}

/// `refdesk config`: the configuration in effect, or `--check`'s verdict.
async fn config_command(cli: &Cli, check: bool) -> anyhow::Result<()> {
    let config = match load_config(cli) {
        Ok(config) => config,
        // A file that holds a secret for every user to read is said even
        // when it is also wrong: its error alone hid it until mended.
        Err(e) => {
            if let (true, Some(path)) = (check, &cli.config) {
                say_readable_secrets(path);
            }
            return Err(e);
        }
    };
    if check {
        // A misspelt variable is a warning at start; before a restart, an
        // error: the setting it was meant to be is not in effect.
        let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
        let unknown = Config::unknown_variables(names);
        if !unknown.is_empty() {
            anyhow::bail!(
                "{} {} not a refdesk setting (misspelt? `refdesk config --defaults` lists the settings; each is \
                 REFDESK_ and its name in capitals)",
                unknown.join(", "),
                if unknown.len() == 1 { "is" } else { "are" }
            );
        }
        for advice in config.advice() {
            out!("warning: {advice}");
        }
        // (`serve` says it at start, as the mailer starts.)
        if config.mail.smtp_url.is_none() {
            out!(
                "warning: no mail.smtp_url: answers and transcripts are written to files in {}, not sent (patrons get \
                 nothing); set mail.smtp_url to the library's mail server (README, \"Configuration\")",
                std::path::absolute(config.data_dir.join("mail"))
                    .unwrap_or_else(|_| config.data_dir.join("mail"))
                    .display()
            );
        } else if config.mail.sender_at_localhost() {
            out!(
                "warning: mail.from is at localhost ({}): mail servers refuse such mail or file it as spam; set \
                 mail.from to an address of the library's own domain",
                config.mail.from.trim()
            );
        }
        if let Some(path) = &cli.config {
            say_readable_secrets(path);
        }
        check_data_dir(&config)?;
        check_links(&config).await?;
        check_smtp(&config).await;
        // Last, once all is checked: not said before an error that follows.
        out!("the configuration is valid");
    } else {
        out!("{}", config.redacted_toml().trim_end());
    }
    Ok(())
}

/// `config --check`'s warning for a configuration file that every user of
/// the machine may read while it holds a secret (`serve` reads it as it
/// is: a service's file is often made by an editor with the default 0644).
fn say_readable_secrets(path: &Path) {
    if let Some(warning) = readable_secrets(path) {
        out!("warning: {warning}");
    }
}

/// The warning for a configuration file every user of the machine may read
/// while it holds a secret, if it does.
fn readable_secrets(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let everyone = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
        let secrets = match everyone.then(|| std::fs::read_to_string(path)) {
            Some(Ok(text)) => refdesk_server::settings::secrets_in(&text),
            _ => return None,
        };
        (!secrets.is_empty()).then(|| {
            format!(
                "{} holds {} and every user of this machine can read it: make it 0600 (or 0640, group refdesk's), \
                 or give the secrets in the environment (REFDESK_<NAME>)",
                path.display(),
                secrets.join(", ")
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Below this much space left on the data folder's disk, `config --check`
/// warns (a full disk refuses every line: docs/operations.md).
const LOW_DISK_BYTES: u64 = 1 << 30;

/// `config --check`'s look at the data folder: whether `serve` can make or
/// use it, the space left on its disk, and (SQLite) whether the database
/// is this refdesk's version or one `serve` will upgrade — said before a
/// restart, not found at it. An error for what would stop `serve`.
fn check_data_dir(config: &Config) -> anyhow::Result<()> {
    // Said from `/`: a relative data_dir is relative to where refdesk runs
    // (a service's working folder), which the operator should see.
    let dir = &std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let writable = |p: &Path| rustix::fs::access(p, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK).is_ok();
    if !dir.exists() {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // (The folder above it exists: the configuration's check says so.)
        if !writable(parent) {
            anyhow::bail!(
                "data_dir {}: {} is not writable by this user, who could not create it",
                dir.display(),
                parent.display()
            );
        }
        let makers =
            if config.database_url.is_none() { "`refdesk serve` (or `refdesk setup`)" } else { "`refdesk serve`" };
        out!("data folder {}: not there yet; {makers} creates it", dir.display());
        return Ok(());
    }
    // (A file where the folder should be: the configuration's check says so.)
    if !writable(dir) {
        anyhow::bail!("data_dir {} is not writable by this user: run refdesk as the folder's owner", dir.display());
    }
    if let Some(moved) = config.database_url.is_none().then(|| moving::moved_from(dir)).flatten() {
        anyhow::bail!("data_dir {}: {moved}", dir.display());
    }
    match refdesk_server::metrics::disk_space(dir) {
        Ok(space) => {
            let gb = |b: u64| b as f64 / 1e9;
            out!("data folder {}: {:.1} GB free of {:.1} GB", dir.display(), gb(space.available), gb(space.size));
            if space.available < LOW_DISK_BYTES || space.available < space.size / 10 {
                out!(
                    "warning: the data folder's disk is nearly full: a full disk refuses every chat line (free \
                     space, or move data_dir to a bigger disk; docs/operations.md, \"A full disk\")"
                );
            }
        }
        Err(e) => out!("warning: the space left on {}'s disk could not be read: {e}", dir.display()),
    }
    if config.database_url.is_some() {
        return Ok(());
    }
    let path = dir.join("refdesk.sqlite3");
    let versions = refdesk_store::sqlite::backup::schema_versions(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    say_schema(&format!("database {}", path.display()), versions, "take a backup first (`refdesk backup --to …`)")
}

/// The schema version the database is at now (`Some(0)` or `None`: none
/// yet, or it could not be read).
async fn schema_version(config: &Config) -> Option<usize> {
    match &config.database_url {
        Some(url) => refdesk_store::postgres::schema_versions(url).await.ok().map(|(now, _)| now),
        None => {
            refdesk_store::sqlite::backup::schema_versions(&config.database_path()).ok().flatten().map(|(now, _)| now)
        }
    }
}

/// `config --check`'s word on a database's schema version (`None`: no
/// database yet), against this refdesk's: an error if `serve` would refuse it.
fn say_schema(database: &str, versions: Option<(usize, usize)>, backup: &str) -> anyhow::Result<()> {
    match versions {
        None | Some((0, _)) => out!("{database}: not set up yet; `refdesk setup` (or `serve --demo`) creates it"),
        Some((now, known)) if now == known => out!("{database}: schema version {now}, this refdesk's"),
        Some((now, known)) if now < known => out!(
            "warning: {database} is at schema version {now}: `refdesk serve` upgrades it to {known} when it starts, \
             and an older refdesk cannot open it afterwards; {backup}"
        ),
        Some((now, known)) => anyhow::bail!(
            "{database} is at schema version {now}, newer than this refdesk ({known}): `serve` would refuse it; run \
             the refdesk that made it, or a newer one"
        ),
    }
    Ok(())
}

/// `config --check`'s look at what a node links to, before a restart finds
/// it: the PostgreSQL database, connected to as `serve` would (a bad URL,
/// an unreadable `sslrootcert`, a refused sign-in or TLS handshake, a
/// database out of reach) and its schema version read, nothing changed; and
/// the files the NATS link reads (the nodes' key, the CA, the credentials).
/// NATS itself is not connected to: `serve` links in the background when
/// it is out of reach, and refuses a sign-in it is refused at start.
async fn check_links(config: &Config) -> anyhow::Result<()> {
    if let Some(url) = &config.database_url {
        // Named as the operator set it: the file's key or the variable.
        let setting = "database_url (REFDESK_DATABASE_URL, --database-url)";
        let read = tokio::time::timeout(PG_CHECK_WITHIN, refdesk_store::postgres::schema_versions(url))
            .await
            .map_err(|_| {
                anyhow::anyhow!("{setting}: PostgreSQL did not answer within {} s", PG_CHECK_WITHIN.as_secs())
            })?
            .map_err(|e| anyhow::anyhow!("{setting}: {e}"))?;
        let backup = "take a dump first (`pg_dump`: docs/operations.md, \"Backups\")";
        say_schema("the PostgreSQL database", Some(read), backup)?;
    }
    if let Some(nats) = config.nats() {
        nats.check_files().map_err(|e| anyhow::anyhow!("{e}"))?;
        out!("NATS link: the nodes' key and the files it names are readable (NATS itself is not connected to)");
    }
    Ok(())
}

/// `config --check`'s word on the SMTP server: reached with TLS and the
/// sign-in as `mail.smtp_url` says, or a warning saying why not (not an
/// error: a mail server down for the night is no reason to keep the
/// service from starting; e-mails wait in the outbox).
async fn check_smtp(config: &Config) {
    let Some(url) = &config.mail.smtp_url else { return };
    let server = refdesk_app::mail::smtp_server(url);
    let within = std::time::Duration::from_secs(15);
    match tokio::time::timeout(within, refdesk_app::mail::check_smtp(url)).await {
        Ok(Ok(())) => out!("SMTP: {server} answered, with the TLS and the sign-in mail.smtp_url says"),
        Ok(Err(e)) => out!(
            "warning: mail.smtp_url: {server}: {e} (e-mails wait in the outbox and are tried again until it is \
             mended; README, \"Configuration\")"
        ),
        Err(_) => out!("warning: mail.smtp_url: {server} did not answer within {} s", within.as_secs()),
    }
}

/// How long `config --check` waits for PostgreSQL.
const PG_CHECK_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A problem of the configuration, with the file and the line that set
/// what is at fault, when a line of the file did.
fn at_its_line(cli: &Cli, text: &str, message: &str) -> String {
    let line = refdesk_server::settings::line_of_error(text, message);
    // An error that names the variable or flag that set it is not the file's.
    let from_elsewhere = ["from REFDESK_", "from --", "--set", "REFDESK_"]
        .iter()
        .any(|s| message.contains(s) && (s.starts_with("from") || message.starts_with(s)));
    match (line, &cli.config) {
        (Some(n), Some(file)) if !message.contains("line ") && !from_elsewhere => {
            format!("{}, line {n}: {message}", file.display())
        }
        _ => message.to_owned(),
    }
}

/// Log lines go to standard error (standard output is the commands'
/// own), filtered by `REFDESK_LOG`: text, coloured only when standard
/// error is a terminal (a file or journald gets no escape codes), or one
/// JSON object a line with the span's fields (the request id) in it.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    // A filter that does not parse is said, not ignored without a word.
    let filter = match std::env::var("REFDESK_LOG") {
        Ok(v) => tracing_subscriber::EnvFilter::try_new(&v).unwrap_or_else(|e| {
            err!("warning: REFDESK_LOG={v:?} is not a log filter ({e}); logging at info");
            "info,refdesk=info".into()
        }),
        Err(_) => "info,refdesk=info".into(),
    };
    // A log line that cannot be written (standard error closed) is lost,
    // not reported on standard error: that report would panic.
    let logs =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
}

/// The configuration of the file, the environment and the flags, checked.
/// An error names the line of the file that sets what is at fault, when a
/// line does; the check's problems are said all at once, each on a line
/// of its own.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    load_config_unannotated(cli).map_err(|e| {
        let text = cli.config.as_deref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        let problems: Vec<String> = match e.downcast_ref::<refdesk_server::config::Problems>() {
            Some(found) => {
                // In the file's order; those of the environment and flags after.
                let mut found = found.0.clone();
                found.sort_by_key(|m| refdesk_server::settings::line_of_error(&text, m).unwrap_or(usize::MAX));
                found.iter().map(|message| at_its_line(cli, &text, message)).collect()
            }
            // Any other error (a file that does not parse) as it is.
            None => vec![at_its_line(cli, &text, &format!("{e:#}"))],
        };
        match problems.len() {
            1 => anyhow::anyhow!("{}", problems[0]),
            n => anyhow::anyhow!("{n} problems:\n  {}", problems.join("\n  ")),
        }
    })
}

fn load_config_unannotated(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load_unchecked(cli.config.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
        config.sources.insert("data_dir".into(), "--data-dir".into());
    }
    if let Some(url) = &cli.database_url {
        config.database_url = Some(url.clone());
        config.sources.insert("database_url".into(), "--database-url".into());
    }
    if let Some(url) = &cli.nats_url {
        config.nats_url = Some(url.clone());
        config.sources.insert("nats_url".into(), "--nats-url".into());
    }
    config.apply_sets(&cli.sets)?;
    // Checked once, with the flags: they may change what the file and the
    // environment set, and make valid what was not without them.
    config.validate()?;
    Ok(config)
}

/// A new cooperative checked before any database is opened: bad input
/// changes nothing, not even an empty database left behind.
fn checked(new: refdesk_app::setup::NewCooperative) -> anyhow::Result<refdesk_app::setup::NewCooperative> {
    new.checked().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The configuration of a command that works on what is already set up:
/// with SQLite, refused when there is no database (a mistyped data folder
/// would otherwise be created, with an empty database in it).
fn existing(config: Config) -> anyhow::Result<Config> {
    let path = config.database_path();
    if config.database_url.is_none() {
        match std::fs::metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "nothing set up yet: no database at {} (run `refdesk setup` there, or give the right --data-dir)",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading the database at {}", path.display())),
        }
    }
    Ok(config)
}

/// Opens the database for a command that serves nobody. An older schema is
/// refused, not upgraded: upgrading is `migrate`'s and `serve`'s, after a
/// backup and with the older version's nodes stopped (docs/operations.md,
/// "Upgrades"), and these commands may run beside a server — an older one,
/// in the middle of an upgrade.
async fn open_offline(config: &Config) -> anyhow::Result<refdesk_server::AppState> {
    // Not read, not opened: an open would upgrade what could not be judged.
    let versions = match &config.database_url {
        Some(url) => {
            Some(refdesk_store::postgres::schema_versions(url).await.context("reading the database's schema version")?)
        }
        None => refdesk_store::sqlite::backup::schema_versions(&config.database_path())
            .map_err(|e| anyhow::anyhow!("reading the database's schema version: {e}"))?,
    };
    if let Some((now, known)) = versions.filter(|&(now, known)| 0 < now && now < known) {
        bail!(
            "the database is at schema version {now}, older than this refdesk's ({known}), and this command does not \
             upgrade it: take a backup, stop the refdesk that serves it, then run `refdesk migrate` (docs/operations.md, \
             \"Upgrades\"); or run this command with the refdesk that made it"
        );
    }
    refdesk_server::open(config, Clock::system()).await
}

/// The configuration for a command that serves nobody (migrate, demo, user
/// add): it needs the database, not the link to the other nodes.
fn offline(mut config: Config) -> Config {
    config.nats_url = None;
    config
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The data folder's files are its owner's, whoever runs the command
    // (`owner`): root in a folder another user owns, or a user the database
    // is closed to, is refused before anything else.
    let uses_folder = !matches!(cli.command, Command::Config { .. } | Command::Bench(_) | Command::BenchRelay { .. });
    if let Some(config) = load_config(&cli).ok().filter(|_| uses_folder) {
        let db = config.database_url.is_none().then(|| config.database_path());
        let one_off = !matches!(cli.command, Command::Serve { .. });
        owner::check(&config.data_dir, db.as_deref(), one_off)?;
        // A SQLite database moved to PostgreSQL is a copy now: a command on
        // it would seem to work (an account disabled there stays enabled in
        // PostgreSQL), served it would send its outbox a second time, and
        // moved again it would make a second, stale service.
        if let Some(moved) = db.and_then(|_| moving::moved_from(&config.data_dir)) {
            bail!("{moved}");
        }
    }
    dispatch(cli).await
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Config { defaults: true, .. } => {
            out!("{}", Config::default_toml().trim_end());
            Ok(())
        }
        Command::Config { check, .. } => config_command(&cli, *check).await,
        Command::Bench(args) => bench::run(args.clone(), bench::Storage::of(&cli.data_dir, &cli.database_url)).await,
        Command::BenchRelay { listen } => relay::run(*listen).await,
        Command::BenchReports { command } => {
            let state = open_offline(&offline(load_config(&cli)?)).await?;
            let done = bench_reports::run(command, &state.app).await;
            state.app.store().close().await;
            done
        }
        Command::Migrate => {
            // A mistyped data folder is refused, not given a new database.
            let config = offline(existing(load_config(&cli)?)?);
            let before = schema_version(&config).await;
            refdesk_server::open(&config, Clock::system()).await?.app.store().close().await;
            let after = schema_version(&config).await;
            let what = match &config.database_url {
                None => format!("database at {}", config.database_path().display()),
                Some(_) => "the PostgreSQL database".to_owned(),
            };
            match (before, after) {
                (Some(b), Some(a)) if b > 0 && b < a => out!("{what}: upgraded from schema version {b} to {a}"),
                (Some(0) | None, Some(a)) => out!("{what}: created at schema version {a}"),
                (_, Some(a)) => out!("{what} is up to date (schema version {a}); nothing to do"),
                (_, None) => out!("{what} is up to date"),
            }
            Ok(())
        }
        Command::Setup(args) => {
            let new = checked(args.read()?)?;
            let state = open_offline(&offline(load_config(&cli)?)).await?;
            let done = state.app.set_up(new).await.map_err(|e| anyhow::anyhow!("{e}"));
            state.app.store().close().await;
            print_set_up(&done?, &args.admin);
            print_next(&cli, &args.admin)
        }
        Command::Cooperative { command: CooperativeCommand::Add(args) } => {
            let new = checked(args.read()?)?;
            let state = open_offline(&offline(existing(load_config(&cli)?)?)).await?;
            let done = state.app.add_cooperative(new).await.map_err(|e| anyhow::anyhow!("{e}"));
            state.app.store().close().await;
            print_set_up(&done?, &args.admin);
            Ok(())
        }
        Command::Cooperative { command: CooperativeCommand::Rename { id, name } } => {
            rename(&cli, Named::Cooperative(refdesk_domain::ids::CooperativeId(*id)), name).await
        }
        Command::Institution { command: InstitutionCommand::Rename { id, name } } => {
            rename(&cli, Named::Institution(refdesk_domain::ids::InstitutionId(*id)), name).await
        }
        Command::Institution { command: InstitutionCommand::Add { name, cooperative } } => {
            let state = open_offline(&offline(existing(load_config(&cli)?)?)).await?;
            let coop = refdesk_domain::ids::CooperativeId(*cooperative);
            let done = state.app.add_institution(None, coop, name).await.map_err(by_id);
            state.app.store().close().await;
            let i = done?;
            out!("created institution {} (id {}) in {}", i.name, i.id, i.cooperative_name);
            Ok(())
        }
        Command::Library { command } => library_command(&cli, command).await,
        Command::List => print_list(&cli, false).await,
        Command::Demo => {
            let state = open_offline(&offline(load_config(&cli)?)).await?;
            load_demo(&state.app).await?;
            state.app.store().close().await;
            print_demo_logins();
            Ok(())
        }
        Command::User { command } => user_command(&cli, command).await,
        Command::Backup { to, force } => backup::backup(&offline(load_config(&cli)?), to, *force),
        Command::Restore { from } => backup::restore(&offline(load_config(&cli)?), from, &same_folder(&cli)),
        Command::MoveToPostgres { to } => moving::run(&offline(load_config(&cli)?), to, &same_folder(&cli)).await,
        Command::Serve { listen, demo } => serve(&cli, *listen, *demo).await,
    }
}

/// `refdesk user …`.
async fn user_command(cli: &Cli, command: &UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(u) => add_user(cli, u).await,
        UserCommand::Password { username, password_file } => {
            let password = read_password(password_file.as_deref())?;
            update_user(cli, username, Some(&password), None).await
        }
        UserCommand::Disable { username } => update_user(cli, username, None, Some(true)).await,
        UserCommand::Enable { username } => update_user(cli, username, None, Some(false)).await,
        UserCommand::List => print_list(cli, true).await,
    }
}

/// `refdesk cooperative|institution|library rename`: the operator's, so
/// no role is checked.
async fn rename(cli: &Cli, what: Named, name: &str) -> anyhow::Result<()> {
    let state = open_offline(&offline(existing(load_config(cli)?)?)).await?;
    let done = state.app.rename(None, what, name).await.map_err(by_id);
    state.app.store().close().await;
    done?;
    out!("renamed to {}", name.trim());
    Ok(())
}

/// `refdesk list` (the organisation) or `refdesk user list` (`staff`), on
/// the database as it is.
async fn print_list(cli: &Cli, staff: bool) -> anyhow::Result<()> {
    let state = open_offline(&offline(existing(load_config(cli)?)?)).await?;
    let listed = if staff { list_users(&state.app).await } else { list(&state.app).await };
    state.app.store().close().await;
    listed
}

/// Binds `listen`, before anything is created or opened: a port already
/// taken changes nothing, not even a new data folder. The metrics' port is
/// tried here too (and bound again by `run`), so that a taken one is said
/// before the server says it is serving. A port taken by a server on the
/// same data folder (a second copy of the service) is said as such.
async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let taken = |e: std::io::Error, what: String| match (&config.database_url, e.kind()) {
        (None, std::io::ErrorKind::AddrInUse) => match lock::held(&config.data_dir) {
            Some(held) => anyhow::anyhow!("{held}"),
            None => anyhow::Error::new(e).context(what),
        },
        _ => anyhow::Error::new(e).context(what),
    };
    let listen = config.listen;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| taken(e, format!("listening on {listen}")))?;
    if let Some(metrics) = config.metrics_listen {
        drop(
            std::net::TcpListener::bind(metrics)
                .map_err(|e| taken(e, format!("listening on {metrics} for /metrics (metrics_listen)")))?,
        );
    }
    Ok(listener)
}

/// `refdesk user list`.
async fn list_users(app: &App) -> anyhow::Result<()> {
    let institutions = app.institutions(None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let libraries = app.libraries().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut cooperatives: Vec<_> = institutions.iter().map(|i| (i.cooperative, i.cooperative_name.as_str())).collect();
    cooperatives.dedup();
    if cooperatives.is_empty() {
        out!("nothing set up yet: run `refdesk setup` (or `refdesk demo` to try it out)");
    }
    for (coop, name) in cooperatives {
        out!("cooperative {coop}: {name}");
        for entry in app.store().staff_of(coop).await.map_err(|e| anyhow::anyhow!("{e}"))? {
            let s = &entry.staff;
            let slug = libraries.iter().find(|l| l.placement.library == s.home.library).map_or("?", |l| &l.slug);
            let disabled = if entry.disabled { "  (disabled)" } else { "" };
            out!("  {:<20} {:<18} {slug:<16} {}{disabled}", s.username, s.role.as_str(), s.display_name);
        }
    }
    Ok(())
}

/// `refdesk user password`, `disable` and `enable`.
async fn update_user(cli: &Cli, username: &str, password: Option<&str>, disabled: Option<bool>) -> anyhow::Result<()> {
    // As sign-in takes it: `Nora` is `nora`.
    let username = &refdesk_domain::input::sign_in_name(username);
    let config = offline(existing(load_config(cli)?)?);
    let state = open_offline(&config).await?;
    let done = state.app.operator_update(username, password, disabled).await.map_err(|e| match e {
        refdesk_app::AppError::Domain(refdesk_domain::DomainError::NotFound(_)) => {
            anyhow::anyhow!("there is no staff member {username:?}")
        }
        e => anyhow::anyhow!("{e}"),
    });
    // Disabling the cooperative's last cooperative admin leaves no one to
    // manage its admins, codes and institutions: done, but said.
    let lone = match (&done, disabled) {
        (Ok(true), Some(true)) => last_cooperative_admin(state.app.store().as_ref(), username).await,
        _ => None,
    };
    state.app.store().close().await;
    let changed = done?;
    match (password, disabled, changed) {
        (Some(_), _, _) => out!("{username} has a new password; their sign-ins have ended"),
        (None, Some(true), true) => out!("{username} is disabled; their sign-ins have ended"),
        (None, Some(true), false) => out!("{username} was disabled already; nothing changed"),
        (None, _, true) => out!("{username} is enabled; they may sign in again"),
        (None, _, false) => out!("{username} was enabled already; nothing changed"),
    }
    if let Some(coop) = lone {
        out!(
            "note: {coop} has no enabled cooperative admin now; `refdesk user enable {username}` opens the account \
             again, or add one with `refdesk user add … --role cooperative_admin`"
        );
    }
    Ok(())
}

/// The cooperative's name, when `username` is a cooperative admin and no
/// other enabled one is left in it.
async fn last_cooperative_admin(store: &dyn refdesk_store::Store, username: &str) -> Option<String> {
    let who = store.staff_by_username(username).await.ok()??.staff;
    if who.role != Role::CooperativeAdmin {
        return None;
    }
    let all = store.staff_of(who.home.cooperative).await.ok()?;
    let others = all.iter().any(|e| e.staff.id != who.id && e.staff.role == Role::CooperativeAdmin && !e.disabled);
    if others {
        return None;
    }
    let inst = store.institutions().await.ok()?;
    inst.into_iter().find(|i| i.cooperative == who.home.cooperative).map(|i| i.cooperative_name)
}

/// `refdesk user add`.
async fn add_user(cli: &Cli, u: &UserAdd) -> anyhow::Result<()> {
    let config = offline(existing(load_config(cli)?)?);
    let role = Role::parse(&u.role).with_context(|| {
        format!("unknown role {:?}: use librarian, library_admin, institution_admin or cooperative_admin", u.role)
    })?;
    // As sign-in takes it: `Dora` is `dora`.
    let username = refdesk_domain::input::sign_in_name(&u.username);
    let name = u.name.clone().unwrap_or_else(|| u.username.trim().to_owned());
    // What can be judged before the password is asked for, is: nobody types
    // a password twice to learn the username was wrong.
    refdesk_domain::input::slug("username", &username).map_err(|e| anyhow::anyhow!("{e}"))?;
    refdesk_domain::input::name("display_name", Some(&name), 100).map_err(|e| anyhow::anyhow!("{e}"))?;
    let password = read_password(u.password_file.as_deref())?;
    let state = open_offline(&config).await?;
    let id = state.app.add_staff(None, &u.library, &username, &name, role, &password).await.map_err(|e| match e {
        refdesk_app::AppError::Domain(refdesk_domain::DomainError::NotFound("library")) => {
            anyhow::anyhow!("there is no library {:?} (`refdesk list` shows them)", u.library)
        }
        e => anyhow::anyhow!("{e}"),
    });
    state.app.store().close().await;
    let id = id?;
    out!("created staff member {username} (id {id}) at {}", u.library);
    Ok(())
}

/// A record's id (`--cooperative`, `--institution`), or an error that says
/// where ids are (a name given in its place said "invalid digit").
fn record_id(s: &str) -> Result<i64, String> {
    match s.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!("give its id, a number (`refdesk list` shows each with its id), not {s:?}")),
    }
}

/// A `--listen` address, or an error that says what one looks like.
fn listen_address(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not an address to listen on: give an IP address and a port, \
             as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080 (not a host name)"
        )
    })
}

/// After `setup`: where the database is, and the command that serves it
/// (with the configuration file and data folder given, if they were).
fn print_next(cli: &Cli, admin: &str) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    match &config.database_url {
        None => out!("the database is {}", std::fs::canonicalize(config.database_path())?.display()),
        Some(_) => out!("the database is the PostgreSQL one of database_url"),
    }
    let with = same_folder(cli);
    out!("next: `refdesk{with} serve`, then sign in at /desk as {admin} to add staff and libraries");
    Ok(())
}

/// The flags that name this command's configuration file, data folder and
/// databases, for the next command it advises (` --config FILE --data-dir
/// DIR --database-url 'URL'`): without the database's, the next command
/// would open (and make) an empty SQLite database in the data folder. A
/// URL is shown as logs show it: a password in it is `***`, to put back.
fn same_folder(cli: &Cli) -> String {
    let mut with = cli.config.as_ref().map(|f| format!(" --config {}", f.display())).unwrap_or_default();
    if let Some(dir) = &cli.data_dir {
        with += &format!(" --data-dir {}", dir.display());
    }
    for (flag, url) in [("--database-url", &cli.database_url), ("--nats-url", &cli.nats_url)] {
        if let Some(url) = url {
            let shown = refdesk_app::nats::redact_url(url).replace('\'', r"'\''");
            with += &format!(" {flag} '{shown}'");
        }
    }
    with
}

/// `refdesk library …`.
async fn library_command(cli: &Cli, command: &LibraryCommand) -> anyhow::Result<()> {
    match command {
        LibraryCommand::Add { slug, name, institution } => {
            let state = open_offline(&offline(existing(load_config(cli)?)?)).await?;
            let inst = Some(refdesk_domain::ids::InstitutionId(*institution));
            let done = state.app.add_library(None, inst, slug, name).await.map_err(by_id);
            state.app.store().close().await;
            let l = done?;
            out!("created library {} (id {}) at /ask/{}", l.name, l.placement.library, l.slug);
            out!("its widget snippet: `refdesk library snippet {}`", l.slug);
            Ok(())
        }
        LibraryCommand::Rename { slug, name } => {
            let state = open_offline(&offline(existing(load_config(cli)?)?)).await?;
            let found = state.app.library(slug).await.map_err(|e| anyhow::anyhow!("{e}"));
            state.app.store().close().await;
            rename(cli, Named::Library(found?.placement.library), name).await
        }
        LibraryCommand::Snippet { slug } => {
            let config = offline(existing(load_config(cli)?)?);
            let Some(public) = config.public_url.clone() else {
                bail!(
                    "set public_url first (the address patrons reach refdesk at, https://…): the snippet loads \
                     widget.js from it, on the library's own site"
                );
            };
            let state = open_offline(&config).await?;
            let found = state.app.library(slug).await;
            state.app.store().close().await;
            let library = found.map_err(|e| match e {
                refdesk_app::AppError::Domain(refdesk_domain::DomainError::NotFound(_)) => {
                    anyhow::anyhow!("there is no library at /ask/{slug} (`refdesk list` shows them)")
                }
                e => anyhow::anyhow!("{e}"),
            })?;
            out!(
                "<script src=\"{}/widget.js\" data-library=\"{}\" defer></script>",
                public.trim_end_matches('/'),
                library.slug
            );
            Ok(())
        }
    }
}

/// `refdesk serve`.
async fn serve(cli: &Cli, listen: Option<std::net::SocketAddr>, demo: bool) -> anyhow::Result<()> {
    // From the start: a SIGHUP during the migrations stopped the server too.
    ignore_hangups();
    let mut config = load_config(cli)?;
    if let Some(l) = listen {
        config.listen = l;
    }
    cap_connections(&mut config);
    // A public URL means the service is deployed: no demo there either.
    let why = match (&config.public_url, config.listen.ip().is_loopback()) {
        (Some(url), _) => Some(format!("with a public_url ({url})")),
        (None, false) => Some(format!("on a listen address other than loopback ({})", config.listen)),
        (None, true) => None,
    };
    if let Some(why) = why.as_ref().filter(|_| demo) {
        bail!(
            "--demo is for trying refdesk on this machine: it is refused {why}. To serve a library, run `refdesk \
             setup` (README: Deploying for real)."
        );
    }
    // As `config --check` says it: a service's file made with an editor's
    // default 0644 is read as it is, and said.
    if let Some(warning) = cli.config.as_deref().and_then(readable_secrets) {
        tracing::warn!("{warning}");
    }
    let listener = bind(&config).await?;
    // Held until the process ends (see `lock`): before the database
    // is opened, so a second server changes nothing, not even the schema.
    let lock = match &config.database_url {
        None => Some(lock::lock_data_dir(&config.data_dir, lock::Purpose::Serve)?),
        Some(_) => None,
    };
    let unclean_before = lock.as_ref().and_then(|l| l.unclean_before.clone());
    let served = serve_locked(&config, listener, unclean_before.as_deref(), why.is_some(), demo).await;
    // Every orderly end (an error included) says so in the lock file; a
    // crash or a kill does not, and the next `serve` tells.
    if let Some(lock) = lock {
        lock.stopped();
    }
    served
}

/// `serve` once it holds its data folder: opens the store, loads the demo
/// if asked, and serves until the shutdown signal.
async fn serve_locked(
    config: &Config,
    listener: tokio::net::TcpListener,
    unclean_before: Option<&str>,
    public: bool,
    demo: bool,
) -> anyhow::Result<()> {
    // On PostgreSQL too: the node's erasure journal goes there. Without it
    // the node serves (a node upgraded where it cannot write) but refuses
    // erasures on request, which a restore would undo.
    if let Err(e) = refdesk_server::make_data_dir(config) {
        if config.database_url.is_none() {
            return Err(e);
        }
        tracing::warn!(
            error = %format!("{e:#}"),
            "no data folder: this node refuses erasures on request (a restored database would not get them again; \
             docs/operations.md, \"Restore\") until it can make its data folder"
        );
    }
    let state = refdesk_server::open(config, Clock::system()).await?;
    if let Some(pid) = unclean_before {
        tracing::warn!(
            process = pid,
            "the previous refdesk serve on this data folder did not shut down cleanly (a crash, kill -9 or a \
             power cut): SQLite recovered the database from its log, and nothing acknowledged was lost. Chats \
             that were live stay with their librarians, whose desks reconnect; a chat whose librarian does not \
             come back returns to the queue after limits.signoff_minutes"
        );
    }
    if public && demo::present(&state.app).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        state.app.store().close().await;
        bail!("{}", demo_refused(config.listen));
    }
    if demo {
        if state.app.store().is_empty().await.map_err(|e| anyhow::anyhow!("{e}"))? {
            load_demo(&state.app).await?;
            out!("loaded the demo data");
        }
        if demo::present(&state.app).await.map_err(|e| anyhow::anyhow!("{e}"))? {
            print_demo_logins();
        } else {
            out!("--demo: this database already holds data other than the demo's; the demo was not loaded");
        }
    }
    let addr = listener.local_addr()?;
    for advice in config.advice() {
        tracing::warn!("{advice}");
    }
    let libs = state.app.libraries().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    print_serving(config, addr, &libs);
    refdesk_server::run(listener, state, shutdown_signal()).await
}

/// What `serve` prints once it listens: where, the data, and the links to
/// open (the public address's, or one this machine can open).
fn print_serving(config: &Config, addr: std::net::SocketAddr, libs: &[refdesk_store::LibraryRecord]) {
    // On every interface (0.0.0.0, ::), this machine's own address is one
    // that a browser here can open.
    let reachable = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let on = if addr.ip().is_unspecified() {
        format!("every interface, port {}", addr.port())
    } else {
        format!("http://{addr}/")
    };
    // In the log too, with the build: the line an operator's log collector
    // keeps (stdout's banner is for a person at a terminal).
    tracing::info!(%addr, version = refdesk_server::VERSION, "serving");
    match &config.database_url {
        None => {
            let data = config.data_dir.canonicalize().unwrap_or_else(|_| config.data_dir.clone());
            out!("refdesk {} is serving on {on} (data in {})", refdesk_server::VERSION, data.display());
        }
        Some(_) => out!("refdesk {} is serving on {on} (data in PostgreSQL)", refdesk_server::VERSION),
    }
    // Behind a proxy, the pages work at the public address only (a
    // sign-in from another origin is refused as cross-site).
    let base = config.public_url.clone().unwrap_or_else(|| format!("http://{reachable}"));
    if config.public_url.is_some() {
        out!("  (signing in works at {base} only: requests from another address are refused as cross-site)");
    }
    out!("  librarian desk:  {base}/desk");
    for lib in libs.iter().take(10) {
        out!("  patron chat:     {base}/ask/{}  ({})", lib.slug, lib.name);
    }
    if libs.len() > 10 {
        out!("  … and {} more libraries (`refdesk list`)", libs.len() - 10);
    }
    if libs.is_empty() {
        out!("  no libraries yet: run `refdesk setup` to set up your cooperative (or `refdesk demo` to try it out)");
    }
}

/// Raises the soft open-file limit to the hard one (1,024 by default on
/// Linux, too few for a service), then caps connections below it with room
/// for the database and files: running out of file descriptors would stop
/// `/healthz` and every other answer along with the connections.
fn cap_connections(config: &mut Config) {
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit; assuming the usual 1024");
            refdesk_server::conn::USUAL_NOFILE
        }
    };
    let wanted = config.limits.max_connections;
    let cap = refdesk_server::conn::connection_cap(wanted, nofile, config.database_connections);
    if wanted != 0 && cap < wanted {
        tracing::warn!(wanted, cap, nofile, "limits.max_connections is above what the open-file limit allows; lowered");
    }
    tracing::info!(max_connections = cap, open_file_limit = nofile, "connection cap");
    config.limits.max_connections = cap;
}

/// Prints the organisation as a tree, with the ids the other commands take.
async fn list(app: &App) -> anyhow::Result<()> {
    let institutions = app.institutions(None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let libraries = app.libraries().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if institutions.is_empty() {
        out!("nothing set up yet: run `refdesk setup` (or `refdesk demo` to try it out)");
    }
    let mut coop = None;
    for i in &institutions {
        if coop != Some(i.cooperative) {
            out!("cooperative {}: {}", i.cooperative, i.cooperative_name);
            coop = Some(i.cooperative);
        }
        out!("  institution {}: {}", i.id, i.name);
        for l in libraries.iter().filter(|l| l.placement.institution == i.id) {
            out!("    library {}: {} (/ask/{})", l.placement.library, l.name, l.slug);
        }
    }
    Ok(())
}

/// Why a server with the demo accounts does not listen on `listen`.
fn demo_refused(listen: SocketAddr) -> String {
    format!(
        "refusing to listen on {listen} (or with a public_url): this server holds the demo accounts, whose password everyone knows. \
         The demo serves this machine only (--listen 127.0.0.1:8080). To serve a library, start from an empty \
         data folder and run `refdesk setup` (README: Deploying for real)."
    )
}

async fn load_demo(app: &App) -> anyhow::Result<()> {
    if !app.store().is_empty().await.map_err(|e| anyhow::anyhow!("{e}"))? {
        bail!("the database already has data; the demo loads only into an empty one");
    }
    demo::load(app).await.map_err(|e| anyhow::anyhow!("loading the demo data: {e}"))
}

fn print_demo_logins() {
    out!("demo logins (password for all: {}):", demo::PASSWORD);
    for (user, name, role, lib) in demo::ACCOUNTS {
        out!("  {user:<6} {name:<14} {:<18} {lib}", role.as_str());
    }
}

/// Resolves at the first SIGTERM or Ctrl-C, which starts the drain (see
/// `refdesk_server::run`). A second one exits at once, without the drain:
/// for someone at a terminal who does not want to wait. Every acknowledged
/// write is already durable; SQLite replays its log at the next start.
async fn shutdown_signal() {
    signal().await;
    tracing::info!("shutting down (SIGTERM or Ctrl-C); a second one exits at once");
    tokio::spawn(async {
        signal().await;
        tracing::warn!("a second SIGTERM or Ctrl-C: exiting at once, without draining");
        std::process::exit(1);
    });
}

/// SIGHUP, which ends a process by default (and which operators send
/// expecting a reload), is said and otherwise ignored: refdesk reads its
/// configuration at the start only (it exited at once, with no drain and
/// no word).
fn ignore_hangups() {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    tracing::warn!(
                        "SIGHUP: refdesk does not reload its configuration; restart it (SIGTERM, then start) to \
                         apply a change"
                    );
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; one would stop the server"),
    }
}

/// The next SIGTERM or Ctrl-C.
async fn signal() {
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
}
