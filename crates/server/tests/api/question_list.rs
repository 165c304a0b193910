//! The question list and its actions on live chats (R2, R4, R7, B1): what
//! the patron's socket and the librarian's socket each receive, and the
//! resulting status.

use crate::helpers::{spawn_app, Patron, Socket, Staff, TestApp};
use serde_json::{json, Value};

/// A live chat at riverside-main: ann chatting, both sockets resumed.
struct Live {
    patron: Patron,
    pat: Socket,
    ann: Staff,
    ann_ws: Socket,
    question: i64,
}

async fn live_chat(app: &TestApp, email: Option<&str>) -> Live {
    let mut form = json!({"name": "Pat", "question": "Where are the river maps?"});
    if let Some(e) = email {
        form["email"] = json!(e);
    }
    let patron = app.start_chat_with("riverside-main", form).await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let mut pat = patron.socket().await;
    pat.resume(None, 0).await;
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    let question = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    Live { patron, pat, ann, ann_ws, question }
}

/// The patron's events after `after` up to the next everyone-line, which the
/// librarian sends as a marker: anything staff-only in between must be absent.
async fn patron_sees_until_marker(l: &mut Live, marker: &str) -> Vec<Value> {
    l.ann_ws.say(Some(l.patron.session), "message", marker, &marker.replace(' ', "-")).await;
    l.pat.until(|f| f["type"] == "event" && f["body"] == marker).await;
    l.pat.events().into_iter().cloned().collect()
}

#[tokio::test]
async fn b1_acting_on_a_live_question_needs_confirmation_and_changes_nothing_without_it() {
    let app = spawn_app().await;
    let l = live_chat(&app, None).await;
    let carla = app.staff("carla").await;
    let q = l.ann.question_of(l.patron.session).await;
    assert_eq!(q["live"], true, "R2: the live chat is in the list, marked live");
    let before = app.stored(l.patron.session).await;
    let (status, err) = carla.act(l.question, "note", json!({"body": "psst"})).await;
    assert_eq!(status, 409);
    assert!(err["error"]["message"].as_str().unwrap().contains("patron may see it"), "{err}");
    assert_eq!(app.stored(l.patron.session).await, before);
    let (_, detail) = carla.get(&format!("/api/questions/{}", l.question)).await;
    assert_eq!(detail["timeline"].as_array().unwrap().len(), 1, "only 'created'");
}

#[tokio::test]
async fn r4_add_note_on_a_live_chat_appears_as_a_librarian_note_for_staff_only() {
    let app = spawn_app().await;
    let mut l = live_chat(&app, None).await;
    let carla = app.staff("carla").await;
    let (status, out) =
        carla.act(l.question, "note", json!({"body": "their card expired last week", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    let line = &out["chat_line"];
    assert_eq!((line["kind"].as_str(), line["audience"].as_str()), (Some("note"), Some("staff")));
    let note_seq = line["seq"].as_u64().unwrap();
    let got = l.ann_ws.events_until_seq(note_seq).await;
    assert_eq!(got.last().unwrap()["body"], "their card expired last week", "the chatting librarian sees it live");
    let seen = patron_sees_until_marker(&mut l, "marker-1").await;
    assert!(seen.iter().all(|e| e["body"] != "their card expired last week" && e["kind"] != "note"), "I1");
    let (_, detail) = carla.get(&format!("/api/questions/{}", l.question)).await;
    assert!(detail["timeline"].as_array().unwrap().iter().any(|t| t["change"] == "note"), "R7");
}

#[tokio::test]
async fn r4_message_to_the_librarian_is_a_note_addressed_to_them() {
    let app = spawn_app().await;
    let mut l = live_chat(&app, None).await;
    let carla = app.staff("carla").await;
    let (status, out) =
        carla.act(l.question, "message-librarian", json!({"body": "try the 1890 atlas", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    let seq = out["chat_line"]["seq"].as_u64().unwrap();
    let got = l.ann_ws.events_until_seq(seq).await;
    let last = got.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["body"].as_str()),
        (Some("note"), Some("To Ann Archer: try the 1890 atlas"))
    );
    let seen = patron_sees_until_marker(&mut l, "marker-2").await;
    assert!(seen.iter().all(|e| e["body"] != "To Ann Archer: try the 1890 atlas" && e["kind"] != "note"));
}

#[tokio::test]
async fn r4_an_answer_on_a_live_chat_appears_for_patron_and_librarian_and_is_emailed() {
    let smtp = crate::helpers::SmtpServer::start().await;
    let url = smtp.url();
    let app = crate::helpers::spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let mut l = live_chat(&app, Some("pat@example.org")).await;
    // A note earlier in the chat must never reach the e-mail (B4).
    l.ann_ws.say(Some(l.patron.session), "note", "SECRET-NOTE patron is a staff member's relative", "n1").await;
    let carla = app.staff("carla").await;
    let (status, out) = carla
        .act(
            l.question,
            "answer",
            json!({"body": "The river maps are in the map room, drawer 7.", "confirm_live": true}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["emailed_to"], "pat@example.org");
    assert_eq!(out["question"]["state"]["status"], "answered");
    let seq = out["chat_line"]["seq"].as_u64().unwrap();
    // The patron's number of it: the note before it is none of theirs.
    assert_eq!(out["chat_line"]["patron_seq"].as_u64(), Some(seq - 1));
    let pat = l.pat.events_until_seq(seq - 1).await;
    let answer = pat.last().unwrap();
    assert_eq!((answer["kind"].as_str(), answer["audience"].as_str()), (Some("answer"), Some("everyone")));
    assert_eq!(answer["body"], "The river maps are in the map room, drawer 7.");
    assert_eq!(l.ann_ws.events_until_seq(seq).await.last().unwrap()["kind"], "answer");

    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1);
    let raw = &mails[0];
    assert!(raw.contains("pat@example.org"), "{raw}");
    assert!(raw.contains(&format!("#{}", l.question)), "the question number is in the subject: {raw}");
    let text = crate::helpers::mail_text(raw);
    assert!(text.contains("drawer 7"), "{text}");
    assert!(!raw.contains("SECRET-NOTE") && !text.contains("SECRET-NOTE"), "no note in any e-mail");
}

#[tokio::test]
async fn r4_an_answer_for_a_patron_without_an_address_is_shown_in_the_chat_only() {
    let app = spawn_app().await;
    let mut l = live_chat(&app, None).await;
    let carla = app.staff("carla").await;
    let (status, out) = carla.act(l.question, "answer", json!({"body": "Drawer 7.", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["emailed_to"], Value::Null);
    assert!(out["notice"].as_str().unwrap().contains("shown in the chat only"), "{out}");
    let seq = out["chat_line"]["seq"].as_u64().unwrap();
    assert_eq!(l.pat.events_until_seq(seq).await.last().unwrap()["body"], "Drawer 7.");

    // Once the chat is over, an answer cannot reach this patron: refused, nothing changes —
    // also while the question is still live (ended, not yet coded).
    l.ann.post(&format!("/api/sessions/{}/end", l.patron.session), json!(null)).await;
    let (status, err) = carla.act(l.question, "answer", json!({"body": "Too late.", "confirm_live": true})).await;
    assert_eq!(status, 409, "{err}");
    l.ann.post(&format!("/api/sessions/{}/code", l.patron.session), json!({"code": "answered"})).await;
    let before = carla.get(&format!("/api/questions/{}", l.question)).await.1;
    let (status, err) = carla.act(l.question, "answer", json!({"body": "More."})).await;
    assert_eq!(status, 409);
    assert!(err["error"]["message"].as_str().unwrap().contains("no e-mail address"), "{err}");
    assert_eq!(carla.get(&format!("/api/questions/{}", l.question)).await.1, before);
}

#[tokio::test]
async fn r4_close_while_live_keeps_the_chat_going_and_a_later_code_decides_the_status() {
    let app = spawn_app().await;
    let mut l = live_chat(&app, None).await;
    let carla = app.staff("carla").await;
    let (status, out) = carla.act(l.question, "close", json!({"confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["question"]["state"]["status"], "closed");
    let line = &out["chat_line"];
    assert_eq!((line["kind"].as_str(), line["audience"].as_str()), (Some("system"), Some("staff")));
    assert!(line["body"].as_str().unwrap().starts_with("Question closed by Carla Catalog"));
    let seq = line["seq"].as_u64().unwrap();
    l.ann_ws.events_until_seq(seq).await;
    let seen = patron_sees_until_marker(&mut l, "still here").await;
    let closed = |e: &Value| e["body"].as_str().is_some_and(|b| b.starts_with("Question closed"));
    assert!(!seen.iter().any(closed), "the patron does not see it");

    // The chat goes on.
    let ack = l.pat.say(None, "message", "One more question", "p9").await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(l.ann.question_of(l.patron.session).await["state"]["status"], "closed");

    // Closing twice: a conflict.
    assert_eq!(carla.act(l.question, "close", json!({"confirm_live": true})).await.0, 409);

    // Reopened, the chatting librarian is told as she was of the close;
    // the patron is not (B4).
    let (status, out) = carla.act(l.question, "reopen", json!({"confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    let line = &out["chat_line"];
    assert_eq!((line["kind"].as_str(), line["audience"].as_str()), (Some("system"), Some("staff")));
    assert_eq!(line["body"], "Question reopened by Carla Catalog from the question list");
    l.ann_ws.events_until_seq(line["seq"].as_u64().unwrap()).await;
    let seen = patron_sees_until_marker(&mut l, "still here after").await;
    assert!(!seen.iter().any(|e| e["body"].as_str().is_some_and(|b| b.contains("reopened"))), "{seen:?}");
    let (_, rest) = l.patron.get("/api/chat").await;
    assert!(!rest.to_string().contains("reopened"), "nor over REST: {rest}");
    assert_eq!(carla.act(l.question, "close", json!({"confirm_live": true})).await.0, 200);

    // The chatting librarian sets "follow-up by me": the code reopens it, assigned to them.
    let (status, state) =
        l.ann.post(&format!("/api/sessions/{}/code", l.patron.session), json!({"code": "follow_up_by_me"})).await;
    assert_eq!(status, 200, "{state}");
    let q = l.ann.question_of(l.patron.session).await;
    assert_eq!((q["state"]["status"].as_str(), q["state"]["assignee"].as_i64()), (Some("new"), Some(l.ann.id)));
}

#[tokio::test]
async fn r4_close_while_live_and_no_code_ever_set_stays_closed() {
    let app = spawn_app().await;
    let l = live_chat(&app, None).await;
    let carla = app.staff("carla").await;
    assert_eq!(carla.act(l.question, "close", json!({"confirm_live": true})).await.0, 200);
    let (status, _) = l.ann.post(&format!("/api/sessions/{}/end", l.patron.session), json!(null)).await;
    assert_eq!(status, 200);
    let q = l.ann.question_of(l.patron.session).await;
    assert_eq!(q["state"]["status"], "closed");
    assert_eq!(q["state"]["code"], Value::Null);
}

#[tokio::test]
async fn a_stale_confirmation_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let l = live_chat(&app, None).await;
    let carla = app.staff("carla").await;
    // The chat ends and is coded while carla has the page open.
    l.ann.post(&format!("/api/sessions/{}/end", l.patron.session), json!(null)).await;
    l.ann.post(&format!("/api/sessions/{}/code", l.patron.session), json!({"code": "answered"})).await;
    let before = carla.get(&format!("/api/questions/{}", l.question)).await.1;
    let (status, err) = carla.act(l.question, "close", json!({"confirm_live": true})).await;
    assert_eq!(status, 409);
    assert!(err["error"]["message"].as_str().unwrap().contains("stale"), "{err}");
    assert_eq!(carla.get(&format!("/api/questions/{}", l.question)).await.1, before);
    // Without the stale confirmation it goes through.
    assert_eq!(carla.act(l.question, "close", json!({})).await.0, 200);
}

#[tokio::test]
async fn ended_questions_can_be_reopened_assigned_claimed_referred_and_recoded_with_a_timeline() {
    let app = spawn_app().await;
    let l = live_chat(&app, None).await;
    l.ann.post(&format!("/api/sessions/{}/end", l.patron.session), json!(null)).await;
    l.ann.post(&format!("/api/sessions/{}/code", l.patron.session), json!({"code": "lost_call"})).await;
    let carla = app.staff("carla").await;
    let q = l.question;
    assert_eq!(carla.act(q, "reopen", json!({})).await.1["question"]["state"]["status"], "new");
    assert_eq!(carla.act(q, "reopen", json!({})).await.0, 409, "only closed questions reopen");
    assert_eq!(carla.act(q, "claim", json!(null)).await.1["question"]["state"]["assignee"], carla.id);
    assert_eq!(carla.act(q, "assign", json!({"to": l.ann.id})).await.1["question"]["state"]["assignee"], l.ann.id);
    let ben = app.staff("ben").await; // another institution
    assert_eq!(carla.act(q, "assign", json!({"to": ben.id})).await.0, 422, "ben cannot work this question");
    let (_, mine) = l.ann.get("/api/questions?view=my_new").await;
    assert_eq!(mine.as_array().unwrap().len(), 1);

    let (status, _) = ben.get(&format!("/api/sessions/{}", l.patron.session)).await;
    assert_eq!(status, 404, "not Lakeside's chat before it is referred there");
    // Refer to Lakeside: pending, marked referred, and in Lakeside's list.
    let (status, out) = carla.act(q, "refer", json!({"library": "lakeside-public"})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["question"]["state"]["status"], "pending");
    assert_eq!(out["question"]["referred_name"], "Lakeside Public Library");
    let (_, referred) = ben.get("/api/questions?view=referred").await;
    assert_eq!(referred.as_array().unwrap().len(), 1, "the receiving library sees it");
    let (status, detail) = ben.get(&format!("/api/questions/{q}")).await;
    assert_eq!(status, 200);
    assert!(!detail["transcript"].as_array().unwrap().is_empty(), "and its transcript");
    // Its chat's page, and a socket's resume, by the same rule.
    let (status, chat) = ben.get(&format!("/api/sessions/{}", l.patron.session)).await;
    assert_eq!(status, 200, "{chat}");
    let mut ws = ben.socket().await;
    let resumed = ws.resume(Some(l.patron.session), 0).await;
    assert!(resumed.iter().any(|f| f["type"] == "event" && f["kind"] == "message"), "{resumed:?}");

    // Change the code from the question page (an admin in scope may).
    let (status, out) = carla.act(q, "code", json!({"code": "answered"})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["question"]["state"]["code"], "answered");
    assert_eq!(out["question"]["state"]["status"], "answered");
    let (status, _) = carla.act(q, "code", json!({"code": "referred"})).await;
    assert_eq!(status, 422, "a referral names its library");

    let (_, detail) = carla.get(&format!("/api/questions/{q}")).await;
    let kinds: Vec<&str> =
        detail["timeline"].as_array().unwrap().iter().map(|t| t["change"].as_str().unwrap()).collect();
    for expected in ["created", "code", "status", "assignee", "referred"] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
    assert!(detail["timeline"].as_array().unwrap().iter().any(|t| t["actor_name"] == "Carla Catalog"));
}

#[tokio::test]
async fn acting_outside_ones_scope_is_forbidden_and_bad_input_changes_nothing() {
    let app = spawn_app().await;
    let l = live_chat(&app, Some("pat@example.org")).await;
    let ben = app.staff("ben").await;
    let carla = app.staff("carla").await;
    let before = carla.get(&format!("/api/questions/{}", l.question)).await.1;
    for action in ["note", "close", "answer", "claim"] {
        let (status, err) = ben.act(l.question, action, json!({"body": "x", "confirm_live": true})).await;
        assert_eq!(status, 403, "{action}: {err}");
    }
    assert_eq!(ben.get(&format!("/api/questions/{}", l.question)).await.0, 403);
    let (_, list) = ben.get("/api/questions").await;
    assert_eq!(list, json!([]), "nothing out of scope is listed");

    let cases = [
        ("answer", json!({"body": "x", "email": "not-an-address", "confirm_live": true}), 422),
        ("answer", json!({"confirm_live": true}), 422),
        ("note", json!({"body": "   ", "confirm_live": true}), 422),
        ("refer", json!({"library": "no-such-library", "confirm_live": true}), 422),
        ("code", json!({"code": "nope", "confirm_live": true}), 422),
        ("explode", json!({}), 404),
        ("note", json!({"body": "x", "confirm_live": true, "extra": 1}), 422),
        ("note", json!({"body": 7, "confirm_live": true}), 422),
    ];
    for (action, body, status) in cases {
        let (got, err) = carla.act(l.question, action, body.clone()).await;
        assert_eq!(got, status, "{action} {body}: {err}");
        assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(carla.act(999_999, "close", json!({})).await.0, 404);
    assert_eq!(carla.get(&format!("/api/questions/{}", l.question)).await.1, before, "nothing changed");

    // Bad list parameters get a clear error.
    for bad in [
        "view=everything",
        "status=open",
        "limit=0",
        "from=yesterday",
        "colour=red",
        "library=nowhere",
        "code=nope",
        "view=",
    ] {
        let (status, err) = carla.get(&format!("/api/questions?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {err}");
    }
    // A number too large is told as such, not as "not a number".
    for (bad, says) in [("limit=999999999999", "between 1 and 200"), ("before=99999999999999999999", "out of range")] {
        let (_, err) = carla.get(&format!("/api/questions?{bad}")).await;
        assert!(err["error"]["message"].as_str().unwrap().contains(says), "{bad}: {err}");
    }
    // Another cooperative's library is refused as an unknown one is (it
    // listed nothing, as if that library had no questions).
    let s = app.state.app.store();
    let coop = s.create_cooperative("Faraway Cooperative", refdesk_domain::question::default_codes()).await.unwrap();
    let inst = s.create_institution(coop, "Faraway City").await.unwrap();
    s.create_library(inst, "faraway-city", "Faraway City Library").await.unwrap();
    for path in ["/api/questions?library=faraway-city", "/api/questions/export?library=faraway-city"] {
        let (status, err) = carla.get(path).await;
        assert_eq!((status, err["error"]["field"].as_str()), (422, Some("library")), "{path}: {err}");
    }
}

#[tokio::test]
async fn the_list_has_its_views_filters_search_and_paging() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let mut ids = Vec::new();
    for (i, q) in ["Where are the maps?", "Renew my book", "Opening hours", "Interlibrary loan"].iter().enumerate() {
        let p = app.start_chat("riverside-main", q).await;
        ann.accept(p.session).await;
        if i < 2 {
            ann.post(&format!("/api/sessions/{}/end", p.session), json!(null)).await;
            let code = if i == 0 { "follow_up_by_me" } else { "lost_call" };
            ann.post(&format!("/api/sessions/{}/code", p.session), json!({"code": code})).await;
        } else {
            ann.post(&format!("/api/sessions/{}/messages", p.session), json!({"body": "zebra atlas on floor 3"})).await;
        }
        ids.push(p.session);
    }
    let count = |v: &Value| v.as_array().unwrap().len();
    let get = |q: &'static str| {
        let ann = &ann;
        async move { ann.get(&format!("/api/questions?{q}")).await.1 }
    };
    assert_eq!(count(&get("view=all").await), 4);
    assert_eq!(count(&get("view=live").await), 2, "B1: the live ones");
    assert!(get("view=live").await.as_array().unwrap().iter().all(|q| q["live"] == true));
    assert_eq!(count(&get("view=my_new").await), 1);
    assert_eq!(count(&get("view=closed").await), 1);
    assert_eq!(count(&get("view=active").await), 3);
    assert_eq!(count(&get("status=answered").await), 2);
    assert_eq!(count(&get("code=lost_call").await), 1);
    assert_eq!(count(&get("q=renew").await), 1, "search in the question");
    assert_eq!(count(&get("q=zebra%20atlas").await), 2, "search in the transcript");
    assert_eq!(count(&get("q=100%25").await), 0, "wildcards are literal");
    assert_eq!(count(&get(Box::leak(format!("librarian={}", ann.id).into_boxed_str())).await), 4);
    assert_eq!(count(&get("library=riverside-law").await), 0);
    // Newest first, and paging continues where the page ended.
    let page1 = get("limit=3").await;
    let first: Vec<i64> = page1.as_array().unwrap().iter().map(|q| q["id"].as_i64().unwrap()).collect();
    assert!(first.windows(2).all(|w| w[0] > w[1]));
    let page2 = ann.get(&format!("/api/questions?limit=3&before={}", first[2])).await.1;
    assert_eq!(count(&page2), 1);
    // Every row says what the list needs.
    let row = &get("view=all").await[0];
    for key in ["live", "library_name", "librarian_name", "last_message_at", "state"] {
        assert!(!row[key].is_null(), "{key} in {row}");
    }
}

#[tokio::test]
async fn staff_see_the_patrons_name_in_the_list_and_their_address_on_the_question() {
    let app = spawn_app().await;
    let l = live_chat(&app, Some("pat@example.org")).await;
    let (_, list) = l.ann.get("/api/questions").await;
    assert_eq!(list[0]["patron_name"], "Pat");
    assert!(list[0].get("patron_email").is_none(), "the list carries no addresses");
    let (status, detail) = l.ann.get(&format!("/api/questions/{}", l.question)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (detail["question"]["patron_name"].as_str(), detail["patron_email"].as_str()),
        (Some("Pat"), Some("pat@example.org"))
    );

    // A patron who gave neither: both null, not "Patron".
    let other = app.start_chat_with("riverside-main", json!({"question": "Anonymous?"})).await;
    l.ann.accept(other.session).await;
    let q = l.ann.question_of(other.session).await;
    assert_eq!(q["patron_name"], Value::Null);
    let (_, detail) = l.ann.get(&format!("/api/questions/{}", q["id"])).await;
    assert_eq!(detail["patron_email"], Value::Null);
}

/// Issue 13: a referral is told at once to the desks of the library it is
/// referred to, and to nobody else.
#[tokio::test]
async fn a_referral_alerts_the_receiving_librarys_desks_only() {
    let app = spawn_app().await;
    let l = live_chat(&app, None).await;
    l.ann.post(&format!("/api/sessions/{}/end", l.patron.session), json!(null)).await;
    let ben = app.staff("ben").await; // Lakeside Public
    let mut ben_ws = ben.socket().await;
    let mut ann_ws = l.ann.socket().await;
    let carla = app.staff("carla").await;
    let (status, out) =
        carla.act(l.question, "refer", json!({"library": "lakeside-public", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    // The line in the chat names where it went (staff only).
    assert_eq!(out["chat_line"]["body"], "Question referred to Lakeside Public Library by Carla Catalog");
    assert_eq!(out["chat_line"]["audience"], "staff");
    let frames = ben_ws.until(|f| f["type"] == "referred").await;
    let alert = frames.last().unwrap();
    assert_eq!(alert["question"], l.question);
    assert_eq!(alert["library_name"], "Lakeside Public Library");
    assert_eq!(alert["by"], "Carla Catalog");
    assert!(alert["text"].as_str().is_some_and(|t| !t.is_empty()));
    // Ann (Riverside) hears nothing of it: a ping's answer comes first.
    ann_ws.send(json!({"type": "ping"})).await;
    let seen = ann_ws.until(|f| f["type"] == "pong").await;
    assert!(seen.iter().all(|f| f["type"] != "referred"), "{seen:?}");
}

/// A code set on the question page that leaves a question to its library's
/// follow-up is told at once to that library's desks, but not to whoever
/// set it.
#[tokio::test]
async fn a_follow_up_flag_alerts_the_questions_library_but_not_who_set_it() {
    let app = spawn_app().await;
    let l = live_chat(&app, None).await;
    l.ann.post(&format!("/api/sessions/{}/end", l.patron.session), json!(null)).await;
    let mut ann_ws = l.ann.socket().await;
    let carla = app.staff("carla").await;
    let mut carla_ws = carla.socket().await;
    let body = json!({"code": "follow_up_by_library", "confirm_live": true});
    let (status, out) = carla.act(l.question, "code", body).await;
    assert_eq!(status, 200, "{out}");
    let told = ann_ws.until(|f| f["type"] == "referred").await.last().unwrap().clone();
    assert_eq!((told["question"].as_i64(), told["follow_up"].as_bool()), (Some(l.question), Some(true)));
    assert_eq!(told["by"], "Carla Catalog");
    carla_ws.send(json!({"type": "ping"})).await;
    let seen = carla_ws.until(|f| f["type"] == "pong").await;
    assert!(seen.iter().all(|f| f["type"] != "referred"), "not told of her own code: {seen:?}");
}

/// Every entry of a question's timeline, read a page at a time (`timeline_after`,
/// `timeline_more`); the pages' lengths and their JSON's bytes beside.
async fn whole_timeline(staff: &Staff, question: i64) -> (Vec<Value>, Vec<(usize, usize)>) {
    let (mut entries, mut pages) = (Vec::new(), Vec::new());
    loop {
        let (status, d) = staff.get(&format!("/api/questions/{question}?timeline_after={}", entries.len())).await;
        assert_eq!(status, 200, "{d}");
        let page = d["timeline"].as_array().expect("a page of the timeline").clone();
        pages.push((page.len(), d["timeline"].to_string().len()));
        let more = d["timeline_more"].as_bool().expect("timeline_more");
        assert!(!more || !page.is_empty(), "an empty page with more to come");
        entries.extend(page);
        if !more {
            return (entries, pages);
        }
    }
}

/// A question's page holds a page of its timeline, not the whole of it: at
/// most 100 entries and about 256 KiB of their text (a timeline of 500 of
/// the longest notes was 8 MB, built on every look and, while the chat was
/// live, every few seconds); the rest is read after the entries shown, each
/// entry once and in order.
#[tokio::test]
async fn a_questions_timeline_is_read_a_page_at_a_time() {
    let app = crate::helpers::spawn_app_with(crate::helpers::staff_writes_unbounded).await;
    let l = live_chat(&app, None).await;
    let long = "\u{1D11E}".repeat(3996); // ~16 KB of four-byte characters
    for n in 0..190 {
        let body = if n < 40 { format!("{n} {long}") } else { format!("note {n}") };
        let (status, out) = l.ann.act(l.question, "note", json!({ "body": body, "confirm_live": true })).await;
        assert_eq!(status, 200, "{out}");
    }
    let (entries, pages) = whole_timeline(&l.ann, l.question).await;
    for &(len, bytes) in &pages {
        assert!(len <= 100, "a page of {len} entries: {pages:?}");
        assert!(bytes <= 256 * 1024 + 100 * 300, "a page of {bytes} bytes: {pages:?}");
    }
    assert!(pages[0].0 < 20, "the long notes are cut by bytes: {pages:?}");
    let notes: Vec<String> = entries
        .iter()
        .filter(|t| t["change"] == "note")
        .map(|t| t["body"].as_str().unwrap().split(' ').next().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..190).map(|n| if n < 40 { n.to_string() } else { "note".into() }).collect();
    assert_eq!(notes, expected, "every note once, in order");
    let shorts: Vec<&str> =
        entries.iter().filter_map(|t| t["body"].as_str()).filter(|b| b.starts_with("note ")).collect();
    assert_eq!(shorts, (40..190).map(|n| format!("note {n}")).collect::<Vec<_>>());
    // Past the end: nothing, and nothing more.
    let (_, d) = l.ann.get(&format!("/api/questions/{}?timeline_after={}", l.question, entries.len())).await;
    assert_eq!((d["timeline"].as_array().map(Vec::len), &d["timeline_more"]), (Some(0), &json!(false)), "{d}");
}

/// A question is erased whole: notes stop at
/// `limits.max_question_entries`, and what moves the question on (here
/// closing it) may still add a few past it; nothing refused is written.
#[tokio::test]
async fn notes_stop_when_a_questions_timeline_is_full_and_closing_it_still_goes() {
    let app = crate::helpers::spawn_app_with(|c| {
        crate::helpers::staff_writes_unbounded(c);
        c.limits.max_question_entries = 10;
    })
    .await;
    let l = live_chat(&app, None).await;
    l.ann.post(&format!("/api/sessions/{}/end", l.patron.session), json!(null)).await;
    l.ann.post(&format!("/api/sessions/{}/code", l.patron.session), json!({"code": "answered"})).await;
    let timeline = || async { whole_timeline(&l.ann, l.question).await.0.len() };
    let mut refused = None;
    for n in 0..20 {
        let (status, body) = l.ann.act(l.question, "note", json!({"body": format!("note {n}")})).await;
        if status != 200 {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("a note past the cap is refused");
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("question_full")), "{body}");
    assert_eq!(timeline().await, 10, "the notes stopped at the cap");
    let carla = app.staff("carla").await;
    let (status, body) = carla.act(l.question, "note", json!({"body": "one more, from an admin"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("question_full")), "whoever writes: {body}");
    let (status, body) = l.ann.act(l.question, "close", json!({})).await;
    assert_eq!(status, 200, "closing goes past the cap: {body}");
    assert_eq!(l.ann.question_of(l.patron.session).await["state"]["status"], "closed");
    assert!(timeline().await > 10);
    // Reopening and closing again add entries until a reopening is refused,
    // a hundred past the cap; a close is never refused, so the question is
    // never left open past it.
    let mut reopened_until = None;
    for n in 0..200 {
        let (status, body) = l.ann.act(l.question, "reopen", json!({})).await;
        if status != 200 {
            assert_eq!((status, body["error"]["code"].as_str()), (429, Some("question_full")), "{body}");
            reopened_until = Some(n);
            break;
        }
        if n == 60 {
            let (status, body) = l.ann.act(l.question, "note", json!({"body": "past the cap"})).await;
            assert_eq!(status, 429, "notes stay refused: {body}");
        }
        let (status, body) = l.ann.act(l.question, "close", json!({})).await;
        assert_eq!(status, 200, "closing is never refused: {body}");
    }
    assert!(reopened_until.is_some(), "a reopening is refused past the cap and a hundred");
    assert!(timeline().await <= 10 + 100 + 2, "the timeline stops there: {}", timeline().await);
    assert_eq!(l.ann.question_of(l.patron.session).await["state"]["status"], "closed");
}

/// Pat asks Riverside (giving an address); after the roll-up Ben, of
/// Lakeside, takes the chat. Returns Pat, Ben, Ann (of Riverside) and the
/// question's number.
async fn ben_serves_riversides_patron(app: &TestApp, question: &str) -> (Patron, Staff, Staff, i64) {
    let form = json!({"name": "Pat", "question": question, "email": "pat@example.org"});
    let patron = app.start_chat_with("riverside-main", form).await;
    app.clock().advance(60_000);
    let ben = app.staff("ben").await;
    assert_eq!(ben.accept(patron.session).await.0, 200);
    let ann = app.staff("ann").await;
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    (patron, ben, ann, q)
}

#[tokio::test]
async fn a_librarian_who_chatted_for_the_cooperative_wraps_the_question_up_and_never_sends_it_elsewhere() {
    let app = crate::helpers::spawn_app_with_manual_clock().await;
    let (patron, ben, ann, q) = ben_serves_riversides_patron(&app, "Whose question is this?").await;
    let act = |what: &str| format!("/api/questions/{q}/{what}");
    let question = |app: &TestApp| {
        let store = app.state.app.store().clone();
        async move { store.question(refdesk_domain::ids::QuestionId(q)).await.unwrap().unwrap() }
    };
    // What decides who has the question, or where it goes: refused, nothing changed.
    let before = question(&app).await;
    let refused = [
        ("refer", json!({"library": "lakeside-public", "confirm_live": true})),
        ("assign", json!({"to": ben.id, "confirm_live": true})),
        ("claim", json!({"confirm_live": true})),
        ("close", json!({"confirm_live": true})),
        ("answer", json!({"body": "Here", "email": "someone@example.org", "confirm_live": true})),
        ("code", json!({"code": "referred", "library": "lakeside-public", "confirm_live": true})),
    ];
    for (what, body) in &refused {
        let (status, out) = ben.post(&act(what), body.clone()).await;
        assert_eq!(status, 403, "Ben may not {what}: {out}");
        assert!(out["error"]["message"].as_str().unwrap().contains("its library's staff"), "{out}");
    }
    let after = question(&app).await;
    assert_eq!((after.state, after.referred), (before.state, before.referred), "nothing changed");
    // Riverside's own staff still may (the refusal is Ben's alone).
    let (status, out) = ann.post(&act("claim"), json!({"confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    // The wrap-up is his: a note, an answer to the patron's own address, the code.
    let (status, out) = ben.post(&act("note"), json!({"body": "Sent the maps", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = ben.post(&act("answer"), json!({"body": "The maps are here", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    let own = json!({"body": "And the atlas", "email": "Pat@Example.org", "confirm_live": true});
    let (status, out) = ben.post(&act("answer"), own).await;
    assert_eq!(status, 200, "the patron's own address, written out: {out}");
    assert_eq!(ben.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
    let (status, out) = ben.post(&act("code"), json!({"code": "answered", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    // Within the day after the end he may still put it right (a code set
    // in the chat, a word forgotten).
    let (status, out) = ben.post(&act("note"), json!({"body": "One more thing"})).await;
    assert_eq!(status, 200, "{out}");
    // A day after the end the question is Riverside's alone. (A day
    // outlasts a sign-in: each signs in again.)
    app.clock().advance(refdesk_domain::authz::WRAP_UP_MS + 1);
    let ben = app.staff("ben").await;
    let (status, out) = ben.post(&act("note"), json!({"body": "Later still"})).await;
    assert_eq!(status, 403, "{out}");
    assert!(out["error"]["message"].as_str().unwrap().contains("its library's now"), "{out}");
    let (status, out) = ben.post(&act("code"), json!({"code": "practice"})).await;
    assert_eq!(status, 403, "Ben cannot re-code it out of Riverside's figures: {out}");
    let desk_code = format!("/api/sessions/{}/code", patron.session);
    let (status, out) = ben.post(&desk_code, json!({"code": "practice"})).await;
    assert_eq!(status, 403, "nor from the desk: {out}");
    assert_eq!(question(&app).await.state.code.as_deref(), Some("answered"));
    let ann = app.staff("ann").await;
    assert_eq!(ann.post(&act("note"), json!({"body": "Ours"})).await.0, 200, "Riverside's still may");

    // A day from the end, not from his last word: his own notes do not make it longer.
    let patron = app.start_chat("riverside-main", "And this one?").await;
    app.clock().advance(60_000);
    assert_eq!(ben.accept(patron.session).await.0, 200);
    assert_eq!(ben.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let note = format!("/api/questions/{q}/note");
    app.clock().advance(refdesk_domain::authz::WRAP_UP_MS - 60_000);
    let ben = app.staff("ben").await;
    assert_eq!(ben.post(&note, json!({"body": "Late", "confirm_live": true})).await.0, 200);
    app.clock().advance(2 * 60_000);
    let (status, out) = ben.post(&note, json!({"body": "Too late", "confirm_live": true})).await;
    assert_eq!(status, 403, "{out}");
}

/// DESIGN §2: a librarian who served another library's patron sees the
/// session and its question while they are part of it — the chat, and the
/// day of its wrap-up — and no longer: not the question, its transcript or
/// the patron's address, not in the list, not the session's page nor a
/// socket's resume.
#[tokio::test]
async fn a_librarian_who_chatted_for_the_cooperative_reads_the_question_only_while_they_are_part_of_it() {
    // Sign-ins outlast the day here: a socket kept open across it is tried.
    let app = crate::helpers::spawn_app_with_manual_clock_and(|c| c.limits.login_hours = 24 * 7).await;
    let (patron, ben, _, q) = ben_serves_riversides_patron(&app, "Maps of the river?").await;
    assert_eq!(ben.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
    let listed = |list: &Value| list.as_array().unwrap().iter().any(|r| r["id"] == q);
    let session_page = format!("/api/sessions/{}", patron.session);

    // Within the day after the end: all of it.
    app.clock().advance(refdesk_domain::authz::WRAP_UP_MS - 60_000);
    let ben = app.staff("ben").await;
    let (status, out) = ben.get(&format!("/api/questions/{q}")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["patron_email"], "pat@example.org");
    let (status, list) = ben.get("/api/questions").await;
    assert_eq!(status, 200, "{list}");
    assert!(listed(&list), "in his list: {list}");
    assert_eq!(ben.get(&session_page).await.0, 200);
    let mut desk = ben.socket().await;
    assert!(!desk.resume(Some(patron.session), 0).await.is_empty(), "his socket reads the chat");
    let mut kept = ben.socket().await;
    kept.resume(Some(patron.session), 0).await;
    kept.send(json!({"type": "monitor"})).await;
    kept.until(|f| f["type"] == "monitor").await;
    desk.close().await;

    // A day after the end: none of it. Riverside's own staff still read it,
    // and write in it (no code yet: the question is live, and a note from
    // its page is a line of the chat): a socket of his open since reads
    // none of it, nor does his chat monitor tick for it.
    app.clock().advance(2 * 60_000);
    let ann = app.staff("ann").await;
    let secret = "Known researcher, phone 555-0100";
    let (status, out) = ann.act(q, "note", json!({"body": secret, "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    let seen = kept.frames.len();
    assert!(!kept.closed_within(std::time::Duration::from_millis(1_500)).await, "the socket stays open");
    let about = |f: &&Value| {
        f["session"] == patron.session || f["ctx"]["id"] == patron.session || f.to_string().contains("555-0100")
    };
    let after: Vec<&Value> = kept.frames[seen..].iter().filter(about).collect();
    assert!(after.is_empty(), "nothing of the chat reaches his open socket: {after:?}");
    // Nor after he asks for it again (refused).
    kept.send(json!({"type": "resume", "session": patron.session, "after": 0})).await;
    let frames = kept.until(|f| f["type"] == "synced" || f["type"] == "error").await;
    assert_eq!(frames.last().unwrap()["type"], "error", "{frames:?}");
    assert_eq!(ann.act(q, "note", json!({"body": "And again", "confirm_live": true})).await.0, 200);
    let seen = kept.frames.len();
    assert!(!kept.closed_within(std::time::Duration::from_millis(1_000)).await);
    assert_eq!(kept.frames[seen..].iter().filter(about).count(), 0, "{:?}", &kept.frames[seen..]);
    let ben = app.staff("ben").await;
    let (status, out) = ben.get(&format!("/api/questions/{q}")).await;
    assert_eq!(status, 403, "{out}");
    assert!(!out.to_string().contains("pat@example.org"), "{out}");
    let (status, list) = ben.get("/api/questions").await;
    assert_eq!(status, 200, "{list}");
    assert!(!listed(&list), "no longer in his list: {list}");
    let (status, list) = ben.get("/api/questions?q=river").await;
    assert_eq!(status, 200, "{list}");
    assert!(!listed(&list), "nor found by its words: {list}");
    let (status, out) = ben.get(&session_page).await;
    assert_eq!(status, 404, "{out}");
    let mut desk = ben.socket().await;
    desk.send(json!({"type": "resume", "session": patron.session, "after": 0})).await;
    let frames = desk.until(|f| f["type"] == "synced" || f["type"] == "error").await;
    assert!(frames.iter().all(|f| f["type"] != "event"), "no line of it: {frames:?}");
    assert_eq!(frames.last().unwrap()["type"], "error", "{frames:?}");
    let ann = app.staff("ann").await;
    assert_eq!(ann.get(&format!("/api/questions/{q}")).await.0, 200);
    let (_, list) = ann.get("/api/questions").await;
    assert!(listed(&list), "in Riverside's list: {list}");
}

/// A code that gives the question to its chatting librarian ("Follow-up by
/// me", "Answered") gives it to nobody when they chatted for another
/// library: they read it for a day only, and a follow-up left with them
/// would be no one's after. It waits, unassigned, for its library's staff.
#[tokio::test]
async fn a_follow_up_promised_by_a_librarian_of_another_library_waits_for_the_patrons_library() {
    let app = crate::helpers::spawn_app_with_manual_clock().await;
    // From the desk's code route.
    let (patron, ben, ann, q) = ben_serves_riversides_patron(&app, "Census of 1890?").await;
    let (status, out) =
        ben.post(&format!("/api/sessions/{}/code", patron.session), json!({"code": "follow_up_by_me"})).await;
    assert_eq!(status, 200, "{out}");
    let state = ann.question_of(patron.session).await["state"].clone();
    assert_eq!((state["status"].as_str(), state["assignee"].as_i64()), (Some("new"), None), "{state}");
    let (_, unassigned) = ann.get("/api/questions?view=unassigned").await;
    assert!(unassigned.as_array().unwrap().iter().any(|r| r["id"] == q), "in Riverside's unassigned: {unassigned}");
    // Flagged for its library: in its Follow-up view, not only among the
    // new ones (nothing there said a patron was promised an answer).
    assert_eq!(state["follow_up"], true, "{state}");
    let (_, follow_up) = ann.get("/api/questions?view=follow_up").await;
    assert!(follow_up.as_array().unwrap().iter().any(|r| r["id"] == q), "in Riverside's follow-up: {follow_up}");
    // From the question page.
    let (patron, ben, ann, _) = ben_serves_riversides_patron(&app, "Maps of 1900?").await;
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let (status, out) = ben.act(q, "code", json!({"code": "follow_up_by_me", "confirm_live": true})).await;
    assert_eq!(status, 200, "{out}");
    let state = ann.question_of(patron.session).await["state"].clone();
    assert_eq!((&state["assignee"], &state["follow_up"]), (&Value::Null, &json!(true)), "{state}");
    // Riverside's own librarian keeps hers.
    let patron = app.start_chat("riverside-main", "Mine?").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let (status, _) =
        ann.post(&format!("/api/sessions/{}/code", patron.session), json!({"code": "follow_up_by_me"})).await;
    assert_eq!(status, 200);
    assert_eq!(ann.question_of(patron.session).await["state"]["assignee"], json!(ann.id));
}

/// A patron who calls back is found by their name or address, and a
/// question by its number ("#5" or "5"), as well as by its words.
#[tokio::test]
async fn the_list_finds_a_question_by_the_patrons_name_or_address_or_its_number() {
    let app = spawn_app().await;
    let form = json!({"name": "Evangeline Moss", "question": "Sanborn maps?", "email": "evan.moss@example.org"});
    let patron = app.start_chat_with("riverside-main", form).await;
    let other = app.start_chat("riverside-main", "Census of 1890?").await;
    let ann = app.staff("ann").await;
    for s in [patron.session, other.session] {
        assert_eq!(ann.accept(s).await.0, 200);
    }
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let found = |list: &Value| list.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>();
    for words in ["evangeline", "Moss", "evan.moss@example", &format!("%23{q}"), "Sanborn"] {
        let (status, list) = ann.get(&format!("/api/questions?q={words}")).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(found(&list), vec![q], "{words}: {list}");
    }
    // A bare number is the question's, and words too ("1" is in "1890").
    let (_, list) = ann.get(&format!("/api/questions?q={q}")).await;
    assert!(found(&list).contains(&q), "{list}");
}

/// A question nobody chatted about (left with the offline form) has no
/// chatting librarian: its library's librarians code it, as they answer it
/// (Ann was told "only the chatting librarian or an admin sets the code",
/// and such questions stayed uncoded); whoever codes it stands in for the
/// chatting librarian ("Follow-up by me" is theirs to follow up; an admin
/// from elsewhere is not); another library's may not, nor may Ann once it
/// is referred to another library, which works it then (a code would take
/// it back).
#[tokio::test]
async fn a_form_question_is_coded_by_its_librarys_librarians() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    app.ask_by_form("riverside-main", "Is the archive open on Sundays?").await;
    app.ask_by_form("riverside-main", "Do you lend laptops?").await;
    app.ask_by_form("riverside-main", "Where is the fax?").await;
    let (_, list) = ann.get("/api/questions").await;
    let id = |text: &str| {
        list.as_array().unwrap().iter().find(|q| q["text"] == text).map(|q| q["id"].as_i64().unwrap()).unwrap()
    };
    let (sundays, laptops, fax) =
        (id("Is the archive open on Sundays?"), id("Do you lend laptops?"), id("Where is the fax?"));

    let ben = app.staff("ben").await;
    let (status, _) = ben.act(sundays, "code", json!({"code": "answered"})).await;
    assert!(status == 403 || status == 404, "another library's librarian: {status}");
    let (status, out) = ann.act(sundays, "code", json!({"code": "follow_up_by_me"})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["question"]["state"]["code"], "follow_up_by_me", "{out}");
    assert_eq!(out["question"]["state"]["assignee"], ann.id, "Ann's to follow up");
    let (status, out) = ann.act(sundays, "code", json!({"code": "answered"})).await;
    assert_eq!((status, &out["question"]["state"]["status"]), (200, &json!("answered")), "{out}");

    let carla = app.staff("carla").await;
    let (status, out) = carla.act(laptops, "refer", json!({"library": "lakeside-public"})).await;
    assert_eq!(status, 200, "{out}");
    let (status, _) = ann.act(laptops, "code", json!({"code": "answered"})).await;
    assert_eq!(status, 403, "referred to Lakeside: Lakeside's to work");
    let (_, page) = ann.get(&format!("/api/questions/{laptops}")).await;
    assert_eq!(page["question"]["referred_name"], "Lakeside Public Library", "still referred: {page}");

    // The cooperative's admin, from another library, stands in for nobody:
    // the question stays unassigned, for the library's librarians.
    let erin = app.staff("erin").await;
    let (status, out) = erin.act(fax, "code", json!({"code": "follow_up_by_me"})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["question"]["state"]["assignee"], json!(null), "{out}");
}

/// A question answered by e-mail shows the answer as its last message (it
/// showed the chat's last line: a form question answered today said it was
/// last written to when it was asked).
#[tokio::test]
async fn an_emailed_answer_is_a_questions_last_message() {
    let app = crate::helpers::spawn_app_with_manual_clock().await;
    app.ask_by_form("riverside-main", "Do you hold the 1911 census?").await;
    let ann = app.staff("ann").await;
    let listed = |list: &serde_json::Value| {
        let q = list.as_array().unwrap().iter().find(|q| q["text"] == "Do you hold the 1911 census?").cloned();
        q.map(|q| (q["id"].as_i64().unwrap(), q["last_message_at"].as_i64().unwrap())).unwrap()
    };
    let (q, asked) = listed(&ann.get("/api/questions").await.1);
    app.clock().advance(3_600_000);
    let ann = app.staff("ann").await; // an hour later: signed in again
    let (status, out) = ann.act(q, "answer", json!({"body": "Yes, on microfilm."})).await;
    assert_eq!(status, 200, "{out}");
    let (_, last) = listed(&ann.get("/api/questions").await.1);
    assert!(last >= asked + 3_600_000, "the answer's time: {last} against {asked}");
    let (_, page) = ann.get(&format!("/api/questions/{q}")).await;
    assert_eq!(page["question"]["last_message_at"], last, "the page says the same");
}
