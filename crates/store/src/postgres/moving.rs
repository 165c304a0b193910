//! Moving a service's data from its SQLite database into an empty
//! PostgreSQL database (`refdesk move-to-postgres`): a library that began
//! on the embedded default and now wants several nodes keeps its history.
//!
//! Both backends have the same tables and columns at the same schema
//! version (the migrations keep them so, and [`sqlite_to_postgres`] checks
//! it before copying anything); PostgreSQL's columns are `BIGINT`,
//! `BOOLEAN` and `TEXT`, SQLite's truth values 0 and 1. The copy is one
//! PostgreSQL transaction that holds every table locked (no node may write
//! meanwhile): every table in turn, parents before the tables that refer
//! to them, each with one `COPY`, its rows counted as read from SQLite and
//! as PostgreSQL then holds them; then each identity column's sequence is
//! set past the largest id copied. Anything wrong — a table or column one side lacks, a value
//! PostgreSQL cannot hold, a count that differs, a database that already
//! holds data — rolls it all back: the PostgreSQL database is left as it
//! was (its schema made, no rows), and the SQLite one is only ever read.
//!
//! The SQLite side is read on a thread of its own, in one read
//! transaction, and handed over in pieces of [`PIECE`] bytes through a
//! short channel: memory stays bounded whatever the database's size.

use super::{cannot_connect, db, migrate};
use crate::sql::Cols;
use crate::{Result, StoreError};
use rusqlite::types::ValueRef;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The size of a piece of `COPY` data handed from the reader to PostgreSQL.
const PIECE: usize = 256 * 1024;

/// What was moved: each table's rows, in the order copied.
#[derive(Debug, Clone)]
pub struct Moved {
    /// Tables and their rows, parents first.
    pub tables: Vec<(String, u64)>,
    /// The SQLite database's schema version (this refdesk's).
    pub schema_version: usize,
    /// How long it took.
    pub took: Duration,
}

/// A table to copy: its columns in PostgreSQL's order, and which of them
/// are truth values (0 and 1 in SQLite).
#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<(String, bool)>,
}

/// What the reader hands over.
enum Piece {
    /// `COPY` text-format rows of the table being copied.
    Rows(Vec<u8>),
    /// The table is done: this many rows were read.
    End(u64),
}

/// Copies every row of the SQLite database at `sqlite` into the PostgreSQL
/// database at `url`, which must hold no refdesk data (its schema is
/// brought up to date first, as `serve` would). The SQLite database must
/// be at this refdesk's schema version (`refdesk migrate` brings it there),
/// and no server may be writing to it (the caller holds the data folder's
/// lock).
pub async fn sqlite_to_postgres(sqlite: &Path, url: &str) -> Result<Moved> {
    let stopped_cleanly = ["-wal", "-shm"].iter().all(|s| !beside(sqlite, s).exists());
    let moved = copy_all(sqlite, url).await;
    // Reading opened the log and its index beside a database its server
    // had closed cleanly: a connection that may write, opened, reading and
    // closed, has SQLite remove them as that server did (if it is the last
    // one; a connection that never read closes without looking).
    if stopped_cleanly {
        if let Ok(c) = crate::sqlite::open_conn(sqlite, false) {
            let _ = c.execute_batch("SELECT count(*) FROM sqlite_master");
        }
    }
    moved
}

/// [`sqlite_to_postgres`] but for what it leaves beside the SQLite file.
async fn copy_all(sqlite: &Path, url: &str) -> Result<Moved> {
    let began = Instant::now();
    let version = sqlite_version(sqlite)?;
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::failed("bad PostgreSQL URL", e))?
        .application_name("refdesk move-to-postgres");
    let mut c = PgConnection::connect_with(&connect).await.map_err(|e| cannot_connect(e, &connect))?;
    refdesks_alone(&mut c).await?;
    migrate(&mut c).await?;
    let tables = tables(&mut c).await?;
    let mut tx = c.begin().await.map_err(db)?;
    hold_empty(&mut tx, &tables).await?;
    let (send, mut pieces) = mpsc::channel(4);
    let reader = {
        let (path, tables) = (sqlite.to_owned(), tables.clone());
        tokio::task::spawn_blocking(move || read_sqlite(&path, &tables, &send))
    };
    let mut moved = Vec::with_capacity(tables.len());
    let copied: Result<()> = async {
        for t in &tables {
            let cols: Vec<String> = t.columns.iter().map(|(c, _)| ident(c)).collect();
            let statement = format!("COPY {} ({}) FROM STDIN", ident(&t.name), cols.join(", "));
            let mut copy = tx.copy_in_raw(&statement).await.map_err(db)?;
            let read = loop {
                match pieces.recv().await {
                    Some(Piece::Rows(rows)) => {
                        copy.send(rows).await.map_err(|e| copying(&t.name, e))?;
                    }
                    Some(Piece::End(n)) => break n,
                    // The reader stopped: its own error is said below.
                    None => {
                        let _ = copy.abort("the SQLite side stopped").await;
                        return Err(StoreError::backend("reading the SQLite database stopped"));
                    }
                }
            };
            let copied = copy.finish().await.map_err(|e| copying(&t.name, e))?;
            // Counted again as PostgreSQL holds them.
            let count = format!("SELECT count(*) AS n FROM {}", ident(&t.name));
            let written = sqlx::query(&count).fetch_one(&mut *tx).await.map_err(db)?.int("n")? as u64;
            if written != read || copied != read {
                return Err(StoreError::backend(format!(
                    "table {}: {read} rows read from SQLite but {written} written to PostgreSQL",
                    t.name
                )));
            }
            moved.push((t.name.clone(), written));
        }
        Ok(())
    }
    .await;
    drop(pieces);
    let read = reader.await.map_err(|e| StoreError::backend(format!("the SQLite reader failed: {e}")))?;
    // The reader's error is the cause when both failed.
    read?;
    copied?;
    ids_go_on(&mut tx, &tables).await?;
    tx.commit().await.map_err(db)?;
    // The planner's figures for what was just written (autovacuum would
    // come to it, later): the move is done whether this works or not.
    if let Err(e) = sqlx::query("ANALYZE").execute(&mut c).await {
        tracing::warn!(error = %e, "ANALYZE after the move failed: autovacuum will gather the figures later");
    }
    let _ = c.close().await;
    Ok(Moved { tables: moved, schema_version: version, took: began.elapsed() })
}

/// Refuses, before refdesk's schema is made in it, a database that holds
/// another application's tables, or that a refdesk node is connected to
/// (an idle one holds no lock, and would then serve the moved history with
/// what it had cached of none). A node just stopped may take a moment to
/// leave the server's list of connections.
async fn refdesks_alone(c: &mut PgConnection) -> Result<()> {
    let mut waited = Duration::ZERO;
    while !nodes_on(c).await?.is_empty() && waited < NODES_GONE_WITHIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    no_nodes_on(c).await?;
    // From the catalog, not information_schema: that one lists only the
    // tables this role may use, and another role's would go unseen.
    let tables = sqlx::query(
        "SELECT relname::text AS t FROM pg_class
         WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'f')
         ORDER BY relname",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db)?
    .iter()
    .map(|r| r.text("t"))
    .collect::<Result<Vec<String>>>()?;
    if !tables.is_empty() && !tables.iter().any(|t| t == "refdesk_schema") {
        let some: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
        return Err(StoreError::backend(format!(
            "the PostgreSQL database holds tables that are not refdesk's ({}{}): move into a new database of its own",
            some.join(", "),
            if tables.len() > some.len() { ", …" } else { "" }
        )));
    }
    Ok(())
}

/// Refuses if a refdesk node is connected to the database, naming each
/// connection (a node's machine gone for good may leave one behind, for
/// its administrator to end).
async fn no_nodes_on(c: &mut PgConnection) -> Result<()> {
    let nodes = nodes_on(c).await?;
    if nodes.is_empty() {
        return Ok(());
    }
    Err(StoreError::backend(format!(
        "refdesk is connected to the PostgreSQL database ({}): stop every node on it, then move (a connection \
         left by a node that is gone for good ends with `SELECT pg_terminate_backend(pid)`)",
        nodes.join("; ")
    )))
}

/// The connections of refdesk nodes to the database, but this one.
async fn nodes_on(c: &mut PgConnection) -> Result<Vec<String>> {
    sqlx::query(
        "SELECT format('pid %s, user %s, from %s, %s', pid, usename, coalesce(client_addr::text, 'a socket'), state)
           AS said
         FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'refdesk%'",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db)?
    .iter()
    .map(|r| r.text("said"))
    .collect()
}

/// How long a node just stopped may still be listed among the database's
/// connections.
const NODES_GONE_WITHIN: Duration = Duration::from_secs(3);

/// Locks every table of the transaction's database for the move, and
/// refuses one that holds data.
async fn hold_empty(tx: &mut PgConnection, tables: &[Table]) -> Result<()> {
    // No node may write while the tables fill (a node started too early
    // would mix its rows with the moved ones, or collide with their ids);
    // and a large table's COPY may take longer than a managed server's
    // default statement timeout.
    sqlx::raw_sql("SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let all: Vec<String> = tables.iter().map(|t| ident(&t.name)).collect();
    let lock = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT", all.join(", "));
    sqlx::raw_sql(&lock).execute(&mut *tx).await.map_err(|e| {
        StoreError::backend(format!(
            "the PostgreSQL database is in use (a refdesk node on it?): stop every node on it, then move: {e}"
        ))
    })?;
    // A node that connected since the first look waits on the locks now.
    no_nodes_on(tx).await?;
    for t in tables {
        let held = format!("SELECT EXISTS (SELECT 1 FROM {}) AS held", ident(&t.name));
        if sqlx::query(&held).fetch_one(&mut *tx).await.map_err(db)?.flag("held")? {
            return Err(StoreError::backend(format!(
                "the PostgreSQL database already holds data (table {} has rows): move into a new, empty database",
                t.name
            )));
        }
    }
    Ok(())
}

/// Sets each identity column's sequence past the largest id copied.
async fn ids_go_on(tx: &mut PgConnection, tables: &[Table]) -> Result<()> {
    for t in tables {
        for column in identities(&mut *tx, &t.name).await? {
            let set = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), m) FROM (SELECT max({}) AS m FROM {}) AS top \
                 WHERE m IS NOT NULL",
                ident(&column),
                ident(&t.name)
            );
            sqlx::query(&set).bind(ident(&t.name)).bind(&column).execute(&mut *tx).await.map_err(db)?;
        }
    }
    Ok(())
}

/// The file SQLite names after the database at `path` with `suffix`.
fn beside(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// A name from the catalog, quoted as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn copying(table: &str, e: sqlx::Error) -> StoreError {
    // SQLite keeps fewer rules than PostgreSQL does (the writer checks a
    // line's client id itself, with no index): rows breaking one are named.
    let broken = e.as_database_error().and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>());
    if let Some(d) = broken.filter(|d| d.code() == "23505") {
        return StoreError::backend(format!(
            "copying table {table} into PostgreSQL: two of its rows share what PostgreSQL \
             keeps unique ({}: {}); correct the SQLite database, then move again",
            d.constraint().unwrap_or("an index"),
            d.detail().unwrap_or("")
        ));
    }
    StoreError::backend(format!("copying table {table} into PostgreSQL: {e}"))
}

/// The SQLite database's schema version, which must be this refdesk's.
fn sqlite_version(path: &Path) -> Result<usize> {
    if !path.is_file() {
        return Err(StoreError::backend(format!("there is no SQLite database at {}", path.display())));
    }
    let c = crate::sqlite::open_conn(path, true)?;
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| StoreError::failed("reading the SQLite database's schema version", e))?;
    let ours = crate::sqlite::schema::MIGRATIONS.len();
    match usize::try_from(version) {
        Ok(v) if v == ours => Ok(v),
        Ok(v) if v < ours => Err(StoreError::backend(format!(
            "the SQLite database is at schema version {v}, older than this refdesk's ({ours}): bring it up to date \
             first (`refdesk migrate`), then move it"
        ))),
        _ => Err(StoreError::backend(format!(
            "the SQLite database is at schema version {version}, newer than this refdesk ({ours}): move it with the \
             refdesk that made it"
        ))),
    }
}

/// PostgreSQL's refdesk tables, parents before the tables that refer to
/// them, each with its columns.
async fn tables(c: &mut PgConnection) -> Result<Vec<Table>> {
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> 'refdesk_schema'
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db)?;
    let mut columns: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for r in rows {
        let ty = r.text("ty")?;
        if !["bigint", "boolean", "text"].contains(&ty.as_str()) {
            let (t, col) = (r.text("t")?, r.text("c")?);
            return Err(StoreError::backend(format!("column {t}.{col} is of type {ty}, which no move copies")));
        }
        columns.entry(r.text("t")?).or_default().push((r.text("c")?, ty == "boolean"));
    }
    let links = sqlx::query(
        "SELECT child.relname::text AS child, parent.relname::text AS parent
         FROM pg_constraint k
         JOIN pg_class child ON child.oid = k.conrelid
         JOIN pg_class parent ON parent.oid = k.confrelid
         WHERE k.contype = 'f' AND child.relnamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db)?;
    let mut parents: BTreeMap<String, BTreeSet<String>> =
        columns.keys().map(|t| (t.clone(), BTreeSet::new())).collect();
    for l in links {
        let (child, parent) = (l.text("child")?, l.text("parent")?);
        // A table referring to itself is checked at the end of its `COPY`.
        if child != parent {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let order = parents_first(parents)?;
    Ok(order.into_iter().map(|name| Table { columns: columns.remove(&name).unwrap_or_default(), name }).collect())
}

/// The tables in an order where each comes after those it refers to
/// (alphabetical among those free to go).
fn parents_first(mut parents: BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>> {
    let mut order = Vec::with_capacity(parents.len());
    while !parents.is_empty() {
        let free: Vec<String> = parents
            .iter()
            .filter(|(_, p)| p.iter().all(|p| !parents.contains_key(p)))
            .map(|(t, _)| t.clone())
            .collect();
        if free.is_empty() {
            let left: Vec<&str> = parents.keys().map(String::as_str).collect();
            return Err(StoreError::backend(format!("tables that refer to each other: {}", left.join(", "))));
        }
        for t in free {
            parents.remove(&t);
            order.push(t);
        }
    }
    Ok(order)
}

/// A table's identity columns.
async fn identities(c: &mut PgConnection, table: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT column_name::text AS c FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
    )
    .bind(table)
    .fetch_all(&mut *c)
    .await
    .map_err(db)?;
    rows.into_iter().map(|r| r.text("c")).collect()
}

/// Reads each table in turn, in one read transaction, and hands its rows
/// over as `COPY` text.
fn read_sqlite(path: &Path, tables: &[Table], send: &mpsc::Sender<Piece>) -> Result<()> {
    let reading = |e: rusqlite::Error| StoreError::failed("reading the SQLite database", e);
    let mut c = crate::sqlite::open_conn(path, true)?;
    let tx = c.transaction().map_err(reading)?;
    // Every SQLite table is moved: one PostgreSQL lacks would be left behind.
    let mut names = tx
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
        .map_err(reading)?;
    let mut rows = names.query([]).map_err(reading)?;
    while let Some(r) = rows.next().map_err(reading)? {
        let name: String = r.get(0).map_err(reading)?;
        if !tables.iter().any(|t| t.name == name) {
            return Err(StoreError::backend(format!(
                "the SQLite database has a table {name} that the PostgreSQL schema lacks"
            )));
        }
    }
    drop(rows);
    drop(names);
    for t in tables {
        let mut have: Vec<String> = Vec::new();
        let mut info = tx.prepare(&format!("PRAGMA table_info({})", ident(&t.name))).map_err(reading)?;
        let mut rows = info.query([]).map_err(reading)?;
        while let Some(r) = rows.next().map_err(reading)? {
            have.push(r.get(1).map_err(reading)?);
        }
        if have.is_empty() {
            return Err(StoreError::backend(format!(
                "the PostgreSQL database has a table {} that is no refdesk table: move into a database of its own",
                t.name
            )));
        }
        let want: BTreeSet<&str> = t.columns.iter().map(|(c, _)| c.as_str()).collect();
        let found: BTreeSet<&str> = have.iter().map(String::as_str).collect();
        if want != found {
            return Err(StoreError::backend(format!(
                "table {} differs between the databases: SQLite has ({}), PostgreSQL ({})",
                t.name,
                have.join(", "),
                t.columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let cols: Vec<String> = t.columns.iter().map(|(c, _)| ident(c)).collect();
        let mut select = tx.prepare(&format!("SELECT {} FROM {}", cols.join(", "), ident(&t.name))).map_err(reading)?;
        let mut rows = select.query([]).map_err(reading)?;
        let (mut piece, mut count) = (Vec::with_capacity(PIECE), 0u64);
        while let Some(r) = rows.next().map_err(reading)? {
            for (i, (column, truth)) in t.columns.iter().enumerate() {
                if i > 0 {
                    piece.push(b'\t');
                }
                let value = r.get_ref(i).map_err(reading)?;
                field(&mut piece, value, *truth)
                    .map_err(|why| StoreError::backend(format!("table {}, column {column}: {why}", t.name)))?;
            }
            piece.push(b'\n');
            count += 1;
            if piece.len() >= PIECE {
                let full = std::mem::replace(&mut piece, Vec::with_capacity(PIECE));
                if send.blocking_send(Piece::Rows(full)).is_err() {
                    return Ok(()); // PostgreSQL's side stopped: its error is said
                }
            }
        }
        if !piece.is_empty() && send.blocking_send(Piece::Rows(piece)).is_err() {
            return Ok(());
        }
        if send.blocking_send(Piece::End(count)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// One value in `COPY`'s text format: `\N` for NULL, backslashes and the
/// characters that end fields and rows escaped.
fn field(out: &mut Vec<u8>, value: ValueRef<'_>, truth: bool) -> std::result::Result<(), String> {
    match value {
        ValueRef::Null => out.extend_from_slice(b"\\N"),
        ValueRef::Integer(0) if truth => out.push(b'f'),
        ValueRef::Integer(1) if truth => out.push(b't'),
        ValueRef::Integer(n) if truth => return Err(format!("{n} is no truth value (0 or 1)")),
        ValueRef::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        ValueRef::Real(x) => return Err(format!("{x} is a fraction, which no column here holds")),
        ValueRef::Blob(_) => return Err("bytes that are no text, which no column here holds".into()),
        ValueRef::Text(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| "text that is not UTF-8".to_owned())?;
            if text.contains('\0') {
                return Err("text with a NUL character, which PostgreSQL cannot hold".into());
            }
            for b in text.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    other => out.push(other),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: ValueRef<'_>, truth: bool) -> std::result::Result<String, String> {
        let mut out = Vec::new();
        field(&mut out, value, truth)?;
        Ok(String::from_utf8(out).expect("ASCII and UTF-8 in"))
    }

    #[test]
    fn values_are_written_as_copy_reads_them() {
        assert_eq!(text(ValueRef::Null, false).unwrap(), "\\N");
        assert_eq!(text(ValueRef::Null, true).unwrap(), "\\N");
        assert_eq!(text(ValueRef::Integer(1), true).unwrap(), "t");
        assert_eq!(text(ValueRef::Integer(0), true).unwrap(), "f");
        assert_eq!(text(ValueRef::Integer(-42), false).unwrap(), "-42");
        let tricky = "a\tb\nc\\N\r é";
        assert_eq!(text(ValueRef::Text(tricky.as_bytes()), false).unwrap(), "a\\tb\\nc\\\\N\\r é");
        // "\N" typed by a patron is text, not NULL.
        assert_eq!(text(ValueRef::Text(b"\\N"), false).unwrap(), "\\\\N");
    }

    #[test]
    fn what_postgresql_cannot_hold_is_refused() {
        assert!(text(ValueRef::Integer(2), true).is_err());
        assert!(text(ValueRef::Real(0.5), false).is_err());
        assert!(text(ValueRef::Blob(b"x"), false).is_err());
        assert!(text(ValueRef::Text(b"a\0b"), false).is_err());
        assert!(text(ValueRef::Text(&[0xff, 0xfe]), false).is_err());
    }

    #[test]
    fn parents_come_first_and_a_loop_is_refused() {
        let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<_>>();
        let mut parents = BTreeMap::new();
        parents.insert("messages".to_owned(), set(&["sessions"]));
        parents.insert("sessions".to_owned(), set(&["libraries"]));
        parents.insert("libraries".to_owned(), set(&[]));
        parents.insert("audit".to_owned(), set(&[]));
        assert_eq!(parents_first(parents).unwrap(), ["audit", "libraries", "sessions", "messages"]);
        let mut looped = BTreeMap::new();
        looped.insert("a".to_owned(), set(&["b"]));
        looped.insert("b".to_owned(), set(&["a"]));
        assert!(parents_first(looped).is_err());
    }
}
