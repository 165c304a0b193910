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

    // While the patron is away: a message, a note, a message.
    ann_ws.say(Some(patron.session), "message", "Which book?", "a1").await; // 4
    ann_ws.say(Some(patron.session), "note", "patron account 1234 has a block", "a2").await; // 5
    ann_ws.say(Some(patron.session), "message", "I can renew it for you.", "a3").await; // 6

    let mut again = patron.socket().await;
    let missed = again.resume(None, last_seen).await;
    let seqs: Vec<u64> = missed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 6], "no gap, no duplicate, no note");
    assert_eq!(missed[1]["body"], "I can renew it for you.");

    // And it keeps receiving live after the resume, in order.
    ann_ws.say(Some(patron.session), "message", "Done.", "a4").await; // 7
    let live = again.events_until_seq(7).await;
    assert_eq!(live.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [7]);
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
