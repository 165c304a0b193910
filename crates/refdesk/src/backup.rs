//! `refdesk backup` and `refdesk restore`: the operator's side of
//! `refdesk_store::sqlite::backup` — the configuration, the data folder's
//! lock, and what is printed. SQLite only: a PostgreSQL deployment is
//! backed up with PostgreSQL's own tools (docs/operations.md), and both
//! commands say so rather than guess.
//!
//! `backup` takes no lock: it runs beside the server, on a read-only
//! connection of its own. `restore` takes the data folder's lock (see
//! `lock`), so it refuses while a `serve` has the database open.

use crate::lock;
use anyhow::{bail, Context};
use refdesk_server::Config;
use refdesk_store::sqlite::backup::{self, Summary};
use refdesk_store::StoreError;
use std::path::Path;

/// Why neither command works on PostgreSQL, and what to use instead.
fn postgres_refused(what: &str) -> String {
    format!(
        "this service keeps its data in PostgreSQL (database_url): refdesk {what} handles only the SQLite database \
         of a data folder. Use PostgreSQL's tools: pg_dump / pg_restore, or pg_basebackup with WAL archiving for \
         point-in-time recovery (docs/operations.md, \"Backups and restore\")"
    )
}

/// `refdesk backup --to FILE [--force]`.
pub fn backup(config: &Config, to: &Path, force: bool) -> anyhow::Result<()> {
    if config.database_url.is_some() {
        bail!("{}", postgres_refused("backup"));
    }
    let db = config.database_path();
    let done = backup::backup(&db, to, force).map_err(plain).with_context(|| format!("backing up {}", db.display()))?;
    out!("backed up {} to {}: {}", db.display(), to.display(), describe(&done));
    if inside(to, &config.data_dir) {
        out!(
            "warning: {} is inside the data folder {}: a copy there is lost with the folder's disk, and retention \
             and erasures never reach it; move it elsewhere (docs/operations.md, \"Backups and restore\")",
            to.display(),
            config.data_dir.display()
        );
    }
    Ok(())
}

/// Whether the file `path` (written) lies in the folder `dir` or below.
fn inside(path: &Path, dir: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    match (path.parent().and_then(real), real(dir)) {
        (Some(folder), Some(dir)) => folder.starts_with(dir),
        _ => false,
    }
}

/// `refdesk restore --from FILE`; `with` names the configuration file and
/// data folder for the command it advises next.
pub fn restore(config: &Config, from: &Path, with: &str) -> anyhow::Result<()> {
    if config.database_url.is_some() {
        bail!("{}", postgres_refused("restore"));
    }
    // A file that cannot be read changes nothing, not even a data folder
    // created for it.
    let readable = std::fs::File::open(from).and_then(|f| f.metadata()).map(|m| m.is_file());
    match readable {
        Ok(true) => {}
        Ok(false) => bail!("restoring {}: not a file (nothing was changed)", from.display()),
        Err(e) => return Err(e).with_context(|| format!("restoring {} (nothing was changed)", from.display())),
    }
    // Held until the restore ends: no server may start on the folder
    // meanwhile, and none may be running (it would keep the replaced
    // database open and go on writing to it).
    let created = !config.data_dir.exists();
    let lock = lock::lock_data_dir(&config.data_dir, lock::Purpose::Restore)?;
    let db = config.database_path();
    let done = match backup::restore(from, &db) {
        Ok(done) => done,
        Err(e) => {
            // A folder made for the restore goes with it: it holds nothing
            // but the lock (`remove_dir` takes an empty folder only). The
            // lock's file goes while it is held: no `serve` can take it
            // meanwhile and hold a file that is no longer there.
            if created {
                let _ = std::fs::remove_file(config.data_dir.join(lock::LOCK_FILE));
            }
            drop(lock);
            if created {
                let _ = std::fs::remove_dir(&config.data_dir);
            }
            return Err(plain(e)).with_context(|| format!("restoring {} (nothing was changed)", from.display()));
        }
    };
    out!("restored {} into {}: {}", from.display(), db.display(), describe(&done.summary));
    match &done.set_aside {
        Some(aside) => out!("the database it replaced is kept as {}", aside.display()),
        None => out!("there was no database there before"),
    }
    // The outbox is the backup's: e-mails of patrons erased since would go
    // out at the start, but for the erasure journal (docs/operations.md,
    // "Restore"; `refdesk_app::erasures`).
    let journal = config.data_dir.join(refdesk_app::erasures::FILE);
    if journal.is_file() {
        out!(
            "next: `refdesk{with} serve`: as it starts (bringing an older schema up to date) it makes again the \
             erasures on request noted in {} that this database lacks, before any e-mail goes; its log says how many",
            journal.display()
        );
    } else {
        out!(
            "next: `REFDESK_MAIL_HOLD=true refdesk{with} serve` (it brings an older schema up to date as it starts; \
             the e-mail waits): there is no erasure journal ({}) here. If the old data folder's erasures.jsonl \
             survives (a disk still readable, a copy), put it there before serving: the erasures it names are made \
             again. Otherwise this database's privacy list does not know the erasures on request made since the \
             backup: repeat those the library's records of the requests name (Admin → Privacy), then serve without \
             REFDESK_MAIL_HOLD",
            journal.display()
        );
    }
    Ok(())
}

/// The store's words without its "database error" heading: here the
/// operator asked for files, and the message names them (it already
/// carries the text of any error underneath).
pub(crate) fn plain(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Backend { what, .. } | StoreError::Unavailable { what, .. } => anyhow::anyhow!(what),
        other => other.into(),
    }
}

fn describe(s: &Summary) -> String {
    format!(
        "{:.1} MB, schema version {}, {} chats and questions, {} chat lines; integrity check ok; took {:.1} s",
        s.bytes as f64 / 1e6,
        s.schema_version,
        s.chats,
        s.lines,
        s.took.as_secs_f64()
    )
}
