//! Upgrades (issue 16): a database written by the previous release, with a
//! known history in it (`tests/fixtures/`, made by
//! `scripts/make-upgrade-fixture.sh` with that release's binary), opens with
//! this refdesk on SQLite and on PostgreSQL: the migrations run, nothing is
//! lost, what the new columns say of old chats is filled in from what was
//! kept, and the store goes on writing. On PostgreSQL several nodes start
//! on it at once and the migrations run once.
//!
//! The history (see the script): 1 served by ann, rated, ended by the
//! patron; 2 abandoned by the patron; 3 transferred to the cooperative's
//! queue, accepted again, coded practice, ended by ann; 4 monitored by erin
//! who left, ended by ann; 5 an offline form.

use refdesk_domain::ids::{LibraryId, QuestionId, SessionId};
use refdesk_domain::Millis;
use refdesk_store::postgres::{PgOptions, PgStore};
use refdesk_store::prelude::*;
use refdesk_store::sqlite::SqliteStore;
use refdesk_store::{EventSink, ReportRange, SessionGroup};
use std::sync::Arc;

const FIXTURE: &str = "v0.1-92606b6";

struct Nothing;

impl EventSink for Nothing {
    fn publish(&self, _: Vec<refdesk_domain::event::Event>) {}
}

/// What each old chat's new columns must say: (id, ended_by, handovers,
/// practice, conferenced).
type Filled = (i64, Option<String>, i64, bool, bool);

fn expected() -> Vec<Filled> {
    let by = |s: &str| Some(s.to_owned());
    vec![
        (1, by("patron"), 0, false, false),
        (2, by("patron"), 0, false, false),
        (3, by("staff"), 1, true, false),
        (4, by("staff"), 0, false, true),
        (5, None, 0, false, false),
    ]
}

/// Everything the old release wrote is read back through the store.
async fn nothing_is_lost(store: &dyn Store) {
    let lines: Vec<usize> = {
        let mut n = Vec::new();
        for id in 1..=5 {
            n.push(store.messages_after(SessionId(id), 0, 1000).await.unwrap().len());
        }
        n
    };
    assert_eq!(lines, vec![8, 2, 6, 6, 1], "every message of every chat");
    // The patron's numbers, which the old release did not keep, count each
    // chat's lines for everyone (its lines for staff carry the last's).
    let mut staff_lines = 0;
    for id in 1..=5 {
        let mut everyone = 0;
        for m in store.messages_after(SessionId(id), 0, 1000).await.unwrap() {
            everyone += u64::from(m.audience == refdesk_domain::chat::Audience::Everyone);
            staff_lines += u64::from(m.audience == refdesk_domain::chat::Audience::Staff);
            assert_eq!(m.patron_seq, everyone, "chat {id}, line {}", m.seq);
        }
    }
    assert!(staff_lines > 0, "the old chats hold lines for staff, which the patron's numbers skip");
    // The last line's number, once kept on the session's row (the old rows
    // said 8, 2, 6, 6, 1), now read from its messages.
    let mut last_seqs = Vec::new();
    for id in 1..=5 {
        last_seqs.push(store.session(SessionId(id)).await.unwrap().expect("the session").last_seq);
    }
    assert_eq!(last_seqs, vec![8, 2, 6, 6, 1], "each chat's last number, as the old rows kept it");
    let served = store.session(SessionId(1)).await.unwrap().unwrap();
    assert_eq!(served.patron_name.as_deref(), Some("Pat Upgrade"));
    assert_eq!(served.patron_email.as_deref(), Some("pat@example.org"));
    for q in 1..=4 {
        let question = store.question(QuestionId(q)).await.unwrap().expect("the question");
        assert!(!store.timeline(QuestionId(q)).await.unwrap().is_empty(), "question {q}'s timeline reads");
        assert_eq!(question.state.read_scale, None);
    }
    assert_eq!(store.question(QuestionId(1)).await.unwrap().unwrap().rating, Some(4));
    let all: Vec<LibraryId> = store.libraries().await.unwrap().iter().map(|l| l.placement.library).collect();
    let range = ReportRange { libraries: all, from: 0, to: Millis::MAX / 2, offset: 0, bucket: 3_600_000 };
    let t = store.session_counts(range.clone(), SessionGroup::Total).await.unwrap().remove(0);
    // The practice chat (3) is left out of the figures.
    assert_eq!((t.chats, t.accepted, t.missed, t.abandoned, t.forms, t.ratings), (3, 2, 0, 1, 1, 1), "{t:?}");
    assert_eq!(store.conferenced(range).await.unwrap(), 1);
}

/// The store goes on: a new chat, accepted, a line, on the old data.
async fn it_goes_on(store: &dyn Store) {
    let library = store.library_by_slug("riverside-main").await.unwrap().unwrap().placement.library;
    let new = refdesk_store::NewSession {
        library,
        patron_name: None,
        patron_email: None,
        question: "After the upgrade?".into(),
        token_hash: "upgrade-token".into(),
        now: 1,
        transcript_to: None,
        transcript_utc_offset: None,
        keys: Default::default(),
        max_waiting: 100,
        max_waiting_per_net: 100,
        max_started_per_net_per_day: 100,
        max_started_in_library_per_day: u32::MAX,
    };
    let id = store.start_session(new).await.unwrap().0.ctx.id;
    assert_eq!(id, SessionId(6), "ids go on from the old ones");
    let ann = store.staff_by_username("ann").await.unwrap().unwrap().staff;
    store.accept(id, ann, Box::new(|_| Ok(())), 2).await.unwrap();
    assert_eq!(store.messages_after(id, 0, 10).await.unwrap().len(), 2);
}

fn sqlite_filled(path: &std::path::Path) -> Vec<Filled> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT id, ended_by, handovers, practice, conferenced FROM sessions WHERE id <= 5 ORDER BY id")
        .unwrap();
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).unwrap();
    rows.collect::<rusqlite::Result<Vec<Filled>>>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_of_the_previous_release_migrates_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refdesk.sqlite3");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{FIXTURE}.sqlite3"));
    std::fs::copy(&fixture, &path).unwrap();
    let kept_at: Vec<i64> = {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut st = c.prepare("SELECT last_message_at FROM sessions WHERE id <= 5 ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    };
    let store = SqliteStore::open(&path, Arc::new(Nothing)).expect("the old database opens and migrates");
    nothing_is_lost(&store).await;
    let mut read_at = Vec::new();
    for id in 1..=5 {
        read_at.push(store.session(SessionId(id)).await.unwrap().unwrap().last_message_at);
    }
    assert_eq!(read_at, kept_at, "each chat's last line's time, as the old rows kept it");
    assert_eq!(sqlite_filled(&path), expected(), "the new columns, filled in from the old rows");
    it_goes_on(&store).await;
    store.close().await;
}

/// A new database on the test PostgreSQL with the fixture's dump loaded
/// (by `psql`: the dump's `COPY … FROM stdin` is psql's).
async fn loaded_postgres() -> (String, String, String) {
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_contract_upgrade_{}_{nanos}", std::process::id());
    let url = refdesk_store::postgres::create_database(&server, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"));
    let dump = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{FIXTURE}.pg.sql"));
    let out = std::process::Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&dump)
        .arg(&url)
        .output()
        .expect("psql runs (scripts/test.sh installs it)");
    assert!(out.status.success(), "the dump loads: {}", String::from_utf8_lossy(&out.stderr));
    (server, name, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_database_of_the_previous_release_migrates_once_with_several_nodes_starting() {
    use sqlx::Connection;
    let (server, name, url) = loaded_postgres().await;
    let open = || PgStore::open(&url, PgOptions::default(), Arc::new(Nothing));
    let (a, b, c) = tokio::join!(open(), open(), open());
    let (a, b, c) = (a.expect("node 1 starts"), b.expect("node 2 starts"), c.expect("node 3 starts"));
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM refdesk_schema ORDER BY version").fetch_all(&mut conn).await.unwrap();
    let n = versions.len() as i64;
    assert_eq!(versions, (1..=n).collect::<Vec<_>>(), "each migration ran once");
    assert!(n > 3, "the old database (version 3) was migrated: {versions:?}");
    nothing_is_lost(&a).await;
    let filled: Vec<(i64, Option<String>, i64, bool, bool)> =
        sqlx::query_as("SELECT id, ended_by, handovers, practice, conferenced FROM sessions WHERE id <= 5 ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(filled, expected(), "the new columns, filled in from the old rows");
    it_goes_on(&b).await;
    let _ = conn.close().await;
    for s in [a, b, c] {
        s.close().await;
    }
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\"")).execute(&mut admin).await.unwrap();
}
