//! A failure of the store is never reported as the caller's mistake, and it
//! keeps what the store said as its source; a flood of sign-ins is refused
//! as busy, not queued without end. On a real SQLite file with the demo
//! cooperative.

use refdesk_app::{bus::Bus, demo, App, AppError, Clock, Limits, ListFilter};
use refdesk_domain::DomainError;
use refdesk_store::prelude::*;
use refdesk_store::sqlite::SqliteStore;
use refdesk_store::StoreError;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

#[tokio::test]
async fn a_library_that_does_not_exist_is_bad_input_but_a_closed_store_is_an_internal_failure() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store.clone(), bus, Limits::default(), Clock::system());
    demo::load(&app).await.unwrap();
    let (_, carla) = app.login("carla", demo::PASSWORD, true).await.unwrap();
    let filter = |slug: &str| ListFilter { library: Some(slug.into()), ..ListFilter::default() };

    let missing = app.question_list(&carla, filter("no-such-library")).await.unwrap_err();
    assert!(matches!(missing, AppError::Domain(DomainError::Invalid { .. })), "{missing:?}");
    let slug = store.libraries().await.unwrap()[0].slug.clone();
    assert!(app.question_list(&carla, filter(&slug)).await.is_ok());

    // The database goes away: the same request is now our failure, not a 422.
    Store::close(&*store).await;
    let failed = app.question_list(&carla, filter(&slug)).await.unwrap_err();
    let AppError::Internal(failure) = &failed else { panic!("a closed store reported as {failed:?}") };
    let source = failure.source().expect("the store's error is kept as the source");
    assert!(matches!(source.downcast_ref::<StoreError>(), Some(StoreError::Closed)), "{source:?}");
}

/// A turn of the mailer or of the background round that panics (a bug) is
/// counted and logged, and its task goes on: before, the panic ended the
/// task for the life of the process, and `/readyz` still said ready.
#[tokio::test]
async fn a_turn_of_a_task_that_panics_is_counted_and_the_task_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store, bus, Limits::default(), Clock::system());
    let panics = |task: &'static str| app.metrics().task_panics.get_or_create(&[("task", task)]).get();
    assert_eq!(app.one_turn("mailer", async { 7 }).await, Some(7));
    assert_eq!(app.one_turn("mailer", async { panic!("a bug in a turn") }).await, None::<u8>);
    assert_eq!((panics("mailer"), panics("background")), (1, 0));
    // The background round goes on past a turn that panics.
    let turns = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let turns = turns.clone();
        app.one_turn("background", async move {
            if turns.fetch_add(1, SeqCst) == 1 {
                panic!("the second turn");
            }
        })
        .await;
    }
    assert_eq!((turns.load(SeqCst), panics("background")), (3, 1));
}

/// Fills the line of password hashes: [`refdesk_app::hashes_at_once`] run,
/// held until released (one `release` each), the rest wait.
async fn fill_the_line(app: &App) -> (std::sync::mpsc::Sender<()>, Vec<tokio::task::JoinHandle<Result<(), AppError>>>) {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Arc::new(std::sync::Mutex::new(held));
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut line = Vec::new();
    for _ in 0..refdesk_app::HASHES_WAITING {
        let (app, held, running) = (app.clone(), held.clone(), running.clone());
        line.push(tokio::spawn(async move {
            app.hash_work(move || {
                running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = held.lock().unwrap().recv();
            })
            .await
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while running.load(std::sync::atomic::Ordering::SeqCst) < refdesk_app::hashes_at_once()
        || app.hashes_in_line() < refdesk_app::HASHES_WAITING
    {
        assert!(std::time::Instant::now() < deadline, "the line never filled");
        tokio::task::yield_now().await;
    }
    (release, line)
}

fn is_busy(e: &AppError) -> bool {
    matches!(e, AppError::Domain(DomainError::Limited { code: "busy", .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashes_past_the_line_are_refused_as_busy_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store, bus, Limits::default(), Clock::system());
    let (release, line) = fill_the_line(&app).await;
    let refused = app.hash_work(|| ()).await.unwrap_err();
    assert!(is_busy(&refused), "{refused:?}");
    // Once the line moves, hashing is served again.
    for _ in 0..refdesk_app::HASHES_WAITING {
        release.send(()).unwrap();
    }
    for waiting in line {
        waiting.await.unwrap().unwrap();
    }
    assert!(app.hash_work(|| ()).await.is_ok());
}

/// A flood of sign-ins keeps at most one core fewer than the node has busy
/// hashing: on this machine's two cores, one hash at a time, the other core
/// left to the chats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashes_run_on_one_core_fewer_than_the_node_has() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store, bus, Limits::default(), Clock::system());
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(refdesk_app::hashes_at_once(), cores.saturating_sub(1).clamp(1, 4));
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hashes: Vec<_> = (0..12)
        .map(|_| {
            let (app, running, most) = (app.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                app.hash_work(move || {
                    most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, SeqCst);
                })
                .await
            })
        })
        .collect();
    for hash in hashes {
        hash.await.unwrap().unwrap();
    }
    assert_eq!(most.load(SeqCst), refdesk_app::hashes_at_once(), "hashes that ran at once");
    if cores > 1 {
        assert!(most.load(SeqCst) < cores, "{} hashes at once on {cores} cores", most.load(SeqCst));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_line_of_hashes_does_not_keep_a_librarian_out_where_she_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store, bus, Limits::default(), Clock::system());
    demo::load(&app).await.unwrap();
    let (desk, elsewhere): (std::net::IpAddr, std::net::IpAddr) = ([192, 0, 2, 7].into(), [198, 51, 100, 7].into());
    app.login_from("ann", demo::PASSWORD, true, Some(desk)).await.unwrap();
    // Sign-ins from everywhere fill the line.
    let (release, line) = fill_the_line(&app).await;
    let refused = app.login_from("ann", demo::PASSWORD, true, Some(elsewhere)).await.unwrap_err();
    assert!(is_busy(&refused), "{refused:?}");
    let refused = app.login_from("nobody", demo::PASSWORD, true, Some(desk)).await.unwrap_err();
    assert!(is_busy(&refused), "a name without an account: {refused:?}");
    // At her desk she takes a place in the other line, and signs in once a
    // hash is free.
    let at_desk = tokio::spawn({
        let app = app.clone();
        async move { app.login_from("ann", demo::PASSWORD, true, Some(desk)).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.hashes_in_line() < refdesk_app::HASHES_WAITING + 1 {
        if at_desk.is_finished() {
            panic!("refused at her desk: {:?}", at_desk.await.unwrap().map(|_| ()));
        }
        assert!(std::time::Instant::now() < deadline, "she never took a place");
        tokio::task::yield_now().await;
    }
    for _ in 0..refdesk_app::HASHES_WAITING {
        release.send(()).unwrap();
    }
    let (_, ann) = at_desk.await.unwrap().expect("she signs in at her desk");
    assert_eq!(ann.username, "ann");
    for waiting in line {
        waiting.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn the_open_list_of_libraries_is_served_as_last_read_while_the_store_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let clock = Clock::manual(1_000_000);
    let app = App::new(store.clone(), bus, Limits::default(), clock.clone());
    let failed = app.listed_libraries().await.map(|l| l.len());
    assert_eq!(failed.unwrap(), 0, "nothing set up yet");
    demo::load(&app).await.unwrap();
    let libraries = app.libraries().await.unwrap().len();
    assert!(libraries > 0);
    assert_eq!(app.listed_libraries().await.unwrap().len(), libraries, "added on this node: shown at once");
    // The database goes away: past its five seconds the list is read
    // again, fails, and the list as last read is served.
    Store::close(&*store).await;
    clock.advance(refdesk_app::LISTED_FOR);
    assert_eq!(app.listed_libraries().await.unwrap().len(), libraries);
    // Never read, a list cannot be served from a store that fails.
    let fresh = App::new(store.clone(), Bus::new(), Limits::default(), clock.clone());
    assert!(matches!(fresh.listed_libraries().await, Err(AppError::Internal(_))));
}

/// Anyone can send a known-browser cookie with a sign-in: while the store
/// cannot give the key (a write, the first time), it is asked once every
/// ten seconds at most, and the attempt counts by address meanwhile.
#[tokio::test]
async fn the_key_of_known_browsers_is_asked_for_once_every_ten_seconds_while_the_store_fails() {
    use std::sync::Mutex;
    static WARNINGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            WARNINGS.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let subscriber = tracing_subscriber::fmt().with_env_filter("warn").with_writer(|| Capture).finish();
    let _logs = tracing::subscriber::set_default(subscriber);
    let asked = || String::from_utf8_lossy(&WARNINGS.lock().unwrap()).matches("could not be read").count();

    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let clock = Clock::manual(1_000_000);
    let app = App::new(store.clone(), bus, Limits::default(), clock.clone());
    Store::close(&*store).await;
    for _ in 0..50 {
        assert!(app.known_devices("ann:1000000:00").await.is_empty());
    }
    assert_eq!(asked(), 1, "asked once");
    clock.advance(10_000);
    assert!(app.known_devices("ann:1000000:00").await.is_empty());
    assert_eq!(asked(), 2, "and again ten seconds on");

    // A store that answers: its key signs and checks tokens.
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store, bus, Limits::default(), clock.clone());
    let cookie = app.device_cookie(None, "ann").await.unwrap();
    let known = app.known_devices(&cookie).await;
    assert_eq!(known.len(), 1);
    assert_eq!(app.known_device_of(&known, "ann"), Some(known[0].bucket));
    assert_eq!(app.known_device_of(&known, "ben"), None);
}

/// A node that keeps no erasure journal (its data folder could not be
/// made) erases nothing on request: a restored database would bring the
/// patron back. It says so, and the chat keeps its data.
#[tokio::test]
async fn an_erasure_on_request_without_a_journal_is_refused_and_erases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store.clone(), bus, Limits::default(), Clock::system());
    demo::load(&app).await.unwrap();
    let form = refdesk_app::StartChat {
        name: Some("Pat".into()),
        email: Some("pat@example.org".into()),
        question: "Where are the maps?".into(),
        ..Default::default()
    };
    let slug = store.libraries().await.unwrap()[0].slug.clone();
    let started = app.start_chat(&slug, form, None).await.unwrap();
    let rec = store.session(started.session).await.unwrap().unwrap();
    app.patron_end(&rec).await.unwrap();
    let (_, carla) = app.login("carla", demo::PASSWORD, true).await.unwrap();
    let refused = app
        .erase_patron(
            &carla,
            Some("pat@example.org"),
            vec![started.session],
            refdesk_domain::privacy::Transcripts::Mask,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, AppError::Domain(DomainError::Conflict(why)) if why.contains("no erasure journal")),
        "{refused:?}"
    );
    let kept = store.session(started.session).await.unwrap().unwrap();
    assert_eq!(kept.patron_email.as_deref(), Some("pat@example.org"), "nothing erased");
}
