//! The SQLite store on a real file: group commit keeps per-session order,
//! publishes only after commit and in commit order, and a failing write
//! fails alone.

use refdesk_domain::chat::{Audience, Author, MessageKind};
use refdesk_domain::event::Event;
use refdesk_domain::ids::SessionId;
use refdesk_domain::org::Role;
use refdesk_domain::question::default_codes;
use refdesk_domain::DomainError;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_steady_writes_and_reads() {
    // Many sessions, each message in a different one: every commit dirties
    // pages all over the messages table, as at a busy desk. About 150 MiB
    // go through the log; with passive checkpoints alone it kept nearly all
    // of it (it only restarts once every frame is checkpointed, which steady
    // writes never allow).
    let (dir, store, _sink, _) = setup().await;
    let db = dir.path().join("t.sqlite3");
    let lib = store.library_by_slug("lib").await.unwrap().unwrap().placement.library;
    let mut sessions = Vec::new();
    for i in 0..200 {
        let new = NewSession {
            library: lib,
            patron_name: None,
            patron_email: None,
            question: "q".into(),
            token_hash: format!("wal-{i}"),
            transcript_to: None,
            now: 1,
        };
        sessions.push(store.start_session(new).await.unwrap().0.ctx.id);
    }
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
