//! The whole flow of a chat: start → queue → accept (R1) → chat → note →
//! end (R5) → resolution code (R5, R6, R7).

use crate::helpers::spawn_app;
use serde_json::{json, Value};

#[tokio::test]
async fn a_chat_becomes_a_question_whose_status_follows_the_resolution_code() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let mut ann_ws = ann.socket().await;
    ann_ws.send(json!({"type": "queue"})).await;
    let snapshot = ann_ws.until(|f| f["type"] == "queue").await;
    assert_eq!(snapshot.last().unwrap()["waiting"], json!([]));

    // A patron asks; the librarian sees it waiting, live and over REST.
    let patron = app.start_chat("riverside-main", "Do you have old maps of the river?").await;
    let added = ann_ws.until(|f| f["type"] == "queue_added").await;
    assert_eq!(added.last().unwrap()["session"], patron.session);
    let (_, queue) = ann.get("/api/queue").await;
    assert_eq!(queue.as_array().unwrap().len(), 1);

    let mut pat_ws = patron.socket().await;
    let history = pat_ws.resume(None, 0).await;
    assert_eq!(history.len(), 1, "the question is the first message");
    assert_eq!(history[0]["body"], "Do you have old maps of the river?");
    // While waiting, the patron is told their place in line (asked for once
    // the resume is done: waited for before the accept, which ends it).
    let place = pat_ws.until(|f| f["type"] == "position").await;
    assert_eq!(place.last().unwrap()["position"], 1, "{place:?}");

    // R1: accepting creates the question in the patron's library, answered, no code.
    let (status, _) = ann.accept(patron.session).await;
    assert_eq!(status, 200);
    ann_ws.until(|f| f["type"] == "queue_removed" && f["session"] == patron.session).await;
    let (_, list) = ann.get("/api/questions").await;
    let q = &list[0];
    assert_eq!(q["library_name"], "Riverside University Main Library");
    assert_eq!(q["state"]["status"], "answered");
    assert_eq!(q["state"]["code"], Value::Null);
    assert_eq!(q["live"], true, "B1/R2: still live");
    let frames = pat_ws.until(|f| f["type"] == "event").await;
    let joined = frames.last().unwrap().clone();
    assert_eq!(joined["system"], "accepted");
    assert_eq!(joined["body"], "Ann Archer (librarian) has joined the chat");

    // Chat both ways; acks carry the committed sequence numbers.
    ann_ws.resume(Some(patron.session), 0).await;
    let ack = pat_ws.say(None, "message", "Thanks!", "p1").await;
    assert_eq!((ack["type"].as_str(), ack["seq"].as_u64()), (Some("ack"), Some(3)));
    let got = ann_ws.events_until_seq(3).await;
    assert_eq!(got.last().unwrap()["body"], "Thanks!");

    // A librarian note goes to staff only; the patron's next event is the reply after it.
    let note = ann_ws.say(Some(patron.session), "note", "check the map room catalogue", "a1").await;
    assert_eq!(note["seq"], 4);
    let reply = ann_ws.say(Some(patron.session), "message", "Yes, in the map room.", "a2").await;
    assert_eq!(reply["seq"], 5);
    let seen = pat_ws.events_until_seq(4).await;
    let seen: Vec<(u64, &str)> =
        seen.iter().map(|e| (e["seq"].as_u64().unwrap(), e["body"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [(3, "Thanks!"), (4, "Yes, in the map room.")],
        "the patron gets its own line and the reply, never the note, nor a gap where it is"
    );
    ann_ws.events_until_seq(5).await;
    assert!(ann_ws.events().iter().any(|e| e["kind"] == "note" && e["audience"] == "staff"), "staff see the note");

    // R5: ending shows "Chat session has ended" to both; the question stays live until coded.
    let (status, ended) = ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
    assert_eq!(status, 200);
    assert!(ended["body"].as_str().unwrap().starts_with("Chat session has ended"));
    let pat_end = pat_ws.next().await;
    assert_eq!(pat_end["system"], "ended");
    let (_, list) = ann.get("/api/questions").await;
    assert_eq!(list[0]["live"], true, "ended but no code yet");

    // R6: "follow-up by me" → new, assigned to the chatting librarian.
    let (status, state) =
        ann.post(&format!("/api/sessions/{}/code", patron.session), json!({"code": "follow_up_by_me"})).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["status"], "new");
    assert_eq!(state["assignee"], ann.id);
    let code_line = ann_ws.events_until_seq(7).await;
    assert!(code_line.last().unwrap()["body"].as_str().unwrap().starts_with("Resolution code set"));
    let (_, list) = ann.get("/api/questions").await;
    assert_eq!(list[0]["live"], false, "R5: ended and coded, no longer live");
    assert_eq!(list[0]["state"]["status"], "new");
    assert_eq!(list[0]["assignee_name"], "Ann Archer", "the list names whom it is assigned to");

    // R7: the timeline has every change with who.
    let qid = list[0]["id"].as_i64().unwrap();
    let (_, detail) = ann.get(&format!("/api/questions/{qid}")).await;
    let changes: Vec<&str> =
        detail["timeline"].as_array().unwrap().iter().map(|t| t["change"].as_str().unwrap()).collect();
    assert_eq!(changes, ["created", "status", "code", "assignee"]);
    assert!(detail["timeline"].as_array().unwrap().iter().all(|t| t["actor_name"] == "Ann Archer"));

    // B4: the patron's transcript over REST has neither the note nor the code line.
    let (_, chat) = patron.get("/api/chat").await;
    let kinds: Vec<(u64, &str)> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["audience"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.iter().map(|k| k.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "by the patron's numbers");
    assert_eq!(chat["last"], 5, "the patron's number of the last line read");
    let (_, rest) = patron.get("/api/chat?after=3").await;
    let after_3: Vec<&Value> = rest["messages"].as_array().unwrap().iter().map(|m| &m["seq"]).collect();
    assert_eq!(after_3, [4, 5], "a page after a number of the patron's");
    assert!(kinds.iter().all(|k| k.1 == "everyone"));
    // And nothing the patron's socket ever received was for staff.
    assert!(pat_ws.frames.iter().all(|f| f["audience"] != "staff" && f["kind"] != "note"));
}

#[tokio::test]
async fn a_resolution_code_can_be_changed_and_the_change_is_kept() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "Opening hours?").await;
    ann.accept(patron.session).await;
    let path = format!("/api/sessions/{}/code", patron.session);
    assert_eq!(ann.post(&path, json!({"code": "answered"})).await.1["status"], "answered");
    assert_eq!(ann.post(&path, json!({"code": "lost_call"})).await.1["status"], "closed");
    let (_, list) = ann.get("/api/questions").await;
    let (_, detail) = ann.get(&format!("/api/questions/{}", list[0]["id"])).await;
    let codes: Vec<&Value> = detail["timeline"].as_array().unwrap().iter().filter(|t| t["change"] == "code").collect();
    assert_eq!(codes.len(), 2);
    assert_eq!((codes[1]["from"].as_str(), codes[1]["to"].as_str()), (Some("answered"), Some("lost_call")));
}

#[tokio::test]
async fn two_librarians_accepting_the_same_chat_at_once_exactly_one_gets_it() {
    let app = spawn_app().await;
    let (ann, carla) = (app.staff("ann").await, app.staff("carla").await);
    for round in 0..10 {
        let patron = app.start_chat("riverside-main", &format!("race {round}")).await;
        let (a, c) = tokio::join!(ann.accept(patron.session), carla.accept(patron.session));
        let mut statuses = [a.0, c.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: one wins, the other is told it is taken");
        let (winner, lost, name) =
            if a.0 == 200 { (ann.id, c.1, "Ann Archer") } else { (carla.id, a.1, "Carla Catalog") };
        assert_eq!(lost["error"]["message"], format!("conflict: {name} has already accepted this chat"), "who took it");
        let stored =
            app.state.app.store().session(refdesk_domain::ids::SessionId(patron.session)).await.unwrap().unwrap();
        assert_eq!(stored.ctx.librarian.map(|s| s.0), Some(winner));
        let joins = app.stored(patron.session).await.iter().filter(|m| m.body.contains("has joined")).count();
        assert_eq!(joins, 1, "one join line");
    }
    let (_, list) = ann.get("/api/questions?limit=200").await;
    assert_eq!(list.as_array().unwrap().len(), 10, "one question per chat");
}

#[tokio::test]
async fn a_librarian_cannot_serve_a_patron_of_another_institution_before_rollup() {
    let app = spawn_app().await;
    let ben = app.staff("ben").await; // Lakeside Public Library
    let patron = app.start_chat("riverside-main", "hello").await;
    let (_, queue) = ben.get("/api/queue").await;
    assert_eq!(queue, json!([]), "not offered before the rollup delay");
    let (status, _) = ben.accept(patron.session).await;
    assert_eq!(status, 404);
    assert!(app
        .state
        .app
        .store()
        .session(refdesk_domain::ids::SessionId(patron.session))
        .await
        .unwrap()
        .unwrap()
        .ctx
        .librarian
        .is_none());
}

#[tokio::test]
async fn nobody_is_told_of_their_own_typing_but_each_sees_the_other_type() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "Can I renew online?").await;
    ann.accept(patron.session).await;
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    let mut pat_ws = patron.socket().await;
    pat_ws.resume(None, 0).await;

    // The patron types first: Ann hears of it. Had the server echoed it to the
    // patron, it would reach the patron before Ann's own typing does.
    pat_ws.send(json!({"type": "typing", "on": true})).await;
    let heard = ann_ws.until(|f| f["type"] == "typing").await;
    let last = heard.last().unwrap();
    assert_eq!(
        (last["who"].as_str(), last["by"].as_str(), last["on"].as_bool()),
        (Some("Pat"), Some("patron"), Some(true)),
        "who types is said, whatever name they gave"
    );
    ann_ws.send(json!({"type": "typing", "session": patron.session, "on": true})).await;
    let heard = pat_ws.until(|f| f["type"] == "typing").await;
    assert_eq!(heard.last().unwrap()["who"], "Ann Archer", "the first typing the patron hears is the librarian's");
    assert_eq!(heard.last().unwrap()["by"], "staff");

    // A line after both: every typing frame either side got came before it.
    pat_ws.say(None, "message", "Thanks", "p1").await;
    ann_ws.say(Some(patron.session), "message", "You can.", "a1").await;
    pat_ws.events_until_seq(4).await;
    ann_ws.events_until_seq(4).await;
    let typing = |frames: &[Value]| -> Vec<String> {
        frames.iter().filter(|f| f["type"] == "typing").map(|f| f["who"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(typing(&pat_ws.frames), ["Ann Archer"], "the patron never hears of their own typing");
    assert_eq!(typing(&ann_ws.frames), ["Pat"], "the librarian never hears of her own typing");
}

#[tokio::test]
async fn a_member_who_may_no_longer_write_to_the_patron_still_ends_the_typing_they_began() {
    // Dev joined and began a reply; then he went to whisper. His "off" is
    // not refused (his desk would show an error) and reaches the staff who
    // were told "on"; the patron, who no longer sees him (B2), is not
    // told of him again, "on" or "off" (their indicator clears by itself).
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let dev = app.staff("dev").await;
    let patron = app.start_chat("riverside-main", "A joint question").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let conference = format!("/api/sessions/{}/conference", patron.session);
    assert_eq!(dev.post(&conference, json!({"mode": "join"})).await.0, 200);
    let mut dev_ws = dev.socket().await;
    dev_ws.resume(Some(patron.session), 0).await;
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    let mut pat_ws = patron.socket().await;
    pat_ws.resume(None, 0).await;
    dev_ws.send(json!({"type": "typing", "session": patron.session, "on": true})).await;
    for ws in [&mut pat_ws, &mut ann_ws] {
        let on = ws.until(|f| f["type"] == "typing").await.pop().unwrap();
        assert_eq!((on["who"].as_str(), on["on"].as_bool()), (Some("Dev Dewey"), Some(true)));
    }
    assert_eq!(dev.post(&conference, json!({"mode": "whisper"})).await.0, 200);
    dev_ws.send(json!({"type": "typing", "session": patron.session, "on": false})).await;
    let off = ann_ws.until(|f| f["type"] == "typing" && f["on"] == false).await.pop().unwrap();
    assert_eq!(off["who"], "Dev Dewey", "Ann's desk hears that Dev stopped");
    // A new reply from a whisperer is still refused, and so is an "off" for
    // what was never announced; the "off" above was not.
    dev_ws.send(json!({"type": "typing", "session": patron.session, "on": true})).await;
    dev_ws.send(json!({"type": "typing", "session": patron.session, "on": false})).await;
    dev_ws.send(json!({"type": "ping"})).await;
    let frames = dev_ws.until(|f| f["type"] == "pong").await;
    let errors: Vec<_> = frames.iter().filter(|f| f["type"] == "error").collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|f| f["code"] == "forbidden"), "{errors:?}");
    ann.post(&format!("/api/sessions/{}/messages", patron.session), json!({"body": "after"})).await;
    let frames = pat_ws.until(|f| f["body"] == "after").await;
    assert!(frames.iter().all(|f| f["type"] != "typing"), "nothing of a whisperer reached the patron: {frames:?}");
}
