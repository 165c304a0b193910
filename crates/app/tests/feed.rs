//! A staff connection open all shift does not follow every chat it ever
//! opened: past a few dozen ended chats the oldest are left, on the feed
//! and on the bus, and an ended chat's watchers are forgotten. On a real
//! SQLite file with the demo cooperative.

use refdesk_app::feed::Feed;
use refdesk_app::StartChat;
use refdesk_app::{bus::Bus, demo, App, Clock, Limits};
use refdesk_domain::chat::Watcher;
use refdesk_domain::event::Availability;
use refdesk_domain::ids::SessionId;
use refdesk_domain::visibility::Viewer;
use refdesk_store::sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Duration;

async fn app(dir: &tempfile::TempDir) -> App {
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store, bus, Limits::default(), Clock::system());
    demo::load(&app).await.unwrap();
    app
}

/// Hands every event the feed has been sent to it, until none comes for a moment.
async fn pump(feed: &mut Feed) {
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(150), feed.recv()).await {
        feed.handle(event).await.unwrap();
    }
}

async fn on_duty(app: &App, user: &str) -> refdesk_domain::org::Staff {
    let (_, staff) = app.login(user, demo::PASSWORD, true).await.unwrap();
    app.set_availability(&staff, Availability::OnDuty).await.unwrap();
    staff
}

async fn chat(app: &App, n: usize) -> SessionId {
    let form = StartChat {
        name: Some(format!("Pat {n}")),
        email: None,
        question: format!("Question {n}"),
        transcript: false,
        browser: None,
        utc_offset: None,
    };
    app.start_chat("riverside-main", form, None).await.unwrap().session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_open_all_shift_keeps_following_only_the_latest_ended_chats() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let mut feed = Feed::new(&app, Viewer::Staff(ann.clone()));
    let mut sessions = Vec::new();
    for n in 0..40 {
        let s = chat(&app, n).await;
        app.accept(&ann, s).await.unwrap();
        feed.resume(s, 0).await.unwrap();
        app.staff_end(&ann, s).await.unwrap();
        pump(&mut feed).await;
        sessions.push(s);
    }
    let followed = sessions.iter().filter(|s| feed.context(**s).is_some()).count();
    assert_eq!(followed, 32, "the 32 latest ended chats are followed, no more");
    assert!(feed.context(sessions[0]).is_none(), "the oldest ended chat was left");
    assert!(feed.context(sessions[39]).is_some(), "the latest ended chat is still followed (its code is set next)");

    // Resuming an ended chat (a desk reconnecting) counts too.
    let mut again = Feed::new(&app, Viewer::Staff(ann.clone()));
    for s in &sessions {
        again.resume(*s, 0).await.unwrap();
    }
    assert_eq!(sessions.iter().filter(|s| again.context(**s).is_some()).count(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_chat_has_no_watchers_left_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let (_, carla) = app.login("carla", demo::PASSWORD, true).await.unwrap();
    let s = chat(&app, 1).await;
    app.accept(&ann, s).await.unwrap();
    // Carla opens Ann's live chat without taking part: she is a watcher (B3).
    let mut watching = Feed::new(&app, Viewer::Staff(carla.clone()));
    watching.resume(s, 0).await.unwrap();
    let probe = app.bus().subscribe(16);
    let carla_watches = Watcher::staff(carla.id, &carla.display_name);
    assert_eq!(probe.watchers_of(s), vec![carla_watches]);
    app.staff_end(&ann, s).await.unwrap();
    pump(&mut watching).await;
    assert!(probe.watchers_of(s).is_empty(), "an ended chat's watchers are forgotten");
}

/// A patron's feed on their chat, resumed from the start, its replay not
/// yet read (a test may change the chat first).
async fn patron(app: &App, s: SessionId) -> Feed {
    let mut feed = Feed::new(app, Viewer::Patron { session: s });
    feed.resume(s, 0).await.unwrap();
    feed
}

/// Every line of a resumed chat's replay.
async fn replay(feed: &mut Feed, s: SessionId) -> Vec<refdesk_domain::chat::Message> {
    let mut lines = Vec::new();
    loop {
        let page = feed.next_page(s, 100).await.unwrap();
        lines.extend(page.items);
        if page.done {
            return lines;
        }
    }
}

/// What a feed hands on once every event sent to it is handled.
async fn drain(feed: &mut Feed) -> Vec<refdesk_app::feed::Out> {
    let mut out = Vec::new();
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(150), feed.recv()).await {
        out.extend(feed.handle(event).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patron_accepted_while_resuming_is_not_told_a_place_in_line_after_the_librarian_joined() {
    use refdesk_app::feed::Out;
    use refdesk_domain::chat::SystemEvent;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;

    // A patron still waiting learns their place once the replay is through.
    let waiting = chat(&app, 1).await;
    let mut feed = patron(&app, waiting).await;
    replay(&mut feed, waiting).await;
    assert!(matches!(feed.place_in_line(waiting).await.unwrap(), Some(Out::Position { position: 1, .. })));

    // The chat is accepted after the resume read it waiting, before its
    // replay: the replay carries "accepted", and no place in line follows
    // it, then or at any later queue change.
    let s = chat(&app, 2).await;
    let mut feed = patron(&app, s).await;
    app.accept(&ann, s).await.unwrap();
    let replay = replay(&mut feed, s).await;
    assert!(replay.iter().any(|m| m.system == Some(SystemEvent::Accepted)), "the replay carries the acceptance");
    assert_eq!(feed.place_in_line(s).await.unwrap(), None, "no place in line after the librarian joined");
    app.accept(&ann, waiting).await.unwrap();
    let later = drain(&mut feed).await;
    assert!(!later.iter().any(|o| matches!(o, Out::Position { .. })), "no place in line later: {later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patron_whose_chat_went_back_to_a_queue_while_their_connection_lagged_is_told_their_place() {
    use refdesk_app::feed::Out;
    use refdesk_domain::chat::MessageKind;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let s = chat(&app, 1).await;
    app.accept(&ann, s).await.unwrap();
    let mut feed = patron(&app, s).await;
    replay(&mut feed, s).await;
    assert_eq!(feed.place_in_line(s).await.unwrap(), None, "a chat under way has no place in line");
    // More lines than the connection's queue holds: it lags, and the chat
    // going back to a queue is among what it drops.
    for n in 0..300 {
        app.staff_send(&ann, s, MessageKind::Message, &format!("line {n}"), None).await.unwrap();
    }
    app.transfer(&ann, s, refdesk_app::Transfer::Library("riverside-main".into()), false, None).await.unwrap();
    let out = drain(&mut feed).await;
    assert!(
        out.iter().any(|o| matches!(o, Out::Position { position: 1, .. })),
        "back in line, the patron is told their place"
    );
}

/// A Riverside patron's chat accepted by Ann and handed to Ben of Lakeside
/// (he sees it while he is part of it, DESIGN §2), and Ben's desk following
/// it, its replay not yet read.
async fn handed_to_ben(app: &App) -> (refdesk_domain::org::Staff, refdesk_domain::org::Staff, SessionId, Feed) {
    let (ann, ben) = (on_duty(app, "ann").await, on_duty(app, "ben").await);
    let s = chat(app, 1).await;
    app.accept(&ann, s).await.unwrap();
    app.transfer(&ann, s, refdesk_app::Transfer::Staff(ben.id), false, None).await.unwrap();
    let mut feed = Feed::new(app, Viewer::Staff(ben.clone()));
    feed.resume(s, 0).await.unwrap();
    (ann, ben, s, feed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_read_after_the_chat_changed_hands_out_of_view_shows_none_of_the_new_hands_lines() {
    use refdesk_app::{AppError, Transfer};
    use refdesk_domain::chat::MessageKind;
    use refdesk_domain::DomainError;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    // Before Ben's replay is read, he hands the chat back (from another
    // tab), and Ann writes a note he may no longer see.
    let (ann, ben, s, mut feed) = handed_to_ben(&app).await;
    app.transfer(&ben, s, Transfer::Staff(ann.id), false, None).await.unwrap();
    app.staff_send(&ann, s, MessageKind::Note, "Riverside only: the patron's card has expired", None).await.unwrap();

    let mut shown = Vec::new();
    let refused = loop {
        match feed.next_page(s, 100).await {
            Ok(page) => {
                shown.extend(page.items);
                if page.done {
                    break None;
                }
            }
            Err(e) => break Some(e),
        }
    };
    assert!(!shown.iter().any(|m| m.body.contains("Riverside only")), "a line out of his view was shown: {shown:?}");
    assert!(
        matches!(refused, Some(AppError::Domain(DomainError::NotFound(_)))),
        "the replay is refused as a resume now would be: {refused:?}"
    );
    assert_eq!(feed.context(s), None, "the chat is no longer followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_filled_from_the_store_after_the_chat_changed_hands_out_of_view_shows_none_of_the_new_hands_lines() {
    use refdesk_app::feed::Out;
    use refdesk_app::Transfer;
    use refdesk_domain::chat::MessageKind;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let (ann, ben, s, mut feed) = handed_to_ben(&app).await;
    replay(&mut feed, s).await;

    // Ben writes twice, hands the chat back, and Ann writes a note he may
    // no longer see. The first line's event goes missing: the next one
    // finds a gap and fills it from the store, which by then holds it all.
    for line in ["One moment.", "Ann can help you further."] {
        app.staff_send(&ben, s, MessageKind::Message, line, None).await.unwrap();
    }
    app.transfer(&ben, s, Transfer::Staff(ann.id), false, None).await.unwrap();
    app.staff_send(&ann, s, MessageKind::Note, "Riverside only: the patron's card has expired", None).await.unwrap();
    let _missed = feed.recv().await;
    let out = drain(&mut feed).await;
    let shown = |o: &Out| matches!(o, Out::Message(m) if m.body.contains("Riverside only"));
    assert!(!out.iter().any(shown), "a line out of his view was shown: {out:?}");
    assert_eq!(feed.context(s), None, "the chat is no longer followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_missed_many_lines_catches_up_a_page_per_turn_and_misses_none() {
    use refdesk_app::feed::Out;
    use refdesk_domain::chat::MessageKind;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let s = chat(&app, 1).await;
    app.accept(&ann, s).await.unwrap();
    let mut feed = patron(&app, s).await;
    let before = replay(&mut feed, s).await.last().unwrap().seq;
    // Far more lines than the connection's queue holds (256): it lags.
    for n in 0..700 {
        app.staff_send(&ann, s, MessageKind::Message, &format!("line {n}"), None).await.unwrap();
    }
    // Each turn hands on at most a page of what was missed (100 lines; a
    // turn that re-reads after the lag and goes on may take two), and the
    // turns together hand on every line once, in order.
    let mut seqs = Vec::new();
    let mut largest = 0;
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(300), feed.recv()).await {
        let out = feed.handle(event).await.unwrap();
        let lines: Vec<u64> =
            out.iter().filter_map(|o| if let Out::Message(m) = o { Some(m.seq) } else { None }).collect();
        largest = largest.max(lines.len());
        seqs.extend(lines);
    }
    assert!(largest <= 200, "a turn handed on {largest} lines");
    assert_eq!(seqs, (before + 1..=before + 700).collect::<Vec<_>>(), "every line once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_connection_that_missed_many_messages_of_a_colleague_catches_up_a_page_per_turn() {
    use refdesk_app::feed::Out;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let (ann, ben) = (on_duty(&app, "ann").await, on_duty(&app, "ben").await);
    let mut feed = Feed::new(&app, Viewer::Staff(ann.clone()));
    let first = app.im_send(&ben, ann.id, "Hello Ann", None).await.unwrap();
    pump(&mut feed).await;
    for n in 0..700 {
        app.im_send(&ben, ann.id, &format!("note {n}"), None).await.unwrap();
    }
    let mut seqs = Vec::new();
    let mut largest = 0;
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(300), feed.recv()).await {
        let out = feed.handle(event).await.unwrap();
        let ims: Vec<u64> = out.iter().filter_map(|o| if let Out::Im(m) = o { Some(m.seq) } else { None }).collect();
        largest = largest.max(ims.len());
        seqs.extend(ims);
    }
    assert!(largest <= 200, "a turn handed on {largest} messages");
    let from = first.0.seq + 1;
    assert_eq!(seqs, (from..from + 700).collect::<Vec<_>>(), "every message once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patron_is_not_shown_typing_from_a_colleague_who_went_from_join_to_whisper() {
    use refdesk_app::feed::Out;
    use refdesk_domain::chat::ConferenceMode;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let (_, dev) = app.login("dev", demo::PASSWORD, true).await.unwrap();
    let s = chat(&app, 1).await;
    app.accept(&ann, s).await.unwrap();
    let mut feed = patron(&app, s).await;
    replay(&mut feed, s).await;
    // Dev joins (the patron is told), then goes on whispering.
    let joined = app.conference(&dev, s, ConferenceMode::Join).await.unwrap();
    app.conference(&dev, s, ConferenceMode::Whisper).await.unwrap();
    drain(&mut feed).await;
    // A typing frame from his connection, whose copy of the chat still says
    // he joined: the patron's own copy is newer, and says he whispers.
    app.staff_typing(&dev, joined.ctx, false, true).unwrap();
    let out = drain(&mut feed).await;
    assert!(!out.iter().any(|o| matches!(o, Out::Typing { .. })), "{out:?}");
    // Ann typing is shown.
    let current = app.store().session(s).await.unwrap().unwrap();
    app.staff_typing(&ann, current.ctx, false, true).unwrap();
    let out = drain(&mut feed).await;
    assert!(out.iter().any(|o| matches!(o, Out::Typing { .. })), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_that_missed_many_lines_of_several_chats_gets_each_once_in_order_woken_once_a_turn() {
    use refdesk_app::feed::Out;
    use refdesk_domain::chat::MessageKind;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let mut feed = Feed::new(&app, Viewer::Staff(ann.clone()));
    let mut chats = Vec::new();
    for n in 0..3 {
        let s = chat(&app, n).await;
        app.accept(&ann, s).await.unwrap();
        feed.resume(s, 0).await.unwrap();
        let last = replay(&mut feed, s).await.last().unwrap().seq;
        chats.push((s, last));
    }
    for n in 0..300 {
        for (s, _) in &chats {
            app.staff_send(&ann, *s, MessageKind::Note, &format!("note {n}"), None).await.unwrap();
        }
    }
    let mut seen: std::collections::HashMap<SessionId, Vec<u64>> = Default::default();
    let mut turns_after_the_lines = 0;
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(300), feed.recv()).await {
        let resync = matches!(*event, refdesk_domain::event::Event::Resync);
        for o in feed.handle(event).await.unwrap() {
            if let Out::Message(m) = o {
                seen.entry(m.session).or_default().push(m.seq);
            }
        }
        turns_after_the_lines += usize::from(resync);
    }
    for (s, last) in chats {
        assert_eq!(seen[&s], (last + 1..=last + 300).collect::<Vec<_>>(), "chat {s}: every line once, in order");
    }
    // The rest of three catch-ups is read in a few wake-ups, one at a time:
    // not one per chat per page.
    assert!(turns_after_the_lines <= 6, "{turns_after_the_lines} wake-ups");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_store_read_failed_tries_again_by_itself_when_no_other_event_comes() {
    use refdesk_app::feed::Out;
    use refdesk_domain::chat::MessageKind;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let s = chat(&app, 1).await;
    app.accept(&ann, s).await.unwrap();
    let mut feed = patron(&app, s).await;
    replay(&mut feed, s).await;
    drain(&mut feed).await;

    // Two lines; the connection misses the first (a gap to fill from the
    // store), and the store fails as it reads it: its messages table is
    // out of reach for a moment.
    app.staff_send(&ann, s, MessageKind::Message, "first", None).await.unwrap();
    app.staff_send(&ann, s, MessageKind::Message, "second", None).await.unwrap();
    let _missed = feed.recv().await;
    let second = feed.recv().await;
    let db = rusqlite::Connection::open(dir.path().join("t.sqlite3")).unwrap();
    db.execute_batch("ALTER TABLE messages RENAME TO messages_away").unwrap();
    assert!(feed.handle(second).await.is_err(), "the gap cannot be filled while the store fails");
    db.execute_batch("ALTER TABLE messages_away RENAME TO messages").unwrap();

    // Nothing else happens in the chat: the feed wakes itself and reads
    // what it could not.
    let wake = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.expect("a wake-up of its own");
    let out = feed.handle(wake).await.unwrap();
    let lines: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Out::Message(m) => Some(m.body.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, ["first", "second"], "both lines reach the patron: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn im_resumes_naming_made_up_colleagues_leave_no_marks_and_a_real_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let ann = on_duty(&app, "ann").await;
    let ben = on_duty(&app, "ben").await;
    let mut feed = Feed::new(&app, Viewer::Staff(ann.clone()));
    // Each such mark was copied on every event and read again after a lag.
    for peer in 1_000..1_500 {
        let page = feed.im_page(refdesk_domain::ids::StaffId(peer), 7, 50).await.unwrap();
        assert!(page.items.is_empty());
    }
    assert_eq!(feed.im_followed(), 0, "made-up colleagues left marks");
    // A real conversation is followed from where the client says it read.
    for n in 0..3 {
        app.im_send(&ben, ann.id, &format!("line {n}"), None).await.unwrap();
    }
    let page = feed.im_page(ben.id, 3, 50).await.unwrap();
    assert!(page.items.is_empty(), "nothing after the last line");
    assert_eq!((feed.im_followed(), feed.im_last_seq(ben.id)), (1, Some(3)));
}
