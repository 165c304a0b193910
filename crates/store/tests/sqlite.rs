//! The SQLite store on a real file: group commit keeps per-session order,
//! publishes only after commit and in commit order, and a failing write
//! fails alone — a panicking one too — and `health` says whether the
//! writer can commit.

use refdesk_domain::chat::{Audience, Author, MessageKind};
use refdesk_domain::event::Event;
use refdesk_domain::ids::SessionId;
use refdesk_domain::org::Role;
use refdesk_domain::question::default_codes;
use refdesk_domain::DomainError;
use refdesk_store::prelude::*;
use refdesk_store::sqlite::SqliteStore;
use refdesk_store::{EventSink, NewMessage, NewSession, NewStaff, Store};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn publish(&self, events: Vec<Event>) {
        self.0.lock().unwrap().extend(events);
    }
}

async fn setup() -> (tempfile::TempDir, Arc<SqliteStore>, Arc<Recorder>, SessionId) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Recorder::default());
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), sink.clone()).unwrap());
    let coop = store.create_cooperative("c", default_codes()).await.unwrap();
    let inst = store.create_institution(coop, "i").await.unwrap();
    let lib = store.create_library(inst, "lib", "Library").await.unwrap();
    store
        .create_staff(NewStaff {
            library: lib.placement.library,
            username: "s".into(),
            display_name: "S".into(),
            role: Role::Librarian,
            password_hash: "x".into(),
        })
        .await
        .unwrap();
    let (rec, _) = store
        .start_session(NewSession {
            library: lib.placement.library,
            patron_name: None,
            patron_email: None,
            question: "q".into(),
            token_hash: "t".into(),
            transcript_to: None,
            transcript_utc_offset: None,
            keys: Default::default(),
            max_waiting: u32::MAX,
            max_waiting_per_net: u32::MAX,
            max_started_per_net_per_day: u32::MAX,
            max_started_in_library_per_day: u32::MAX,
            now: 1,
        })
        .await
        .unwrap();
    (dir, store, sink, rec.ctx.id)
}

fn line(body: String, client_id: Option<String>) -> NewMessage {
    NewMessage {
        author: Author::Patron { name: "P".into() },
        kind: MessageKind::Message,
        audience: Audience::Everyone,
        body,
        client_id,
        system: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_gapless_sequence_numbers_published_in_order() {
    let (_dir, store, sink, session) = setup().await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.append(session, line(format!("m{i}"), Some(format!("c{i}"))), Box::new(|_| Ok(())), 2).await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap().message.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=301).collect::<Vec<u64>>(), "the question is seq 1; then no gap, no duplicate");
    let published: Vec<u64> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Message { message, .. } => Some(message.seq),
            _ => None,
        })
        .collect();
    assert_eq!(published, (1..=301).collect::<Vec<u64>>(), "published once each, in sequence order");
}

#[tokio::test]
async fn a_refused_write_fails_alone_and_publishes_nothing() {
    let (_dir, store, sink, session) = setup().await;
    let before = sink.0.lock().unwrap().len();
    let refused = store.append(session, line("no".into(), None), Box::new(|_| Err(DomainError::Forbidden("nope"))), 2);
    let accepted = store.append(session, line("yes".into(), None), Box::new(|_| Ok(())), 2);
    let (refused, accepted) = tokio::join!(refused, accepted);
    assert!(refused.is_err());
    assert_eq!(accepted.unwrap().message.seq, 2);
    let all = store.messages_after(session, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["q", "yes"]);
    assert_eq!(sink.0.lock().unwrap().len(), before + 1);
}

/// How many cooperatives named `name` the file holds, read beside the store.
fn cooperatives_named(db: &std::path::Path, name: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM cooperatives WHERE name = ?1", [name], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_panics_fails_alone_and_the_writer_keeps_serving() {
    let (dir, store, _sink, session) = setup().await;
    // A panic inside a job, in the same batches as good writes: a guard
    // that panics, among appends that do not.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let guard: refdesk_store::Guard = if i % 10 == 5 {
                    Box::new(|_| panic!("a guard panicked on purpose"))
                } else {
                    Box::new(|_| Ok(()))
                };
                store.append(session, line(format!("m{i}"), None), guard, 2).await
            })
        })
        .collect();
    let mut stored = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.unwrap();
        if i % 10 == 5 {
            let Err(err) = out else { panic!("the panicking job fails") };
            assert!(err.to_string().contains("panicked"), "{err}");
        } else {
            out.unwrap();
            stored += 1;
        }
    }
    assert_eq!(store.messages_after(session, 0, 100).await.unwrap().len(), 1 + stored, "the others are stored");

    // What a job wrote before it panicked is rolled back with it.
    let db = dir.path().join("t.sqlite3");
    assert!(store.write_that_panics("boom").await.is_err());
    assert_eq!(cooperatives_named(&db, "boom"), 0);

    // And the writer goes on: the next write commits, and it is healthy.
    let next = store.append(session, line("after".into(), None), Box::new(|_| Ok(())), 3).await.unwrap();
    assert_eq!(next.message.body, "after");
    store.create_cooperative("after the panic", default_codes()).await.unwrap();
    assert_eq!(cooperatives_named(&db, "after the panic"), 1);
    store.health().await.expect("the writer can commit");
}

/// A file the kernel refuses to write is not healthy, though batches that
/// change nothing still commit on it (they write nothing): the ping writes.
/// `chattr +i` makes it so even for root, and on ext4 also for descriptors
/// already open (see `api/ready.rs` in the server's tests for why not
/// `chmod` or a read-only remount). Where it cannot be set the test fails,
/// saying why: it is never skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_while_the_file_cannot_be_written() {
    let (dir, store, _sink, _session) = setup().await;
    let files = [dir.path().join("t.sqlite3"), dir.path().join("t.sqlite3-wal")];
    let set = std::process::Command::new("chattr").arg("+i").args(&files).status();
    assert!(
        set.is_ok_and(|s| s.success()),
        "chattr +i on the database (needs root and a filesystem such as ext4, as scripts/test.sh has)"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let unchanged = store.sign_off_stale(0).await;
    let health = store.health().await;
    let _ = std::process::Command::new("chattr").arg("-i").args(&files).status();
    assert!(unchanged.is_ok_and(|gone| gone.is_empty()), "a batch that changes nothing commits");
    let err = health.expect_err("a file that cannot be written is not healthy");
    assert!(err.to_string().contains("failed to commit"), "{err}");
    store.health().await.expect("healthy again once it can be written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_whether_the_writer_can_commit() {
    let (dir, store, _sink, _session) = setup().await;
    store.health().await.expect("healthy after the setup's writes");
    // Idle for longer than a fresh commit counts: health commits a ping (which writes).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    store.health().await.expect("healthy when idle");

    // Another process holds the write lock: reads go on, commits cannot.
    let other = rusqlite::Connection::open(dir.path().join("t.sqlite3")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let began = std::time::Instant::now();
    let err = store.health().await.expect_err("a writer that cannot commit is not healthy");
    assert!(began.elapsed() < refdesk_store::HEALTH_WAIT + std::time::Duration::from_secs(1), "it answers in time");
    assert!(err.to_string().contains("committed no write"), "{err}");
    assert!(store.answers().await.is_ok(), "reads still work: a read is no readiness check");
    // Asked again and again, it queues no more than one ping.
    for _ in 0..3 {
        assert!(store.health().await.is_err());
    }

    // The lock is released: healthy again by itself.
    other.execute_batch("ROLLBACK").unwrap();
    store.health().await.expect("healthy once the lock is gone");
    store.close().await;
    assert!(store.health().await.is_err(), "a closed store is not healthy");
}

#[tokio::test]
async fn reopening_the_file_keeps_everything_and_migrations_are_idempotent() {
    let (dir, store, _sink, session) = setup().await;
    store.append(session, line("kept".into(), Some("k".into())), Box::new(|_| Ok(())), 2).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(refdesk_store::NoSink)).unwrap();
    let all = store.messages_after(session, 0, 100).await.unwrap();
    assert_eq!(all.last().unwrap().body, "kept");
    let again = store.append(session, line("kept".into(), Some("k".into())), Box::new(|_| Ok(())), 3).await.unwrap();
    assert!(again.duplicate, "I4 holds across a reopen");
}

/// The size of the write-ahead log beside `db` (0 when there is none).
fn wal_size(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// `n` waiting chats in the library of [`setup`].
async fn many_sessions(store: &SqliteStore, n: usize) -> Vec<SessionId> {
    let lib = store.library_by_slug("lib").await.unwrap().unwrap().placement.library;
    let mut sessions = Vec::new();
    for i in 0..n {
        let new = NewSession {
            library: lib,
            patron_name: None,
            patron_email: None,
            question: "q".into(),
            token_hash: format!("wal-{i}"),
            transcript_to: None,
            transcript_utc_offset: None,
            keys: Default::default(),
            max_waiting: u32::MAX,
            max_waiting_per_net: u32::MAX,
            max_started_per_net_per_day: u32::MAX,
            max_started_in_library_per_day: u32::MAX,
            now: 1,
        };
        sessions.push(store.start_session(new).await.unwrap().0.ctx.id);
    }
    sessions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_reader_such_as_a_backup_holds_the_writer_back_only_briefly() {
    // `refdesk backup` reads one snapshot from a connection of its own for
    // the whole copy. A RESTART checkpoint waits for such a reader while it
    // holds the writer's lock: it must give up soon, and not retry at once.
    let (dir, store, _sink, _) = setup().await;
    let db = dir.path().join("t.sqlite3");
    let sessions = many_sessions(&store, 200).await;
    let reader = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    let body = "x".repeat(1500);
    let began = std::time::Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    // Past the restart mark (16 MiB), then on for a few seconds more.
    while wal_size(&db) < 24 << 20 || began.elapsed() < std::time::Duration::from_secs(4) {
        assert!(began.elapsed() < std::time::Duration::from_secs(60), "the log did not grow");
        let writes: Vec<_> = sessions
            .iter()
            .map(|s| {
                let (store, s, body) = (store.clone(), *s, body.clone());
                tokio::spawn(async move {
                    let t = std::time::Instant::now();
                    store.append(s, line(body, None), Box::new(|_| Ok(())), 2).await.unwrap();
                    t.elapsed()
                })
            })
            .collect();
        for w in writes {
            slowest = slowest.max(w.await.unwrap());
        }
    }
    reader.execute_batch("COMMIT").unwrap();
    assert!(slowest < std::time::Duration::from_secs(2), "an append waited {slowest:?} behind a checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_steady_writes_and_reads() {
    // Many sessions, each message in a different one: every commit dirties
    // pages all over the messages table, as at a busy desk. About 150 MiB
    // go through the log; with passive checkpoints alone it kept nearly all
    // of it (it only restarts once every frame is checkpointed, which steady
    // writes never allow).
    let (dir, store, _sink, _) = setup().await;
    let db = dir.path().join("t.sqlite3");
    let sessions = many_sessions(&store, 200).await;
    let body = "x".repeat(1500);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers all along, as the desk's connections are.
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, stop, sessions) = (store.clone(), stop.clone(), sessions.clone());
            tokio::spawn(async move {
                let mut reads = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let s = sessions[(reads * 7 + r) % sessions.len()];
                    store.messages_after(s, 0, 50).await.unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut largest = 0;
    for round in 0..40 {
        let writes: Vec<_> = sessions
            .iter()
            .map(|s| {
                let (store, s, body) = (store.clone(), *s, body.clone());
                tokio::spawn(async move { store.append(s, line(body, None), Box::new(|_| Ok(())), 2).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        largest = largest.max(wal_size(&db));
        assert!(largest < 48 << 20, "after round {round} the WAL is {} MiB (bound 48 MiB)", largest >> 20);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    // Every message is there: 40 on each session, after the question.
    for s in &sessions {
        assert_eq!(store.messages_after(*s, 1, 100).await.unwrap().len(), 40);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_finishes_queued_writes_then_removes_the_write_ahead_log() {
    let (dir, store, _sink, session) = setup().await;
    let db = dir.path().join("t.sqlite3");
    let writes: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.append(session, line(format!("m{i}"), Some(format!("c{i}"))), Box::new(|_| Ok(())), 2).await
            })
        })
        .collect();
    // Let some of them reach the writer's queue, then close behind them.
    tokio::task::yield_now().await;
    store.close().await;
    let mut acknowledged = Vec::new();
    for w in writes {
        match w.await.unwrap() {
            Ok(a) => acknowledged.push(a.message.body),
            Err(refdesk_store::StoreError::Closed) => {}
            Err(e) => panic!("a write failed with {e}, not Closed"),
        }
    }
    assert!(wal_size(&db) == 0, "a clean close leaves no write-ahead log");
    drop(store);
    // Everything acknowledged before the close is on disk.
    let again = SqliteStore::open(&db, Arc::new(Recorder::default())).unwrap();
    let mut stored: Vec<String> =
        again.messages_after(session, 1, 1000).await.unwrap().into_iter().map(|m| m.body).collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
}
