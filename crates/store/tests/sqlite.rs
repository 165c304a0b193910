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
