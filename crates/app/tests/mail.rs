//! What a mailer has taken from the outbox is still checked before it is
//! sent: a patron erased meanwhile gets no e-mail. On a real SQLite file
//! with the demo cooperative, e-mail written as files.

use refdesk_app::mail::{MailConfig, Mailer};
use refdesk_app::{bus::Bus, demo, App, Clock, Limits, StartChat};
use refdesk_domain::event::Availability;
use refdesk_domain::ids::SessionId;
use refdesk_domain::privacy::Transcripts;
use refdesk_store::prelude::*;
use refdesk_store::sqlite::SqliteStore;
use std::sync::Arc;

/// A chat whose patron asked for the transcript, ended: its e-mail waits
/// in the outbox.
async fn ended_chat_with_transcript(app: &App, email: &str) -> SessionId {
    let form = StartChat {
        name: Some("Pat".into()),
        email: Some(email.into()),
        question: "Do you have the atlas?".into(),
        transcript: true,
        browser: None,
        utc_offset: None,
    };
    let session = app.start_chat("riverside-main", form, None).await.unwrap().session;
    let (_, ann) = app.login("ann", demo::PASSWORD, true).await.unwrap();
    app.set_availability(&ann, Availability::OnDuty).await.unwrap();
    app.accept(&ann, session).await.unwrap();
    app.staff_end(&ann, session).await.unwrap();
    session
}

/// The demo cooperative on a SQLite file in `dir`.
async fn demo_app(dir: &std::path::Path) -> (Arc<SqliteStore>, App) {
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store.clone(), bus, Limits::default(), Clock::system());
    // As the server keeps it: an erasure on request is noted there first.
    app.keep_erasures(dir.join(refdesk_app::erasures::FILE));
    demo::load(&app).await.unwrap();
    (store, app)
}

fn files(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("mail")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_taken_by_the_mailer_is_not_sent_once_its_patron_is_erased() {
    let dir = tempfile::tempdir().unwrap();
    let (store, app) = demo_app(dir.path()).await;
    let erased = ended_chat_with_transcript(&app, "erase.me@example.org").await;
    ended_chat_with_transcript(&app, "keep.me@example.org").await;

    // The mailer takes both (as its pass does), then the patron is erased
    // while it is still busy with earlier e-mail.
    let now = Clock::system().now();
    let taken = store.claim_mail(now, 10, now + 600_000).await.unwrap();
    assert_eq!(taken.len(), 2, "both transcripts were waiting");
    let (_, carla) = app.login("carla", demo::PASSWORD, true).await.unwrap();
    let n = app.erase_patron(&carla, Some("erase.me@example.org"), vec![erased], Transcripts::Delete).await.unwrap();
    assert_eq!(n, 1);

    let mailer = Mailer::new(app.clone(), MailConfig::default(), dir.path().to_path_buf()).unwrap();
    assert_eq!(mailer.deliver_claimed(taken).await, 1, "only the e-mail still in the outbox is sent");
    let sent = files(dir.path());
    assert_eq!(sent.len(), 1, "{sent:?}");
    let text = std::fs::read_to_string(dir.path().join("mail").join(&sent[0])).unwrap();
    assert!(text.contains("keep.me@example.org"), "the other patron's transcript went");
    assert!(!text.contains("erase.me"), "nothing of the erased patron's");
    assert_eq!(store.next_mail_due().await.unwrap(), None, "nothing left to send");
}

/// With `mail.hold` (after a restore, until the erasures made since the
/// backup are repeated) every e-mail stays in the outbox, none is written
/// or sent; without it, the same mailer sends what waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_mailer_sends_nothing_and_the_mail_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, app) = demo_app(dir.path()).await;
    ended_chat_with_transcript(&app, "held@example.org").await;

    let run = |hold: bool| {
        let config = MailConfig { hold, ..MailConfig::default() };
        let mailer = Mailer::new(app.clone(), config, dir.path().to_path_buf()).unwrap();
        mailer.run(tokio::time::sleep(std::time::Duration::from_millis(500)))
    };
    run(true).await;
    assert!(files(dir.path()).is_empty(), "nothing written while held");
    assert!(store.next_mail_due().await.unwrap().is_some(), "the transcript waits in the outbox");
    run(false).await;
    assert_eq!(files(dir.path()).len(), 1, "sent once no longer held");
    assert_eq!(store.next_mail_due().await.unwrap(), None);
}

/// With a `public_url`, every e-mail ends with a link to its library's
/// own page (`/ask/<slug>`): the transcript to the chat's, an answer to
/// the question's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_links_its_own_librarys_page() {
    let dir = tempfile::tempdir().unwrap();
    let (_, app) = demo_app(dir.path()).await;
    ended_chat_with_transcript(&app, "chat@example.org").await;
    let form = refdesk_app::OfflineForm {
        email: Some("form@example.org".into()),
        question: "Is the lake path open?".into(),
        ..Default::default()
    };
    let asked = app.ask_offline("lakeside-public", form, None).await.unwrap();
    let (_, ben) = app.login("ben", demo::PASSWORD, true).await.unwrap();
    let answer = refdesk_app::QuestionAction::Answer { body: "It is.".into(), email: None };
    app.act(&ben, asked.question, answer, false).await.unwrap();

    let config = MailConfig { public_url: Some("https://ask.coop.example.org".into()), ..MailConfig::default() };
    let mailer = Mailer::new(app.clone(), config, dir.path().to_path_buf()).unwrap();
    assert_eq!(mailer.deliver_due().await, 2);
    let sent = files(dir.path());
    assert_eq!(sent.len(), 2, "{sent:?}");
    let read = |to: &str| {
        let texts = sent.iter().map(|f| std::fs::read_to_string(dir.path().join("mail").join(f)).unwrap());
        texts.into_iter().find(|t| t.contains(to)).unwrap()
    };
    let transcript = read("chat@example.org");
    assert!(
        transcript.contains("Ask a librarian again: https://ask.coop.example.org/ask/riverside-main"),
        "{transcript}"
    );
    let answer = read("form@example.org");
    assert!(answer.contains("Ask a librarian again: https://ask.coop.example.org/ask/lakeside-public"), "{answer}");
}
