//! The storage contract: one suite, generic over [`Store`], that every
//! backend must pass. It runs on SQLite here; the PostgreSQL backend (next)
//! runs the very same function. Each check names the rule it guards.

use refdesk_domain::chat::{Audience, Author, ConferenceMode, Message, MessageKind};
use refdesk_domain::event::{Availability, Event};
use refdesk_domain::ids::{QuestionId, SessionId, StaffId};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::question::{default_codes, Change, Status};
use refdesk_domain::DomainError;
use refdesk_store::sqlite::SqliteStore;
use refdesk_store::{
    Ending, EventSink, Handover, NewMail, NewMessage, NewSession, NewStaff, QuestionPlan, QuestionQuery, QuestionScope,
    ScopeLevel, Store, StoreError, TransferTo,
};
use refdesk_store::{MailKind, ScriptOwner};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn publish(&self, events: Vec<Event>) {
        self.0.lock().unwrap().extend(events);
    }
}

fn ok() -> refdesk_store::Guard {
    Box::new(|_| Ok(()))
}

fn line(author: Author, kind: MessageKind, body: &str, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        author,
        kind,
        audience: kind.audience(),
        body: body.into(),
        client_id: client_id.map(Into::into),
        system: None,
    }
}

struct World {
    ann: Staff,
    carla: Staff,
    dev: Staff,
    library: refdesk_store::LibraryRecord,
    other: refdesk_store::LibraryRecord,
}

async fn world(store: &dyn Store) -> World {
    assert!(store.is_empty().await.unwrap());
    let coop = store.create_cooperative("Coop", default_codes()).await.unwrap();
    let inst = store.create_institution(coop, "Uni").await.unwrap();
    let library = store.create_library(inst, "main", "Main").await.unwrap();
    let other = store.create_library(inst, "law", "Law").await.unwrap();
    assert!(!store.is_empty().await.unwrap());
    assert!(matches!(
        store.create_library(inst, "main", "Again").await,
        Err(StoreError::Domain(DomainError::Conflict(_)))
    ));
    let mut staff = Vec::new();
    for (u, role, lib) in [
        ("ann", Role::Librarian, &library),
        ("carla", Role::LibraryAdmin, &library),
        ("dev", Role::InstitutionAdmin, &other),
    ] {
        let new = NewStaff {
            library: lib.placement.library,
            username: u.into(),
            display_name: u.to_uppercase(),
            role,
            password_hash: "hash".into(),
        };
        store.create_staff(new).await.unwrap();
        staff.push(store.staff_by_username(u).await.unwrap().unwrap().staff);
    }
    let dev = staff.pop().unwrap();
    let carla = staff.pop().unwrap();
    let ann = staff.pop().unwrap();
    World { ann, carla, dev, library, other }
}

async fn start(store: &dyn Store, w: &World, email: Option<&str>, token: &str, now: i64) -> SessionId {
    let new = NewSession {
        library: w.library.placement.library,
        patron_name: Some("Pat".into()),
        patron_email: email.map(Into::into),
        question: "Where?".into(),
        token_hash: token.into(),
        now,
        transcript_to: None,
        keys: Default::default(),
        max_waiting: u32::MAX,
        max_waiting_per_net: u32::MAX,
    };
    store.start_session(new).await.unwrap().0.ctx.id
}

fn staff_author(s: &Staff) -> Author {
    Author::Staff { id: s.id, name: s.display_name.clone() }
}

/// The contract. `sink` must be the sink the store was opened with.
async fn contract(store: Arc<dyn Store>, sink: Arc<Recorder>) {
    let s = &*store;
    let w = world(s).await;

    // Sign-in tokens are looked up by digest and expire.
    s.create_login("digest", w.ann.id, 100).await.unwrap();
    assert_eq!(s.staff_by_login("digest", 99).await.unwrap().map(|x| x.id), Some(w.ann.id));
    assert!(s.staff_by_login("digest", 100).await.unwrap().is_none(), "expired");

    // A session: waiting, its first message is the question; queue order.
    let a = start(s, &w, Some("pat@example.org"), "t1", 10).await;
    let b = start(s, &w, None, "t2", 20).await;
    assert_eq!(s.session_by_token("t1").await.unwrap().unwrap().ctx.id, a);
    assert_eq!(s.waiting().await.unwrap().iter().map(|e| e.session).collect::<Vec<_>>(), [a, b]);
    assert_eq!(s.queue_ahead(w.library.placement.library, 20, b).await.unwrap(), 1);

    // I6: one accept wins; R1: the question is in the patron's library, answered.
    let (rec, _) = s.accept(a, w.ann.clone(), ok(), 30).await.unwrap();
    assert_eq!(rec.ctx.librarian, Some(w.ann.id));
    assert!(matches!(s.accept(a, w.carla.clone(), ok(), 31).await, Err(StoreError::Domain(DomainError::Conflict(_)))));
    let q = rec.ctx.question.expect("R1: a question at acceptance");
    let question = s.question(q).await.unwrap().unwrap();
    assert_eq!(
        (question.library, question.state.status, question.live),
        (w.library.placement.library, Status::Answered, true)
    );

    // A guard refusing inside the transaction changes nothing.
    let refused = s
        .append(
            a,
            line(staff_author(&w.ann), MessageKind::Message, "no", None),
            Box::new(|_| Err(DomainError::Forbidden("x"))),
            32,
        )
        .await;
    assert!(refused.is_err());

    // I3 / I4: sequence numbers strictly increase; a re-sent client id is stored once.
    let m1 = s
        .append(a, line(Author::Patron { name: "Pat".into() }, MessageKind::Message, "hi", Some("c1")), ok(), 33)
        .await
        .unwrap();
    let again = s
        .append(a, line(Author::Patron { name: "Pat".into() }, MessageKind::Message, "hi", Some("c1")), ok(), 34)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.seq, m1.message.seq);
    let note = s.append(a, line(staff_author(&w.ann), MessageKind::Note, "psst", Some("c1")), ok(), 35).await.unwrap();
    assert!(!note.duplicate, "client ids are per sender");
    let all: Vec<Message> = s.messages_after(a, 0, 100).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless, in order");
    assert_eq!(all.last().unwrap().audience, Audience::Staff);
    assert_eq!(s.messages_after(a, 2, 100).await.unwrap().first().map(|m| m.seq), Some(3));

    // Conferencing (B2, B3): members in the context, a change of hands kept in the timeline.
    let rec = s.conference(a, w.dev.clone(), ConferenceMode::Whisper, ok(), 40).await.unwrap();
    assert_eq!(rec.ctx.member_mode(w.dev.id), Some(ConferenceMode::Whisper));
    let handover = Handover {
        to: TransferTo::Staff(w.dev.clone()),
        stay: true,
        line: line(Author::System, MessageKind::System, "taken over", None),
    };
    let rec = s.transfer(a, w.dev.clone(), handover, ok(), 41).await.unwrap();
    assert_eq!(rec.ctx.librarian, Some(w.dev.id));
    assert_eq!(rec.ctx.member_mode(w.ann.id), Some(ConferenceMode::Whisper), "the previous librarian stays");
    let rec = s.leave(a, w.ann.clone(), ok(), 42).await.unwrap();
    assert!(rec.ctx.members.is_empty());
    assert_eq!(s.sessions_of(w.dev.id).await.unwrap().len(), 1);

    // R6 / R7 through a question-list action: new state, timeline entries, a line, an e-mail.
    let plan: refdesk_store::Plan = Box::new(|q, _| {
        let mut after = q.state.clone();
        after.status = Status::Closed;
        Ok(QuestionPlan {
            state: Some(after),
            entries: vec![Change::Note { body: "closing".into() }],
            line: Some(line(Author::System, MessageKind::System, "closed", None)),
            mail: Some(NewMail {
                kind: MailKind::Answer,
                to: "pat@example.org".into(),
                subject: "s".into(),
                body: "b".into(),
            }),
        })
    });
    let acted = s.act_on_question(q, w.carla.clone(), plan, 50).await.unwrap();
    assert_eq!(acted.question.state.status, Status::Closed);
    let kinds: Vec<&str> =
        s.timeline(q).await.unwrap().iter().map(|t| t.change.kind()).collect::<Vec<_>>().into_iter().collect();
    assert!(kinds.contains(&"status") && kinds.contains(&"note") && kinds.contains(&"librarian"), "{kinds:?}");

    // The outbox: due, failed with a retry time, then sent once.
    let mail = acted.mail.expect("queued with the action");
    assert_eq!(s.due_mail(50, 10).await.unwrap().len(), 1);
    assert_eq!(s.due_mail(50, 10).await.unwrap().len(), 1, "looking changes nothing");
    assert_eq!(s.claim_mail(50, 10, 55).await.unwrap().len(), 1);
    assert!(s.claim_mail(54, 10, 100).await.unwrap().is_empty(), "claimed: not due for another mailer");
    assert_eq!(s.next_mail_due().await.unwrap(), Some(55), "due again when the claim runs out");
    s.mail_failed(mail, "down", 60).await.unwrap();
    assert!(s.due_mail(59, 10).await.unwrap().is_empty());
    assert_eq!(s.next_mail_due().await.unwrap(), Some(60));
    s.mail_sent(mail, 61).await.unwrap();
    assert!(s.due_mail(i64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(s.mail(mail).await.unwrap().unwrap().attempts, 2);

    // The question list: scope and views.
    let query = |covers, view| QuestionQuery {
        scope: QuestionScope { covers, participant: StaffId(0) },
        view,
        status: None,
        code: None,
        from: None,
        to: None,
        librarian: None,
        library: None,
        text: None,
        before: None,
        limit: 50,
    };
    use refdesk_domain::actions::View;
    assert_eq!(
        s.questions(query(ScopeLevel::Library(w.library.placement.library), View::Closed)).await.unwrap().len(),
        1
    );
    assert!(s.questions(query(ScopeLevel::Library(w.other.placement.library), View::All)).await.unwrap().is_empty());
    let mut search = query(ScopeLevel::Institution(w.library.placement.institution), View::All);
    search.text = Some("psst".into());
    assert_eq!(s.questions(search).await.unwrap().len(), 1, "search reaches the transcript");

    // Ending and coding: no longer live (R5).
    s.end(a, staff_author(&w.dev), ok(), Box::new(|_, _| None), Ending::default(), 70).await.unwrap();
    assert!(matches!(
        s.end(a, staff_author(&w.dev), ok(), Box::new(|_, _| None), Ending::default(), 71).await,
        Err(StoreError::Domain(DomainError::Conflict(_)))
    ));
    let decide: refdesk_store::Decide = Box::new(|before, _, codes| {
        let code = codes.iter().find(|c| c.key == "answered").unwrap();
        Ok(refdesk_domain::question::apply_code(before, code, Some(StaffId(1)), None))
    });
    s.set_code(a, "answered".into(), w.dev.clone(), ok(), decide, 72).await.unwrap();
    assert!(!s.question(q).await.unwrap().unwrap().live);
    s.rate(a, 5, Some("great".into())).await.unwrap();
    assert_eq!(s.question(q).await.unwrap().unwrap().rating, Some(5));

    // A patron leaving the queue with an address leaves a missed-chat question.
    s.end(
        b,
        Author::Patron { name: "Pat".into() },
        ok(),
        Box::new(|_, _| None),
        Ending { missed: Some("missed".into()), last_words: None },
        80,
    )
    .await
    .unwrap();
    assert!(s.session(b).await.unwrap().unwrap().ctx.question.is_none(), "no address, no question");

    // Staff: availability and sign-off, IM, scripts, policies, codes.
    s.set_availability(w.ann.id, Availability::OnDuty, 100).await.unwrap();
    s.touch(vec![w.ann.id], 200).await.unwrap();
    assert!(s.sign_off_stale(150).await.unwrap().is_empty());
    assert_eq!(s.sign_off_stale(201).await.unwrap().len(), 1);
    let (m, dup) = s.im_send(w.ann.clone(), w.dev.id, "hello".into(), Some("i1".into()), 300).await.unwrap();
    assert!(!dup);
    assert!(s.im_send(w.ann.clone(), w.dev.id, "hello".into(), Some("i1".into()), 301).await.unwrap().1, "I4 for IM");
    assert_eq!(s.im_after(w.dev.id, w.ann.id, 0, 10).await.unwrap(), vec![m]);
    assert_eq!(s.im_conversations(w.dev.id).await.unwrap()[0].unread, 1);
    s.im_read(w.dev.id, w.ann.id, 1).await.unwrap();
    assert_eq!(s.im_conversations(w.dev.id).await.unwrap()[0].unread, 0);
    let script = s.create_script(ScriptOwner::Personal(w.ann.id), "Hi".into(), "Hello!".into(), 400).await.unwrap();
    assert_eq!(s.scripts_for(&w.ann).await.unwrap(), vec![script.clone()]);
    assert!(s.scripts_for(&w.carla).await.unwrap().is_empty());
    s.delete_script(script.id).await.unwrap();
    s.set_policy(w.library.placement.library, "Fines: none".into(), w.carla.id, 500).await.unwrap();
    assert_eq!(s.policy(w.library.placement.library).await.unwrap().unwrap().body, "Fines: none");
    let mut code = default_codes().remove(0);
    code.label = "Answered fully".into();
    s.put_code(w.library.placement.cooperative, code).await.unwrap();
    assert_eq!(s.codes(w.library.placement.cooperative).await.unwrap()[0].label, "Answered fully");

    // A missing session is not found, whatever the write.
    assert!(matches!(
        s.set_transcript_to(SessionId(999_999), None).await,
        Err(StoreError::Domain(DomainError::NotFound(_)))
    ));

    // Under concurrency: of many simultaneous accepts exactly one wins (I6);
    // simultaneous sends get gapless sequence numbers, and each client id
    // is stored once however often it is re-sent (I4).
    let c = start(s, &w, None, "t3", 600).await;
    let accepts: Vec<_> = (0..8)
        .map(|i| {
            let (store, by) = (store.clone(), if i % 2 == 0 { w.ann.clone() } else { w.dev.clone() });
            tokio::spawn(async move { store.accept(c, by, ok(), 601).await.is_ok() })
        })
        .collect();
    let mut won = 0;
    for a in accepts {
        won += usize::from(a.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one accept wins");
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let author = Author::Patron { name: "Pat".into() };
            let cid = format!("c{}", i % 20);
            tokio::spawn(async move {
                store.append(c, line(author, MessageKind::Message, "x", Some(&cid)), ok(), 602).await.unwrap()
            })
        })
        .collect();
    let mut fresh = 0;
    for send in sends {
        fresh += usize::from(!send.await.unwrap().duplicate);
    }
    assert_eq!(fresh, 20, "one message per client id");
    let seqs: Vec<u64> = s.messages_after(c, 0, 1000).await.unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=22).collect::<Vec<u64>>(), "question, joined line, then 20 gapless");

    // I2: events are published only for committed writes, in commit order.
    let published: Vec<u64> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Message { message, .. } if message.session == a => Some(message.seq),
            _ => None,
        })
        .collect();
    let stored: Vec<u64> = s.messages_after(a, 0, 1000).await.unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(published, stored, "each committed message published once, in order; refused ones never");
    let _ = QuestionId(0);

    // A clean shutdown: once closed, reads and writes say so, and closing
    // again does nothing.
    s.close().await;
    assert!(matches!(s.messages_after(a, 0, 10).await, Err(StoreError::Closed)));
    assert!(matches!(s.create_cooperative("Late", default_codes()).await, Err(StoreError::Closed)));
    s.close().await;
}

/// The PostgreSQL server the tests use: `REFDESK_TEST_POSTGRES`, or the one
/// `scripts/test.sh` makes sure is running. Each run gets a new database.
async fn fresh_postgres() -> String {
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_contract_{}_{nanos}", std::process::id());
    refdesk_store::postgres::create_database(&server, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_contract_holds_on_postgresql() {
    let url = fresh_postgres().await;
    let sink = Arc::new(Recorder::default());
    let options = refdesk_store::postgres::PgOptions::default();
    let store = Arc::new(refdesk_store::postgres::PgStore::open(&url, options, sink.clone()).await.unwrap());
    contract(store, sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_contract_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Recorder::default());
    let store = Arc::new(SqliteStore::open(&dir.path().join("contract.sqlite3"), sink.clone()).unwrap());
    contract(store, sink).await;
}

/// The PostgreSQL that accepts TLS connections only, which `scripts/test.sh`
/// starts on localhost:5433 with a certificate from its test CA:
/// `REFDESK_TEST_POSTGRES_TLS`, or that instance's URL.
fn postgres_tls_server() -> String {
    std::env::var("REFDESK_TEST_POSTGRES_TLS").unwrap_or_else(|_| {
        "postgres://postgres@localhost:5433/postgres?sslmode=verify-full&sslrootcert=/tmp/refdesk-test-tls/ca.pem"
            .into()
    })
}

/// The TLS server's URL with `query` in place of its own.
fn postgres_tls_with(query: &str) -> String {
    let server = postgres_tls_server();
    let base = server.split_once('?').map_or(server.as_str(), |(base, _)| base);
    format!("{base}?{query}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_contract_holds_on_postgresql_over_tls() {
    // The server refuses anything but TLS, and the URL asks for the
    // certificate to chain to the test CA and to name the host: every
    // connection of the contract is verified TLS, or the test fails.
    let server = postgres_tls_server();
    assert!(server.contains("sslmode=verify-full"), "the TLS test runs with verify-full: {server}");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_contract_{}_{nanos}", std::process::id());
    let url = refdesk_store::postgres::create_database(&server, &name).await.unwrap_or_else(|e| {
        panic!("the TLS-only PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}")
    });
    assert!(url.contains("sslmode=verify-full"), "the new database is reached over TLS too: {url}");
    let sink = Arc::new(Recorder::default());
    let options = refdesk_store::postgres::PgOptions::default();
    let store = Arc::new(refdesk_store::postgres::PgStore::open(&url, options, sink.clone()).await.unwrap());
    contract(store, sink).await;
}

#[tokio::test]
async fn a_plain_connection_to_a_postgresql_that_requires_tls_is_refused_with_a_clear_error() {
    let plain = postgres_tls_with("sslmode=disable").replacen("postgres@", "postgres:hunter2@", 1);
    let options = refdesk_store::postgres::PgOptions::default();
    let refused = refdesk_store::postgres::PgStore::open(&plain, options, Arc::new(Recorder::default())).await;
    let e = refused.err().expect("a plain connection is refused").to_string();
    assert!(e.contains("localhost:5433") && e.contains("sslmode disable"), "names the server and the mode: {e}");
    assert!(e.contains("accepts only TLS") && e.contains("sslmode=verify-full"), "says what to change: {e}");
    assert!(!e.contains("hunter2"), "never the password: {e}");
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused_with_a_clear_error() {
    // No sslrootcert: the test CA is not among the public ones compiled in.
    let unverified = postgres_tls_with("sslmode=verify-full");
    let options = refdesk_store::postgres::PgOptions::default();
    let refused = refdesk_store::postgres::PgStore::open(&unverified, options, Arc::new(Recorder::default())).await;
    let e = refused.err().expect("an untrusted certificate is refused").to_string();
    assert!(e.contains("localhost:5433") && e.contains("TLS"), "{e}");
    assert!(e.contains("sslrootcert"), "says what to check: {e}");
}

// --- one test per behaviour, on both backends ----------------------------------

/// A fresh SQLite store (in the folder returned, to keep while it is used)
/// and a fresh PostgreSQL store, each with the world.
async fn both_backends() -> (tempfile::TempDir, Vec<(&'static str, Arc<dyn Store>, World)>) {
    let dir = tempfile::tempdir().unwrap();
    let lite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("behaviour.sqlite3"), Arc::new(Recorder::default())).unwrap());
    let url = fresh_postgres().await;
    let options = refdesk_store::postgres::PgOptions::default();
    let pg: Arc<dyn Store> =
        Arc::new(refdesk_store::postgres::PgStore::open(&url, options, Arc::new(Recorder::default())).await.unwrap());
    let mut out = Vec::new();
    for (name, store) in [("sqlite", lite), ("postgres", pg)] {
        let w = world(&*store).await;
        out.push((name, store, w));
    }
    (dir, out)
}

fn keyed(w: &World, token: &str, browser: Option<&str>, net: Option<&str>, max: u32, per_net: u32) -> NewSession {
    NewSession {
        library: w.library.placement.library,
        patron_name: None,
        patron_email: None,
        question: "Q".into(),
        token_hash: token.into(),
        now: 1,
        transcript_to: None,
        keys: refdesk_store::PatronKeys { browser: browser.map(Into::into), net: net.map(Into::into) },
        max_waiting: max,
        max_waiting_per_net: per_net,
    }
}

/// The drifts issue 14 found: a missing row and an ended chat answer the
/// same on both backends (404 and 409, never a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rows_and_ended_chats_answer_alike_on_both_backends() {
    let (_dir, stores) = both_backends().await;
    for (name, s, w) in stores {
        let missing = SessionId(999_999);
        let r = s.set_transcript_to(missing, Some("a@example.org".into())).await;
        assert!(matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))), "{name}: {r:?}");
        let a = start(&*s, &w, None, &format!("{name}-t1"), 1).await;
        s.end(a, Author::System, ok(), Box::new(|_, _| None), Ending::default(), 2).await.unwrap();
        let r = s.set_transcript_to(a, Some("a@example.org".into())).await;
        assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{name}: {r:?}");
        let r = s.im_read(w.ann.id, StaffId(999_999), 1).await;
        assert!(
            matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))),
            "{name}: a peer that does not exist: {r:?}"
        );
        let r = s.block_by_id(999_999).await.unwrap();
        assert!(r.is_none(), "{name}");
    }
}

/// Waiting chats are capped per library and per network inside the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_caps_hold_inside_the_start() {
    let (_dir, stores) = both_backends().await;
    for (name, s, w) in stores {
        s.start_session(keyed(&w, &format!("{name}-q1"), None, Some("net-a"), 3, 1)).await.unwrap();
        let r = s.start_session(keyed(&w, &format!("{name}-q2"), None, Some("net-a"), 3, 1)).await;
        assert!(
            matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many_waiting", .. }))),
            "{name}: {r:?}"
        );
        s.start_session(keyed(&w, &format!("{name}-q3"), None, Some("net-b"), 3, 1)).await.unwrap();
        s.start_session(keyed(&w, &format!("{name}-q4"), None, None, 3, 1)).await.unwrap();
        let r = s.start_session(keyed(&w, &format!("{name}-q5"), None, Some("net-c"), 3, 1)).await;
        assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "queue_full", .. }))), "{name}: {r:?}");
    }
}

/// A block matches either key until it runs out or is lifted; the
/// question's timeline records both; a chat with no key cannot be blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_match_either_key_until_lifted_or_run_out() {
    let (_dir, stores) = both_backends().await;
    for (name, s, w) in stores {
        let (rec, _) =
            s.start_session(keyed(&w, &format!("{name}-b1"), Some("browser-1"), Some("net-1"), 99, 99)).await.unwrap();
        let id = rec.ctx.id;
        s.accept(id, w.ann.clone(), ok(), 2).await.unwrap();
        let new =
            refdesk_store::NewBlock { session: id, by: w.ann.clone(), reason: "abuse".into(), expires_at: 100, now: 3 };
        let block = s.block(new).await.unwrap();
        assert_eq!(block.reason, "abuse");
        assert_eq!(block.created_by_name, "ANN");
        let coop = w.library.placement.cooperative;
        let keys = |b: Option<&str>, n: Option<&str>| refdesk_store::PatronKeys {
            browser: b.map(Into::into),
            net: n.map(Into::into),
        };
        assert!(
            s.active_block(coop, keys(Some("browser-1"), Some("other")), 50).await.unwrap().is_some(),
            "{name}: by browser"
        );
        assert!(s.active_block(coop, keys(None, Some("net-1")), 50).await.unwrap().is_some(), "{name}: by network");
        assert!(s.active_block(coop, keys(Some("x"), Some("y")), 50).await.unwrap().is_none(), "{name}: others");
        assert!(s.active_block(coop, keys(Some("browser-1"), None), 100).await.unwrap().is_none(), "{name}: ran out");
        let listed = s.blocks(ScopeLevel::Library(w.library.placement.library), 10).await.unwrap();
        assert_eq!(listed.len(), 1, "{name}");
        assert!(
            s.blocks(ScopeLevel::Library(w.other.placement.library), 10).await.unwrap().is_empty(),
            "{name}: scope"
        );
        let lifted = s.lift_block(block.id, w.carla.clone(), 4).await.unwrap();
        assert_eq!(lifted.lifted_at, Some(4));
        assert_eq!(lifted.lifted_by_name.as_deref(), Some("CARLA"));
        assert!(s.active_block(coop, keys(Some("browser-1"), None), 50).await.unwrap().is_none(), "{name}: lifted");
        s.lift_block(block.id, w.carla.clone(), 5).await.unwrap();
        let q = s.session(id).await.unwrap().unwrap().ctx.question.unwrap();
        let kinds: Vec<&str> = s.timeline(q).await.unwrap().iter().map(|t| t.change.kind()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "blocked").count(), 1, "{name}: {kinds:?}");
        assert_eq!(
            kinds.iter().filter(|k| **k == "unblocked").count(),
            1,
            "{name}: lifting twice records once: {kinds:?}"
        );
        let bare = start(&*s, &w, None, &format!("{name}-b2"), 6).await;
        let new =
            refdesk_store::NewBlock { session: bare, by: w.ann.clone(), reason: "x".into(), expires_at: 100, now: 7 };
        let r = s.block(new).await;
        assert!(
            matches!(r, Err(StoreError::Domain(DomainError::Invalid { .. }))),
            "{name}: nothing to block by: {r:?}"
        );
    }
}

/// An expiring chat's last words and end are one write; a chat that already
/// has a question keeps it, with the missed-chat note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ending_writes_its_last_words_and_keeps_a_question() {
    let (_dir, stores) = both_backends().await;
    for (name, s, w) in stores {
        let a = start(&*s, &w, Some("pat@example.org"), &format!("{name}-e1"), 1).await;
        s.accept(a, w.ann.clone(), ok(), 2).await.unwrap();
        let handover = Handover {
            to: TransferTo::Queue { library: w.library.placement, coop_now: false },
            stay: false,
            line: line(Author::System, MessageKind::System, "back to the queue", None),
        };
        s.transfer(a, w.ann.clone(), handover, ok(), 3).await.unwrap();
        let ending = Ending { missed: Some("Missed chat: nobody".into()), last_words: Some("Sorry".into()) };
        s.end(a, Author::System, ok(), Box::new(|_, _| None), ending, 4).await.unwrap();
        let lines = s.messages_after(a, 0, 100).await.unwrap();
        let n = lines.len();
        assert_eq!(lines[n - 2].body, "Sorry", "{name}: the last words, then the end line");
        assert_eq!(lines[n - 2].audience, Audience::Everyone, "{name}");
        let q = s.session(a).await.unwrap().unwrap().ctx.question.expect("its question stays");
        let notes =
            s.timeline(q).await.unwrap().into_iter().filter(|t| matches!(t.change, Change::Note { .. })).count();
        assert_eq!(notes, 1, "{name}");
        assert_eq!(s.transcripts_to("PAT@example.org", 0).await.unwrap(), 0, "{name}: no transcript was asked");
    }
}
