//! I3 and I4 across disconnects: a client that resumes with the last
//! sequence number it saw gets exactly what it missed and may see.

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_patron_who_disconnects_mid_chat_resumes_with_exactly_what_it_missed() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "Can I renew a book?").await;
    ann.accept(patron.session).await;
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;

    let mut pat_ws = patron.socket().await;
    let first = pat_ws.resume(None, 0).await;
    assert_eq!(first.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    pat_ws.say(None, "message", "It is overdue.", "p1").await; // seq 3
    let last_seen = pat_ws.events_until_seq(3).await.last().unwrap()["seq"].as_u64().unwrap();
    pat_ws.close().await;

    // While the patron is away: a message, a note, a message (the
    // session's lines 4, 5 and 6; the patron's 4 and 5: the note is none
    // of theirs, and leaves no gap in their numbers).
    ann_ws.say(Some(patron.session), "message", "Which book?", "a1").await;
    ann_ws.say(Some(patron.session), "note", "patron account 1234 has a block", "a2").await;
    ann_ws.say(Some(patron.session), "message", "I can renew it for you.", "a3").await;

    let mut again = patron.socket().await;
    let missed = again.resume(None, last_seen).await;
    let seqs: Vec<u64> = missed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 5], "no gap, no duplicate, no note");
    assert_eq!(missed[1]["body"], "I can renew it for you.");
    let synced = again.frames.iter().find(|f| f["type"] == "synced").expect("synced");
    assert_eq!(synced["last"], 5, "the patron's number of their last line");

    // And it keeps receiving live after the resume, in order, by its own
    // numbers (another note between).
    ann_ws.say(Some(patron.session), "note", "renewed", "a4").await; // the session's 7
    ann_ws.say(Some(patron.session), "message", "Done.", "a5").await; // 8: the patron's 6
    let live = again.events_until_seq(6).await;
    assert_eq!(
        live.iter().map(|e| (e["seq"].as_u64().unwrap(), e["body"].as_str())).collect::<Vec<_>>(),
        [(6, Some("Done."))]
    );
    again.close().await;
    ann_ws.say(Some(patron.session), "note", "all done", "a6").await;

    // A resume from a number of theirs after which only notes were written
    // gets nothing, and its `synced` says the same number.
    let mut third = patron.socket().await;
    assert!(third.resume(None, 6).await.is_empty());
    assert_eq!(third.frames.iter().find(|f| f["type"] == "synced").unwrap()["last"], 6);
}

#[tokio::test]
async fn a_staff_member_resuming_gets_notes_too() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "hi").await;
    ann.accept(patron.session).await;
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    ann_ws.say(Some(patron.session), "note", "n", "a1").await; // 3
    ann_ws.close().await;
    let mut carla_ws = app.staff("carla").await.socket().await; // library admin, same library
    let seen = carla_ws.resume(Some(patron.session), 2).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["kind"], "note");
}

#[tokio::test]
async fn a_resent_client_message_id_is_stored_once() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "hi").await;
    ann.accept(patron.session).await;
    let mut ws = patron.socket().await;
    ws.resume(None, 0).await;
    let first = ws.say(None, "message", "once", "same-id").await;
    assert_eq!(first["duplicate"], false);
    // The client did not see the ack (say, the connection dropped) and re-sends on a new socket.
    ws.close().await;
    let mut ws = patron.socket().await;
    let again = ws.say(None, "message", "once", "same-id").await;
    assert_eq!(again["type"], "ack");
    assert_eq!(again["seq"], first["seq"], "the same message, not a new one");
    assert_eq!(again["duplicate"], true);
    let stored = app.stored(patron.session).await;
    assert_eq!(stored.iter().filter(|m| m.client_id.as_deref() == Some("same-id")).count(), 1);

    // The same id from a different sender is a different message.
    let (status, ack) = ann
        .post(
            &format!("/api/sessions/{}/messages", patron.session),
            serde_json::json!({"body": "mine", "client_id": "same-id"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ack["duplicate"], false);
}

#[tokio::test]
async fn a_client_claiming_a_future_sequence_number_still_receives_new_messages() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "hi").await;
    ann.accept(patron.session).await;
    let mut ws = patron.socket().await;
    ws.send(serde_json::json!({"type": "resume", "after": 1_000_000})).await;
    let synced = ws.until(|f| f["type"] == "synced").await;
    assert_eq!(synced.last().unwrap()["last"], 2, "clamped to the session's last sequence number");
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    ann_ws.say(Some(patron.session), "message", "still here", "a1").await;
    let got = ws.events_until_seq(3).await;
    assert_eq!(got.last().unwrap()["body"], "still here");
}

#[tokio::test]
async fn what_a_node_never_heard_of_is_recovered_from_the_store_at_a_resync() {
    use refdesk_domain::chat::{Audience, Author, MessageKind};
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "Is the map room open?").await;
    ann.accept(patron.session).await;
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    let mut pat_ws = patron.socket().await;
    pat_ws.resume(None, 0).await;

    // Written by another writer on the same database: a line and a note
    // this server's bus never carries.
    let other = app.other_writer().await;
    let me = Author::Staff { id: refdesk_domain::ids::StaffId(ann.id), name: "Ann Archer".into() };
    let mut last = 0;
    for (kind, body) in [(MessageKind::Message, "Yes, until six."), (MessageKind::Note, "NOTE-ONLY-STAFF")] {
        let line = refdesk_store::NewMessage {
            author: me.clone(),
            kind,
            audience: if kind == MessageKind::Note { Audience::Staff } else { Audience::Everyone },
            body: body.into(),
            client_id: None,
            system: None,
        };
        // Stamped now: a line from 1970 would make the chat idle, and the
        // background round would end it under the test (it did, under load).
        let now = app.state.app.clock().now();
        let stored =
            other.append(refdesk_domain::ids::SessionId(patron.session), line, Box::new(|_| Ok(())), now).await;
        last = stored.unwrap().message.seq;
    }

    // The node learns it missed something (a skipped envelope number, its
    // link back): every connection re-reads from the store.
    app.state.app.bus().resync();
    let seen = ann_ws.events_until_seq(last).await;
    let bodies: Vec<&str> = seen.iter().filter_map(|e| e["body"].as_str()).collect();
    assert!(bodies.contains(&"Yes, until six.") && bodies.contains(&"NOTE-ONLY-STAFF"), "{bodies:?}");
    // The patron gets the line, never the note (I1), and nothing twice (I3).
    let ack = pat_ws.say(None, "message", "Thanks!", "p-after").await;
    assert_eq!(ack["type"], "ack", "{:#?}", pat_ws.frames);
    // The line may come before its ack: when the re-read after the resync
    // runs after the line's commit, it brings the line along.
    // Every frame is kept, and shown if it never comes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pat_ws.events().iter().any(|e| e["body"] == "Thanks!") {
        let gone = pat_ws.closed_within(std::time::Duration::from_millis(200)).await;
        assert!(!gone, "the socket closed: {:#?}", pat_ws.frames);
        assert!(std::time::Instant::now() < deadline, "the patron's own line never came: {:#?}", pat_ws.frames);
    }
    let bodies: Vec<&str> = pat_ws.events().iter().filter_map(|e| e["body"].as_str()).collect();
    assert_eq!(&bodies[bodies.len() - 2..], ["Yes, until six.", "Thanks!"], "{bodies:?}");
    assert_eq!(bodies.iter().filter(|b| **b == "Yes, until six.").count(), 1);
    assert!(!bodies.contains(&"NOTE-ONLY-STAFF"));
}

/// Nothing a patron is given tells where staff wrote (notes, a code set, a
/// colleague monitoring): their numbers run 1, 2, 3… over the socket, its
/// acks and `synced`, `GET /api/chat` (whose pages hold as many of their
/// lines however many notes fall between) and the line ending the chat.
#[tokio::test]
async fn a_patron_cannot_tell_where_staff_wrote_from_the_numbers_or_the_pages() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "hi").await; // 1
    ann.accept(patron.session).await; // 2
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    let s = Some(patron.session);
    ann_ws.say(s, "note", "n1", "a1").await;
    ann_ws.say(s, "message", "three", "a2").await; // the patron's 3
    ann_ws.say(s, "note", "n2", "a3").await;
    ann_ws.say(s, "note", "n3", "a4").await;
    let mut pat = patron.socket().await;
    let replay = pat.resume(None, 2).await;
    assert_eq!(replay.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [3], "after the patron's 2");
    assert_eq!(pat.frames.iter().find(|f| f["type"] == "synced").unwrap()["last"], 3);
    let ack = pat.say(None, "message", "four", "p1").await; // 4
    assert_eq!(ack["seq"], 4, "the ack gives the patron's number");
    ann_ws.say(s, "note", "n4", "a5").await;
    ann_ws.say(s, "message", "five", "a6").await; // 5
    let live = pat.events_until_seq(5).await;
    assert_eq!(live.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [4, 5]);
    let again = pat.say(None, "message", "four", "p1").await;
    assert_eq!((again["seq"].as_u64(), again["duplicate"].as_bool()), (Some(4), Some(true)), "a re-send's too");
    let (status, ended) = patron.post("/api/chat/end", serde_json::json!(null)).await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["seq"], 6, "the end, the patron's sixth line");

    // Pages of two: two lines each, wherever the notes fall.
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let (status, page) = patron.get(&format!("/api/chat?after={after}&limit=2")).await;
        assert_eq!(status, 200, "{page}");
        let seqs: Vec<u64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        after = page["last"].as_u64().unwrap();
        pages.push(seqs);
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(pages, [vec![1, 2], vec![3, 4], vec![5, 6]]);
    let stored = app.stored(patron.session).await;
    assert_eq!(stored.len(), 10, "the session's own numbers count the four notes too");
}
