//! Moving a SQLite service's data into PostgreSQL (`refdesk
//! move-to-postgres`, `refdesk_store::postgres::moving`): every row of
//! every table arrives as it was, the moved service goes on numbering
//! after what it holds, and a move that cannot be whole changes nothing.

use crate::support::{chatting, line, ok, patron, staff_author, Backend, Empty, Kind};
use refdesk_domain::chat::MessageKind;
use refdesk_domain::privacy::Transcripts;
use refdesk_domain::question::Change;
use refdesk_store::postgres::moving::sqlite_to_postgres;
use refdesk_store::prelude::*;
use refdesk_store::{Ending, ErasureReason};
use std::collections::BTreeMap;
use std::path::Path;

/// Text that `COPY`'s format must carry as it is: its field and row
/// separators, its escape and NULL marks, and letters beyond ASCII.
const TRICKY: &str = "tab\there, a new line\nand \\N, a backslash \\ and a return\r — Ökonomie, 図書館 🙂";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_moves_whole_into_an_empty_postgresql_and_goes_on_there() {
    moves_whole(Kind::Postgres).await;
}

/// The same into the PostgreSQL that accepts verified TLS only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_moves_whole_into_a_postgresql_over_verified_tls() {
    moves_whole(Kind::PostgresTls).await;
}

async fn moves_whole(into: Kind) {
    let b = Backend::open(Kind::Sqlite).await;
    let s = &*b.store;
    let a = chatting(s, &b.w, Some("pat@example.org"), "t1", 10).await;
    s.append(a, line(patron(), MessageKind::Message, TRICKY, Some("c1")), ok(), 11).await.unwrap();
    s.append(a, line(staff_author(&b.w.ann), MessageKind::Note, "a note: \\t stays", None), ok(), 12).await.unwrap();
    s.end(a, patron(), ok(), Box::new(|_, _| None), Ending::default(), 13).await.unwrap();
    s.rate(a, 5, Some(TRICKY.into())).await.unwrap();
    let q = s.session(a).await.unwrap().unwrap().ctx.question.unwrap();
    let note = Change::Note { body: TRICKY.into() };
    let plan: refdesk_store::Plan =
        Box::new(move |_, _| Ok(refdesk_store::QuestionPlan { entries: vec![note], ..Default::default() }));
    s.act_on_question(q, b.w.ann.clone(), plan, 14).await.unwrap();
    let erased = chatting(s, &b.w, Some("mia@example.org"), "t2", 20).await;
    s.end(erased, patron(), ok(), Box::new(|_, _| None), Ending::default(), 21).await.unwrap();
    s.erase(vec![erased], Transcripts::Mask, ErasureReason::Retention, 22).await.unwrap();
    s.im_send(b.w.ann.clone(), b.w.carla.id, TRICKY.into(), None, 100, 23).await.unwrap();
    let transcript = s.messages_after(a, 0, 100).await.unwrap();
    let timeline = s.timeline(q).await.unwrap();
    let path = b.sqlite_path().unwrap().to_owned();
    s.close().await;
    let before = sqlite_rows(&path);

    let target = Empty::open(into).await;
    target.store.close().await;
    let url = target.postgres_url().unwrap().to_owned();
    let moved = sqlite_to_postgres(&path, &url).await.unwrap();
    let counts: BTreeMap<String, u64> = moved.tables.iter().cloned().collect();
    let expected: BTreeMap<String, u64> = before.iter().map(|(t, rows)| (t.clone(), rows.len() as u64)).collect();
    assert_eq!(counts, expected, "every table, every row");
    assert!(counts["messages"] > 0 && counts["timeline"] > 0 && counts["im_messages"] > 0, "{counts:?}");
    let order: Vec<&str> = moved.tables.iter().map(|(t, _)| t.as_str()).collect();
    let at = |t: &str| order.iter().position(|o| *o == t).unwrap();
    assert!(at("cooperatives") < at("libraries") && at("sessions") < at("messages"), "parents first: {order:?}");
    assert_eq!(postgres_rows(&url).await, before, "each row as it was, value for value");

    // The moved service reads what the old one did, and numbers on after it.
    let sink = std::sync::Arc::new(crate::support::Recorder::default());
    let pg = refdesk_store::postgres::PgStore::open(&url, Default::default(), sink).await.unwrap();
    assert_eq!(pg.messages_after(a, 0, 100).await.unwrap(), transcript);
    assert_eq!(pg.timeline(q).await.unwrap(), timeline);
    let next = chatting(&pg, &b.w, None, "t3", 30).await;
    assert!(next.0 > erased.0, "a new chat takes a new number: {next:?} after {erased:?}");
    let said = pg.append(next, line(patron(), MessageKind::Message, "hello", None), ok(), 31).await.unwrap();
    assert!(said.message.seq > 1);
    pg.close().await;

    // A second move into it is refused: it holds data now.
    let held = postgres_rows(&url).await;
    let again = sqlite_to_postgres(&path, &url).await.unwrap_err().to_string();
    assert!(again.contains("already holds data"), "{again}");
    assert_eq!(postgres_rows(&url).await, held, "nothing changed");
    target.remove().await;
    b.remove().await;
}

/// A database of an older schema is sent to `refdesk migrate` first, and a
/// value PostgreSQL cannot hold (a NUL in a text) stops the move with the
/// table and column named and nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_cannot_be_whole_changes_nothing() {
    let b = Backend::open(Kind::Sqlite).await;
    let a = chatting(&*b.store, &b.w, None, "t1", 10).await;
    let path = b.sqlite_path().unwrap().to_owned();
    b.store.close().await;
    let target = Empty::open(Kind::Postgres).await;
    let url = target.postgres_url().unwrap().to_owned();
    // A node still connected (idle: it holds no lock) is refused.
    let open = sqlite_to_postgres(&path, &url).await.unwrap_err().to_string();
    assert!(open.contains("refdesk is connected to the PostgreSQL database (pid "), "{open}");
    target.store.close().await;

    let c = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    c.execute_batch(&format!("PRAGMA user_version = {}", version - 1)).unwrap();
    let older = sqlite_to_postgres(&path, &url).await.unwrap_err().to_string();
    assert!(older.contains("older") && older.contains("refdesk migrate"), "{older}");
    c.execute_batch(&format!("PRAGMA user_version = {version}")).unwrap();

    c.execute("UPDATE messages SET body = 'a' || char(0) || 'b' WHERE session_id = ?1", [a.0]).unwrap();
    drop(c);
    let refused = sqlite_to_postgres(&path, &url).await.unwrap_err().to_string();
    assert!(refused.contains("messages") && refused.contains("body") && refused.contains("NUL"), "{refused}");
    let rows = postgres_rows(&url).await;
    assert!(rows.values().all(Vec::is_empty), "nothing written: {rows:?}");

    // Two lines of one chat with one client id: SQLite's writer never
    // stores them (it has no index), PostgreSQL's index refuses them.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("UPDATE messages SET body = 'ab', client_id = 'same', sender = 'patron'").unwrap();
    let twice = sqlite_to_postgres(&path, &url).await.unwrap_err().to_string();
    assert!(twice.contains("two of its rows share") && twice.contains("messages_client_id"), "{twice}");
    c.execute_batch("UPDATE messages SET client_id = NULL").unwrap();
    drop(c);
    // A table one side has and the other lacks: nothing is left behind.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("UPDATE messages SET body = 'ab'; CREATE TABLE visitors (id INTEGER)").unwrap();
    let extra = sqlite_to_postgres(&path, &url).await.unwrap_err().to_string();
    assert!(extra.contains("table visitors that the PostgreSQL schema lacks"), "{extra}");
    c.execute_batch("DROP TABLE visitors").unwrap();
    drop(c);
    {
        use sqlx::Connection;
        let mut pg = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("CREATE TABLE visitors (id BIGINT)").execute(&mut pg).await.unwrap();
        let _ = pg.close().await;
    }
    let foreign = sqlite_to_postgres(&path, &url).await.unwrap_err().to_string();
    assert!(foreign.contains("table visitors that is no refdesk table"), "{foreign}");
    assert!(postgres_rows(&url).await.values().all(Vec::is_empty), "nothing written");

    // Another application's database, and one not in UTF-8: refused
    // before refdesk's schema is made in it.
    for (name, made, said) in [
        ("other", "CREATE TABLE customers (id integer); INSERT INTO customers VALUES (1)", "not refdesk's (customers)"),
        ("latin1", "", "encoding is LATIN1"),
    ] {
        use sqlx::Connection;
        let server = crate::support::postgres_server();
        let db = format!("refdesk_move_{name}_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {db}")).execute(&mut admin).await.unwrap();
        let create = format!("CREATE DATABASE {db}");
        let create = if name == "latin1" {
            format!("{create} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        } else {
            create
        };
        sqlx::raw_sql(&create).execute(&mut admin).await.unwrap();
        let db_url = format!("{}/{db}", server.rsplit_once('/').unwrap().0);
        let mut target_db = sqlx::PgConnection::connect(&db_url).await.unwrap();
        if !made.is_empty() {
            sqlx::raw_sql(made).execute(&mut target_db).await.unwrap();
        }
        let refused = sqlite_to_postgres(&path, &db_url).await.unwrap_err().to_string();
        assert!(refused.contains(said), "{name}: {refused}");
        let schema: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('refdesk_schema')::text").fetch_one(&mut target_db).await.unwrap();
        assert_eq!(schema, None, "{name}: no schema made");
        let _ = target_db.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await.unwrap();
    }

    let nowhere = sqlite_to_postgres(&path.with_extension("gone"), &url).await.unwrap_err().to_string();
    assert!(nowhere.contains("no SQLite database"), "{nowhere}");
    target.remove().await;
    b.remove().await;
}

/// Every table's rows as text (a value's text, `∅` for NULL, truth values
/// as 0 and 1), sorted: two databases holding the same rows read the same.
fn sqlite_rows(path: &Path) -> BTreeMap<String, Vec<String>> {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut tables = c.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").unwrap();
    let names: Vec<String> = tables.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    let mut all = BTreeMap::new();
    for t in names {
        let mut cols = c.prepare(&format!("SELECT name FROM pragma_table_info('{t}') ORDER BY name")).unwrap();
        let cols: Vec<String> = cols.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        let each: Vec<String> = cols.iter().map(|c| format!("coalesce(CAST(\"{c}\" AS TEXT), '∅')")).collect();
        let sql = format!("SELECT {} FROM \"{t}\"", each.join(" || char(31) || "));
        let mut st = c.prepare(&sql).unwrap();
        let mut rows: Vec<String> = st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        rows.sort();
        all.insert(t, rows);
    }
    all
}

/// [`sqlite_rows`] of a PostgreSQL database (but its schema's own table).
async fn postgres_rows(url: &str) -> BTreeMap<String, Vec<String>> {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let cols = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> 'refdesk_schema'
         ORDER BY table_name, column_name COLLATE \"C\"",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in cols {
        let (t, col, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let value = if ty == "boolean" { format!("\"{col}\"::int::text") } else { format!("\"{col}\"::text") };
        tables.entry(t).or_default().push(format!("coalesce({value}, '∅')"));
    }
    let mut all = BTreeMap::new();
    for (t, each) in tables {
        let sql = format!("SELECT {} FROM \"{t}\"", each.join(" || chr(31) || "));
        let mut rows: Vec<String> =
            sqlx::query(&sql).fetch_all(&mut c).await.unwrap().iter().map(|r| r.get::<String, _>(0)).collect();
        rows.sort();
        all.insert(t, rows);
    }
    let _ = c.close().await;
    all
}
