//! `refdesk move-to-postgres --to URL`: the operator's side of
//! `refdesk_store::postgres::moving` — a service that began on SQLite
//! moves its whole history into an empty PostgreSQL database, to run
//! several nodes. The data folder's lock is held throughout (no `serve`
//! may write what would not be moved); the SQLite database is only read,
//! and left as it was.

use crate::backup::plain;
use crate::lock;
use anyhow::{bail, Context};
use refdesk_server::Config;
use refdesk_store::postgres::moving;
use std::path::Path;

/// Moves the configuration's SQLite database into the PostgreSQL database
/// at `to`; `with` names the configuration file and data folder for the
/// command it advises next.
pub async fn run(config: &Config, to: &str, with: &str) -> anyhow::Result<()> {
    if config.database_url.is_some() {
        bail!(
            "this service already keeps its data in PostgreSQL (database_url): there is no SQLite database to move \
             (nothing was changed)"
        );
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a PostgreSQL URL, postgres://user@host/database (nothing was changed)");
    }
    let db = config.database_path();
    if !db.is_file() {
        bail!("there is no SQLite database at {} (is data_dir right?); nothing was changed", db.display());
    }
    let _lock = lock::lock_data_dir(&config.data_dir, lock::Purpose::Move)?;
    let moved = moving::sqlite_to_postgres(&db, to).await;
    let moved = moved.map_err(plain).with_context(|| {
        format!("moving {} into PostgreSQL (no row was moved; the SQLite database is as it was)", db.display())
    })?;
    let rows = |table: &str| moved.tables.iter().find(|(t, _)| t == table).map_or(0, |(_, n)| *n);
    let all: u64 = moved.tables.iter().map(|(_, n)| n).sum();
    out!(
        "moved {} into the PostgreSQL database: schema version {}, {} tables, {all} rows ({} chats and questions, {} \
         chat lines, {} questions); every table's rows counted on both sides; took {:.1} s",
        db.display(),
        moved.schema_version,
        moved.tables.len(),
        rows("sessions"),
        rows("messages"),
        rows("questions"),
        moved.took.as_secs_f64()
    );
    // Every command on this SQLite database refuses it from now on.
    let marker = config.data_dir.join(MOVED);
    let said = format!("moved to PostgreSQL at {} UTC by refdesk move-to-postgres\n", utc_now());
    if let Err(e) = write_private(&marker, &said) {
        out!(
            "warning: could not write {} ({e}): nothing keeps refdesk's commands from the SQLite copy",
            marker.display()
        );
    }
    out!(
        "the SQLite database is left as it was, as a copy: every refdesk command refuses it without database_url \
         while {} is there (served, its e-mail waiting to go would go a second time). It holds every patron's \
         data, which erasures and retention in PostgreSQL never reach: once the service runs well on PostgreSQL, \
         delete it (with its -wal and -shm files), or keep it only as long as your backups",
        marker.display()
    );
    out!(
        "next: set database_url to that database (the configuration file, or REFDESK_DATABASE_URL; a password \
         in PGPASSWORD or ~/.pgpass rather than in the URL) and `refdesk{with} serve` with the same data folder \
         (its erasure journal goes on)"
    );
    Ok(())
}

/// The file a move leaves in the data folder.
const MOVED: &str = "moved-to-postgres";

/// Writes `text` to `path`, readable by its owner alone.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    std::io::Write::write_all(&mut open.open(path)?, text.as_bytes())
}

/// Why a command on SQLite refuses `data_dir`, if its database was moved
/// (a marker that cannot be read counts: it is there).
pub fn moved_from(data_dir: &Path) -> Option<String> {
    let marker = data_dir.join(MOVED);
    std::fs::symlink_metadata(&marker).ok()?;
    let said = std::fs::read_to_string(&marker).unwrap_or_else(|_| "moved to PostgreSQL".to_owned());
    Some(format!(
        "this data folder's SQLite database was {}: it is a copy now; run refdesk with database_url set (the \
         configuration file, or REFDESK_DATABASE_URL). To use the SQLite copy again instead (served, its outbox \
         would send what it holds again), remove {}",
        said.trim().trim_end_matches(" by refdesk move-to-postgres"),
        marker.display()
    ))
}

/// Now, as `YYYY-MM-DD HH:MM` in UTC.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let day = refdesk_domain::report::date_of(secs.div_euclid(86_400));
    let minute = secs.rem_euclid(86_400) / 60;
    format!("{day} {:02}:{:02}", minute / 60, minute % 60)
}
