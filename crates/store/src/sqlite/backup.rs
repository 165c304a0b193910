//! Online backups of the SQLite database, and putting one back.
//!
//! [`backup`] copies the database while the service runs and writes, with
//! SQLite's online backup API, from a read-only connection of its own: it
//! needs neither the server's lock file nor its writer. The whole copy is
//! one step, so one read transaction: in WAL mode that is one consistent
//! snapshot, taken when the step begins, holding every transaction
//! committed before it — and so every message acknowledged before it (I2:
//! nothing is acknowledged before its commit). Copying in several steps
//! would not do: each write of the server between two steps makes SQLite
//! start the copy over, and under steady load it would never finish. The
//! writer goes on meanwhile (WAL readers do not block it); the log grows by
//! what is written during the copy, because no checkpoint can pass the
//! snapshot, and is cut back once the copy ends (see the checkpointer).
//!
//! The copy is written beside its destination under a temporary name,
//! switched from WAL to a rollback journal (so that it is one
//! self-contained file), checked, flushed to disk, and only then renamed
//! into place: a backup interrupted half-way never leaves a file that
//! looks like a backup.
//!
//! [`restore`] checks a copy (integrity, a refdesk schema no newer than
//! this binary's) on a copy of its own in the data folder, sets the
//! current database aside, and renames the checked copy into place. Its
//! caller must hold the data folder's lock, so that no server has the
//! database open. This module never touches a PostgreSQL database.

use super::{db, open_conn, schema};
use crate::{Result, StoreError};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Tables every refdesk database has had since its first schema version:
/// a file without them is some other SQLite database.
const REFDESK_TABLES: [&str; 4] = ["cooperatives", "staff", "sessions", "messages"];

/// What a copy holds, as [`backup`] and [`restore`] report it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Its size in bytes.
    pub bytes: u64,
    /// Its schema version (`PRAGMA user_version`).
    pub schema_version: usize,
    /// Chats and offline questions (rows of `sessions`).
    pub chats: i64,
    /// Lines of those chats (rows of `messages`).
    pub lines: i64,
    /// How long the copy took.
    pub took: Duration,
}

/// The outcome of [`restore`].
#[derive(Debug, Clone)]
pub struct Restored {
    /// What was put in place.
    pub summary: Summary,
    /// Where the database it replaced was set aside, if there was one.
    pub set_aside: Option<PathBuf>,
}

/// A file made on the way that goes away unless kept: with its journal,
/// log and index, which SQLite names after it.
struct Scratch(Option<PathBuf>);

impl Scratch {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(with_suffix(path, suffix));
            }
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::failed(what, e)
}

/// Creates `path` for this process alone (0600: a copy holds everything the
/// database does); refuses if it exists.
fn create_private(path: &Path) -> Result<File> {
    let mut open = OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    open.open(path).map_err(io(format!("creating {}", path.display())))
}

/// Flushes a file, then the folder that names it, so that a rename into it
/// survives a power cut.
fn sync(file: &Path) -> Result<()> {
    File::open(file).and_then(|f| f.sync_all()).map_err(io(format!("flushing {}", file.display())))?;
    sync_dir(file)
}

fn sync_dir(file: &Path) -> Result<()> {
    let dir = parent(file);
    // Folders cannot be opened to be flushed everywhere (Windows): best effort.
    if let Ok(d) = File::open(&dir) {
        d.sync_all().map_err(io(format!("flushing the folder {}", dir.display())))?;
    }
    Ok(())
}

fn parent(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Copies the live database at `db_path` to `to`, consistently, while a
/// server may be writing to it. Refuses to replace an existing `to` unless
/// `force`.
pub fn backup(db_path: &Path, to: &Path, force: bool) -> Result<Summary> {
    let began = Instant::now();
    match std::fs::metadata(db_path) {
        Ok(m) if m.is_file() => {}
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(StoreError::backend(format!(
                "cannot read the database at {}: {e} (run refdesk as the user that owns the data folder)",
                db_path.display()
            )));
        }
        _ => {
            return Err(StoreError::backend(format!(
                "there is no database at {}: nothing to back up (check data_dir or --data-dir)",
                db_path.display()
            )));
        }
    }
    if to.is_dir() {
        return Err(StoreError::backend(format!(
            "{} is a folder: give the backup's file in it (such as {})",
            to.display(),
            to.join("refdesk.sqlite3").display()
        )));
    }
    if same_file(db_path, to) {
        return Err(StoreError::backend(format!("{} is the database itself", to.display())));
    }
    if let Some(part) = companion(db_path, to) {
        return Err(StoreError::backend(format!(
            "{} is the database's {part}, which SQLite writes to while the service runs: give a file of its own",
            to.display()
        )));
    }
    // A device, a pipe or a socket is never replaced, --force or not: a
    // backup renamed over /dev/null made it a file, and every process that
    // threw output away there read it back.
    if std::fs::symlink_metadata(to).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(StoreError::backend(format!(
            "{} is not a regular file (a device, a pipe or a link?): give the backup's own file",
            to.display()
        )));
    }
    if to.exists() && !force {
        return Err(StoreError::backend(format!(
            "{} already exists; refusing to overwrite it (give another file, or --force to replace it)",
            to.display()
        )));
    }
    let folder = parent(to);
    match std::fs::metadata(&folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(StoreError::backend(format!("{} is not a folder", folder.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::backend(format!(
                "the folder {} does not exist: create it first, or give a file in a folder that does",
                folder.display()
            )))
        }
        Err(e) => return Err(StoreError::backend(format!("the folder {}: {e}", folder.display()))),
    }
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into());
    let temp = parent(to).join(format!(".{name}.partial-{}", std::process::id()));
    create_private(&temp)?;
    let scratch = Scratch(Some(temp.clone()));
    copy_live(db_path, &temp)?;
    let mut summary = settle(&temp, "the copy")?;
    sync(&temp)?;
    std::fs::rename(&temp, to).map_err(io(format!("renaming {} to {}", temp.display(), to.display())))?;
    scratch.keep();
    sync_dir(to)?;
    summary.took = began.elapsed();
    Ok(summary)
}

/// Which of the files SQLite keeps beside the database `db` (beside the
/// file itself, should `db` be a link) the path `to` is, if it is one, by
/// name, whether or not it exists now: replacing one of them under a
/// running server breaks the database.
fn companion(db: &Path, to: &Path) -> Option<&'static str> {
    let db = db.canonicalize().ok()?;
    let db_name = db.file_name()?.to_string_lossy().into_owned();
    let db_dir = parent(&db).canonicalize().ok()?;
    let to_dir = parent(to).canonicalize().ok();
    [("-wal", "write-ahead log"), ("-shm", "shared-memory index"), ("-journal", "rollback journal")]
        .into_iter()
        .find(|(suffix, _)| {
            let name = format!("{db_name}{suffix}");
            let by_name =
                to_dir.as_ref() == Some(&db_dir) && to.file_name().is_some_and(|n| n.to_string_lossy() == name);
            by_name || same_file(&db_dir.join(&name), to)
        })
        .map(|(_, part)| part)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The online copy itself: every page, in one step (see the module's
/// comment for why one).
fn copy_live(db_path: &Path, temp: &Path) -> Result<()> {
    let src = match open_conn(db_path, true) {
        Ok(src) => src,
        Err(_) if on_read_only_file_system(db_path) => open_frozen(db_path)?,
        Err(e) => return Err(context(e, format!("opening {}", db_path.display()))),
    };
    let mut dst = Connection::open(temp).map_err(db)?;
    let copy = Backup::new(&src, &mut dst).map_err(db)?;
    match copy.step(-1).map_err(|e| context(db(e), "copying the database".into()))? {
        StepResult::Done => Ok(()),
        // Only while SQLite recovers the log after a crash, or another
        // backup writes to the same destination: worth a retry.
        other => Err(StoreError::backend(format!("the database was busy ({other:?}); try the backup again"))),
    }
}

/// Whether `db_path` lies on a file system mounted read-only (as one is
/// remounted after a disk error: when a backup matters most). Opening the
/// file for writing changes nothing in it.
fn on_read_only_file_system(db_path: &Path) -> bool {
    matches!(
        OpenOptions::new().write(true).open(db_path),
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// The database on a read-only file system without the shared-memory index
/// SQLite's WAL readers need (a server stopped cleanly removes it, and none
/// can be made there): opened as immutable — only when none of the files
/// SQLite keeps beside it is there, which is the state a clean stop leaves
/// and no running server has (it holds the log and its index open). A log
/// or a rollback journal there may hold what an immutable reader would not
/// see: refused, with what to do instead.
fn open_frozen(db_path: &Path) -> Result<Connection> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let beside = with_suffix(db_path, suffix);
        match std::fs::metadata(&beside) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => {
                return Err(StoreError::backend(format!(
                    "{} is on a read-only file system, and SQLite cannot read it there with {} beside it: copy the \
                     database and the files beside it to a writable folder, side by side, and back up from there \
                     (refdesk --data-dir THAT-FOLDER backup --to …)",
                    db_path.display(),
                    beside.display()
                )))
            }
        }
    }
    let uri = format!("file:{}?immutable=1", uri_path(db_path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(uri, flags)
        .map_err(|e| context(db(e), format!("opening {} (read-only file system)", db_path.display())))
}

/// `path` for a `file:` URI: `%`, `?` and `#` escaped (SQLite decodes them).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn context(e: StoreError, what: String) -> StoreError {
    match e {
        StoreError::Backend { what: inner, source } => StoreError::Backend { what: format!("{what}: {inner}"), source },
        StoreError::Unavailable { what: inner, source } => {
            StoreError::Unavailable { what: format!("{what}: {inner}"), source }
        }
        other => other,
    }
}

/// Opens a copy on its own, makes it one self-contained file (a rollback
/// journal, not WAL: a copy of a WAL database says WAL in its header), and
/// checks that it is a whole refdesk database this binary can serve.
/// `what` names it in errors.
fn settle(path: &Path, what: &str) -> Result<Summary> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let bad = |e: rusqlite::Error| StoreError::backend(format!("{what} is not a usable SQLite database ({e})"));
    let conn = Connection::open_with_flags(path, flags).map_err(bad)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)).map_err(bad)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::backend(format!("{what}: cannot leave WAL mode (still {mode})")));
    }
    let problems: Vec<String> = {
        let mut st = conn.prepare("PRAGMA integrity_check(10)").map_err(bad)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(bad)?;
        rows.collect::<rusqlite::Result<_>>().map_err(bad)?
    };
    if problems != ["ok"] {
        return Err(StoreError::backend(format!("{what} fails SQLite's integrity check: {}", problems.join("; "))));
    }
    let summary = describe(&conn, what)?;
    conn.close().map_err(|(_, e)| bad(e))?;
    let bytes = std::fs::metadata(path).map_err(io(format!("reading {}", path.display())))?.len();
    Ok(Summary { bytes, ..summary })
}

/// The schema version of the database at `db_path` and the version this
/// refdesk brings it to (`refdesk config --check` says whether `serve`
/// will upgrade it), read without writing anything; `None` when there is
/// no database there yet.
pub fn schema_versions(db_path: &Path) -> Result<Option<(usize, usize)>> {
    if !db_path.exists() {
        return Ok(None);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db_path, flags)
        .map_err(|e| context(db(e), format!("opening {}", db_path.display())))?;
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| context(db(e), format!("reading {} (is it a SQLite database?)", db_path.display())))?;
    Ok(Some((version, schema::MIGRATIONS.len())))
}

/// Checks the schema is refdesk's, at a version this binary knows.
fn describe(conn: &Connection, what: &str) -> Result<Summary> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
    let known = schema::MIGRATIONS.len();
    if version > known {
        return Err(StoreError::backend(format!(
            "{what} is at schema version {version}, newer than this refdesk knows ({known}): use the refdesk \
             release that made it, or a newer one"
        )));
    }
    for table in REFDESK_TABLES {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
            .map_err(db)?;
        if version == 0 || n == 0 {
            return Err(StoreError::backend(format!(
                "{what} is a SQLite database but not refdesk's (no {table} table, schema version {version})"
            )));
        }
    }
    let count = |table: &str| conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0));
    Ok(Summary {
        bytes: 0,
        schema_version: version,
        chats: count("sessions").map_err(db)?,
        lines: count("messages").map_err(db)?,
        took: Duration::ZERO,
    })
}

/// Puts the backup `from` in place of the database at `db_path`, setting
/// the current one (with its log, if a crash left one) aside as
/// `<db>.before-restore-<UTC time>`. The caller holds the data folder's
/// lock. On any error nothing in the data folder has changed.
pub fn restore(from: &Path, db_path: &Path) -> Result<Restored> {
    let began = Instant::now();
    let meta = std::fs::metadata(from).map_err(io(format!("reading {}", from.display())))?;
    if !meta.is_file() {
        return Err(StoreError::backend(format!("{} is not a file", from.display())));
    }
    if same_file(from, db_path) {
        return Err(StoreError::backend(format!(
            "{} is the database itself: restore from a backup of it (`refdesk backup --to FILE`)",
            from.display()
        )));
    }
    let dir = parent(db_path);
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let file_name = db_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!("{file_name}.restoring-{}", std::process::id()));
    let mut out = create_private(&temp)?;
    let scratch = Scratch(Some(temp.clone()));
    let mut input = File::open(from).map_err(io(format!("opening {}", from.display())))?;
    std::io::copy(&mut input, &mut out).map_err(io(format!("copying {}", from.display())))?;
    drop(out);
    let mut summary = settle(&temp, &from.display().to_string())?;
    sync(&temp)?;
    let set_aside = set_aside(db_path, &dir.join(format!("{file_name}.before-restore-{}", utc_stamp())))?;
    if let Err(e) = std::fs::rename(&temp, db_path) {
        if let Some(aside) = &set_aside {
            put_back(aside, db_path);
        }
        return Err(io(format!("renaming {} to {}", temp.display(), db_path.display()))(e));
    }
    scratch.keep();
    sync_dir(db_path)?;
    summary.took = began.elapsed();
    Ok(Restored { summary, set_aside })
}

/// Keeps the database (and a log a crash left beside it, which holds
/// committed transactions: it goes with it, under the name SQLite looks for
/// next to the new name) as `aside`, and drops the shared-memory index,
/// which only describes the old log. Returns where it went, if it existed.
///
/// The database is hard-linked, not moved: its name never stops naming a
/// database, so a crash at any step of a restore leaves one there (the
/// copy's rename over it is the one step that swaps them), and `serve`
/// never starts on an empty file.
fn set_aside(db_path: &Path, aside: &Path) -> Result<Option<PathBuf>> {
    if !db_path.exists() {
        return Ok(None);
    }
    if aside.exists() {
        return Err(StoreError::backend(format!("{} already exists; try again in a second", aside.display())));
    }
    std::fs::hard_link(db_path, aside).map_err(io(format!("linking {} to {}", db_path.display(), aside.display())))?;
    let wal = with_suffix(db_path, "-wal");
    if wal.exists() {
        if let Err(e) = std::fs::rename(&wal, with_suffix(aside, "-wal")) {
            let _ = std::fs::remove_file(aside);
            return Err(io(format!("renaming {}", wal.display()))(e));
        }
    }
    let _ = std::fs::remove_file(with_suffix(db_path, "-shm"));
    Ok(Some(aside.to_owned()))
}

/// Undoes [`set_aside`] after a later step failed (best effort: the error
/// being reported is the one that matters): the database never left its
/// name; its log goes back, and the link aside goes.
fn put_back(aside: &Path, db_path: &Path) {
    let wal = with_suffix(aside, "-wal");
    if wal.exists() {
        let _ = std::fs::rename(wal, with_suffix(db_path, "-wal"));
    }
    let _ = std::fs::remove_file(aside);
}

/// Now in UTC as `20261130T143500Z`, for file names that sort by time.
fn utc_stamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (y, m, d) = refdesk_domain::report::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(path: &Path) {
        let mut conn = open_conn(path, false).unwrap();
        super::super::migrate(&mut conn).unwrap();
        conn.execute_batch("INSERT INTO cooperatives (name) VALUES ('North Shore')").unwrap();
    }

    #[test]
    fn a_backup_is_one_checked_file_and_restores_over_the_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("refdesk.sqlite3");
        fresh(&live);
        let copy = dir.path().join("copy.sqlite3");
        let summary = backup(&live, &copy, false).unwrap();
        assert_eq!(summary.schema_version, schema::MIGRATIONS.len());
        assert!(!with_suffix(&copy, "-wal").exists() && !with_suffix(&copy, "-journal").exists());
        let err = backup(&live, &copy, false).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        backup(&live, &copy, true).unwrap();

        let restored = restore(&copy, &live).unwrap();
        let aside = restored.set_aside.unwrap();
        assert!(aside.to_string_lossy().contains("refdesk.sqlite3.before-restore-"), "{}", aside.display());
        let conn = Connection::open(&live).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM cooperatives", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn restore_refuses_what_is_not_a_refdesk_database_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("refdesk.sqlite3");
        fresh(&live);
        let before = std::fs::read(&live).unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![7u8; 8192]).unwrap();
        let other = dir.path().join("other.sqlite3");
        Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x); PRAGMA user_version = 3").unwrap();
        let newer = dir.path().join("newer.sqlite3");
        fresh(&newer);
        Connection::open(&newer).unwrap().execute_batch("PRAGMA user_version = 999").unwrap();
        for (file, says) in [(&junk, "not a usable SQLite database"), (&other, "not refdesk's"), (&newer, "newer")] {
            let err = restore(file, &live).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, ["junk", "newer.sqlite3", "other.sqlite3", "refdesk.sqlite3"]);
        assert_eq!(std::fs::read(&live).unwrap(), before);
    }
}
