//! Abusive patrons and the open queue (issue 12): a librarian warns, ends
//! and blocks; the blocked patron is refused politely (the form as the
//! library sets); admins in scope list and lift blocks, which the question
//! timeline records; blocks run out (manual clock). The queue is bounded
//! per network and per library, and chats nobody takes expire.

use crate::helpers::{spawn_app_with, spawn_app_with_manual_clock_and, Patron, TestApp};
use serde_json::{json, Value};

const BROWSER: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Starts a chat from the loopback address `from`, with a browser id.
async fn start_from(app: &TestApp, from: [u8; 4], browser: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build().unwrap();
    let r = client
        .post(app.url("/api/libraries/riverside-main/chats"))
        .json(&json!({"name": "Pat", "question": "Is the archive open?", "browser": browser}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn form_from(app: &TestApp, from: [u8; 4]) -> (u16, Value) {
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build().unwrap();
    let r = client
        .post(app.url("/api/libraries/riverside-main/questions"))
        .json(&json!({"email": "pat@example.org", "question": "Is the archive open?"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn patron(app: &TestApp, v: &Value) -> Patron {
    Patron { session: v["session"].as_i64().unwrap(), token: v["token"].as_str().unwrap().to_owned(), addr: app.addr }
}

/// A chat started from `from` in [`BROWSER`], accepted by Ann, its
/// patron's socket following it: the patron, Ann and that socket.
async fn accepted_by_ann(app: &TestApp, from: [u8; 4]) -> (Patron, crate::helpers::Staff, crate::helpers::Socket) {
    let (status, started) = start_from(app, from, Some(BROWSER)).await;
    assert_eq!(status, 201, "{started}");
    let p = patron(app, &started);
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(p.session).await.0, 200);
    let mut pat = p.socket().await;
    pat.resume(None, 0).await;
    (p, ann, pat)
}

#[tokio::test]
async fn a_librarian_warns_then_blocks_and_an_admin_in_scope_lifts_the_block() {
    let app = spawn_app_with(|_| {}).await;
    let (p, ann, mut pat) = accepted_by_ann(&app, [127, 0, 0, 21]).await;

    // A warning: the canned line, as Ann's, reaches the patron.
    let (status, warned) = ann.post(&format!("/api/sessions/{}/warn", p.session), json!({})).await;
    assert_eq!(status, 200, "{warned}");
    let seen =
        pat.until(|f| f["type"] == "event" && f["body"].as_str().is_some_and(|b| b.contains("respectful"))).await;
    assert_eq!(seen.last().unwrap()["author"]["name"], "Ann Archer");

    // A reason is required; the block ends the chat.
    let path = format!("/api/sessions/{}/block", p.session);
    assert_eq!(ann.post(&path, json!({"reason": " "})).await.0, 422);
    assert_eq!(ann.post(&path, json!({"reason": "threats", "hours": 100000})).await.0, 422);
    let (status, block) = ann.post(&path, json!({"reason": "threats after a warning"})).await;
    assert_eq!(status, 201, "{block}");
    // The patron is told, just before the end, that no other chat will be
    // taken for a while (not the reason: that is the library's); their
    // rating is not asked, nor taken.
    let seen = pat.until(|f| f["system"] == "ended").await;
    let told = seen.iter().find(|f| f["system"] == "blocked").expect("the patron is told of the block");
    assert!(told["body"].as_str().unwrap().contains("cannot take another chat from you"), "{told}");
    assert!(!seen.iter().any(|f| f.to_string().contains("threats")), "the reason is for staff");
    let rating = reqwest::Client::new()
        .post(app.url("/api/chat/rating"))
        .bearer_auth(&p.token)
        .json(&json!({"rating": 1, "comment": "you are rude"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rating.status().as_u16(), 409, "a blocked patron's rating is refused");
    let q = app
        .state
        .app
        .store()
        .question(refdesk_domain::ids::QuestionId(ann.question_of(p.session).await["id"].as_i64().unwrap()))
        .await;
    assert_eq!(q.unwrap().unwrap().rating, None, "no rating kept");
    let hours = (block["expires_at"].as_i64().unwrap() - block["created_at"].as_i64().unwrap()) / 3_600_000;
    assert_eq!(hours, 24, "a day by default");

    // The same browser from another network, and the same network with
    // another browser, are both refused, politely; the form still works.
    for (from, browser) in [([127, 0, 0, 22], Some(BROWSER)), ([127, 0, 0, 21], None)] {
        let (status, refused) = start_from(&app, from, browser).await;
        assert_eq!(status, 403, "{refused}");
        assert_eq!(refused["error"]["code"], "blocked");
        let text = refused["error"]["message"].as_str().unwrap();
        assert!(text.starts_with("Sorry") && text.contains("form"), "{text}");
        assert!(!text.contains("threats"), "the reason is for staff: {text}");
    }
    assert_eq!(start_from(&app, [127, 0, 0, 23], None).await.0, 201, "other patrons are served");
    assert_eq!(form_from(&app, [127, 0, 0, 21]).await.0, 201, "the form, as the library allows by default");

    // Only the library's admins set that, list and lift.
    let carla = app.staff("carla").await;
    let policy = "/api/libraries/riverside-main/blocked-patrons";
    assert_eq!(ann.put(policy, json!({"may_use_form": false})).await.0, 403);
    assert_eq!(carla.put(policy, json!({"may_use_form": false})).await.0, 200);
    let (status, refused) = form_from(&app, [127, 0, 0, 21]).await;
    assert_eq!(status, 403, "{refused}");
    assert!(!refused["error"]["message"].as_str().unwrap().contains("form"));

    assert_eq!(ann.get("/api/blocks").await.0, 403, "librarians do not list blocks");
    let ben = app.staff("erin").await; // cooperative admin: in scope too
    let (_, all) = ben.get("/api/blocks").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let (status, list) = carla.get("/api/blocks").await;
    assert_eq!(status, 200);
    let listed = &list.as_array().unwrap()[0];
    assert_eq!(listed["reason"], "threats after a warning");
    assert_eq!(listed["created_by_name"], "Ann Archer");
    assert_eq!(listed["lifted_at"], Value::Null);

    let lift = format!("/api/blocks/{}/lift", block["id"]);
    assert_eq!(ann.post(&lift, json!({})).await.0, 404, "out of scope looks like nothing there");
    let (status, lifted) = carla.post(&lift, json!({})).await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["lifted_by_name"], "Carla Catalog");
    assert_eq!(start_from(&app, [127, 0, 0, 21], Some(BROWSER)).await.0, 201, "served again");

    // The question's timeline keeps both.
    let q = ann.question_of(p.session).await;
    let (_, detail) = carla.get(&format!("/api/questions/{}", q["id"])).await;
    let changes: Vec<&str> =
        detail["timeline"].as_array().unwrap().iter().map(|t| t["change"].as_str().unwrap()).collect();
    assert!(changes.contains(&"blocked") && changes.contains(&"unblocked"), "{changes:?}");
}

#[tokio::test]
async fn a_block_runs_out_and_waiting_chats_expire() {
    let app = spawn_app_with_manual_clock_and(|c| c.limits.waiting_expires_minutes = 15).await;
    let (_, started) = start_from(&app, [127, 0, 0, 31], Some(BROWSER)).await;
    let p = patron(&app, &started);
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(p.session).await.0, 200);
    let (status, _) =
        ann.post(&format!("/api/sessions/{}/block", p.session), json!({"reason": "abuse", "hours": 2})).await;
    assert_eq!(status, 201);
    assert_eq!(start_from(&app, [127, 0, 0, 31], Some(BROWSER)).await.0, 403);
    app.clock().advance(2 * 3_600_000 - 60_000);
    assert_eq!(start_from(&app, [127, 0, 0, 31], Some(BROWSER)).await.0, 403, "not yet");
    app.clock().advance(61_000);
    let (status, waiting) = start_from(&app, [127, 0, 0, 31], Some(BROWSER)).await;
    assert_eq!(status, 201, "the block ran out");

    // That chat waits; another with an e-mail address too. Nobody takes
    // them: after 15 minutes both end, the patrons told why.
    let anon = patron(&app, &waiting);
    let res = reqwest::Client::new()
        .post(app.url("/api/libraries/riverside-main/chats"))
        .json(&json!({"question": "Census records?", "email": "kim@example.org"}))
        .send()
        .await
        .unwrap();
    let kim = patron(&app, &res.json::<Value>().await.unwrap());
    let mut anon_ws = anon.socket().await;
    anon_ws.resume(None, 0).await;
    let mut kim_ws = kim.socket().await;
    kim_ws.resume(None, 0).await;
    app.clock().advance(14 * 60_000);
    kim_ws.say(None, "message", "still there?", "k1").await;
    app.clock().advance(2 * 60_000);
    let told = anon_ws.until(|f| f["system"] == "ended").await;
    let line = told.iter().find(|f| f["body"].as_str().is_some_and(|b| b.starts_with("Sorry, no librarian"))).unwrap();
    assert!(line["body"].as_str().unwrap().contains("try again later"), "{line}");
    let told = kim_ws.until(|f| f["system"] == "ended").await;
    // Kim's question stays, as a missed chat, and she is given its number;
    // the anonymous one has nowhere to be answered.
    let store = &app.state.app.store();
    let session = |p: &Patron| refdesk_domain::ids::SessionId(p.session);
    let kept = store.session(session(&kim)).await.unwrap().unwrap().ctx.question.expect("Kim's question is kept");
    let promise = format!("We have your question (number {}) and your e-mail address: a librarian will answer", kept.0);
    assert!(told.iter().any(|f| f["body"].as_str().is_some_and(|b| b.contains(&promise))), "{told:?}");
    assert!(store.session(session(&anon)).await.unwrap().unwrap().ctx.question.is_none());
}

#[tokio::test]
async fn the_queue_is_bounded_per_network_and_per_library() {
    let app = spawn_app_with(|c| {
        c.limits.max_waiting_per_address = 3;
        c.limits.max_waiting_per_library = 5;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(start_from(&app, [127, 0, 0, 41], None).await.0, 201);
    }
    let (status, refused) = start_from(&app, [127, 0, 0, 41], None).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_waiting");
    assert_eq!(start_from(&app, [127, 0, 0, 42], None).await.0, 201);
    assert_eq!(start_from(&app, [127, 0, 0, 42], None).await.0, 201);
    let (status, refused) = start_from(&app, [127, 0, 0, 43], None).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "queue_full");
    // Another library's queue is its own; and when a chat is taken, room opens.
    let other = reqwest::Client::new()
        .post(app.url("/api/libraries/lakeside-public/chats"))
        .json(&json!({"question": "Hours?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 201);
    let ann = app.staff("ann").await;
    let (_, queue) = ann.get("/api/queue").await;
    let first = queue.as_array().unwrap().iter().find(|e| e["library_name"] != "Lakeside Public Library").unwrap();
    assert_eq!(ann.accept(first["session"].as_i64().unwrap()).await.0, 200);
    assert_eq!(start_from(&app, [127, 0, 0, 43], None).await.0, 201);
}

/// Chats a network starts are capped per 24 hours, ended ones too: a
/// stranger starting, filling and ending chats all day would otherwise fill
/// the disk without any librarian taking one.
#[tokio::test]
async fn chats_started_from_one_network_are_capped_per_day() {
    let app = spawn_app_with_manual_clock_and(|c| c.limits.chats_per_address_per_day = 3).await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let (status, started) = start_from(&app, [127, 0, 0, 51], None).await;
        assert_eq!(status, 201, "{started}");
        let end = http.post(app.url("/api/chat/end")).bearer_auth(started["token"].as_str().unwrap()).send();
        assert_eq!(end.await.unwrap().status(), 200);
    }
    let (status, refused) = start_from(&app, [127, 0, 0, 51], None).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_chats");
    assert!(refused["error"]["message"].as_str().unwrap().contains("tomorrow"), "{refused}");
    assert_eq!(start_from(&app, [127, 0, 0, 52], None).await.0, 201, "another network is not held back");
    app.clock().advance(24 * 3_600_000 + 1);
    let (status, again) = start_from(&app, [127, 0, 0, 51], None).await;
    assert_eq!(status, 201, "a day later the network starts again: {again}");
}

#[tokio::test]
async fn a_library_that_took_its_days_chats_from_strangers_refuses_more_and_the_operator_is_told_once() {
    let app = spawn_app_with(|c| c.limits.starts_per_library_per_day = 2).await;
    app.start_chat("riverside-main", "one").await;
    app.start_chat("riverside-main", "two").await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let res = http
            .post(app.url("/api/libraries/riverside-main/chats"))
            .json(&json!({"question": "three"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "too_many_today");
    }
    let form = json!({"question": "by e-mail?", "email": "pat@example.org"});
    let res = http.post(app.url("/api/libraries/riverside-main/questions")).json(&form).send().await.unwrap();
    assert_eq!(res.status(), 429, "the offline form counts with the chats");
    assert!(app.start_chat("lakeside-public", "elsewhere").await.session > 0, "another library is served");
    let logs = crate::helpers::captured_logs();
    let told = logs.lines().filter(|l| l.contains("too_many_today") && l.contains("riverside-main")).count();
    assert_eq!(told, 1, "logged once for the hour, not at each refusal: {told}");
}

#[tokio::test]
async fn patron_triggered_mail_is_capped_per_recipient_and_per_network() {
    let app = spawn_app_with(|c| {
        c.limits.patron_mails_per_recipient_per_day = 1;
        c.limits.patron_mails_per_address_per_hour = 3;
    })
    .await;
    let start = |from: [u8; 4], to: &'static str| {
        let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build().unwrap();
        let url = app.url("/api/libraries/riverside-main/chats");
        async move {
            let r = client
                .post(url)
                .json(&json!({"question": "Maps?", "email": to, "transcript": true}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = start([127, 0, 0, 51], "alex@example.org").await;
    assert_eq!(status, 201, "{first}");
    let ann = app.staff("ann").await;
    let session = first["session"].as_i64().unwrap();
    assert_eq!(ann.accept(session).await.0, 200);
    assert_eq!(ann.post(&format!("/api/sessions/{session}/end"), json!({})).await.0, 200);
    // The e-mails written so far (no SMTP server: files), to one address in any letter case.
    let mails_to = |to: &str| {
        let dir = app.dir.path().join("mail");
        let files = std::fs::read_dir(dir).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
        let to = to.to_lowercase();
        let is_to = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default().to_lowercase().contains(&to);
        files.iter().filter(|e| e.path().extension().is_some_and(|x| x == "eml") && is_to(&e.path())).count()
    };
    app.eventually("the transcript is mailed", || async { mails_to("alex@example.org") == 1 }).await;
    // One transcript went to Alex today: no more, whoever asks, however the
    // address is written. The ask is taken all the same, and the chat's end
    // mails nothing: a refusal at the start would tell anyone, from any
    // cooperative, whether an address had been sent transcripts today.
    // A +tag or dots reach the same mailbox at most providers: counted as it.
    for (n, to) in [(52, "Alex@Example.ORG"), (55, "alex+maps@example.org"), (56, "a.lex@example.org")] {
        let (status, second) = start([127, 0, 0, n], to).await;
        assert_eq!(status, 201, "{second}");
        let session = second["session"].as_i64().unwrap();
        assert_eq!(ann.accept(session).await.0, 200);
        assert_eq!(ann.post(&format!("/api/sessions/{session}/end"), json!({})).await.0, 200);
    }
    // A chat that ends after it with a transcript to someone else: once that
    // one is written, a second to Alex (queued before it) would be too.
    let (_, later) = start([127, 0, 0, 54], "zed@example.org").await;
    let later = later["session"].as_i64().unwrap();
    assert_eq!(ann.accept(later).await.0, 200);
    assert_eq!(ann.post(&format!("/api/sessions/{later}/end"), json!({})).await.0, 200);
    app.eventually("the later transcript is mailed", || async { mails_to("zed@example.org") == 1 }).await;
    assert_eq!(mails_to("alex@example.org"), 1, "no second transcript to Alex");
    assert_eq!(mails_to(""), 2, "Alex's and Zed's, none to another spelling of Alex's");
    // One network asks three times an hour at most, whatever the addresses:
    // past it the chat starts all the same (a lab's computers share one
    // address), without a transcript, and says so.
    assert_eq!(start([127, 0, 0, 51], "bo@example.org").await.1["transcript_to"], "bo@example.org");
    assert_eq!(start([127, 0, 0, 51], "cy@example.org").await.0, 201);
    let (status, without) = start([127, 0, 0, 51], "di@example.org").await;
    assert_eq!((status, &without["transcript_to"]), (201, &Value::Null), "{without}");
    let session = without["session"].as_i64().unwrap();
    let rec = app.state.app.store().session(refdesk_domain::ids::SessionId(session)).await.unwrap().unwrap();
    assert_eq!((rec.transcript_to, rec.patron_email.as_deref()), (None, Some("di@example.org")));
    assert_eq!(
        start([127, 0, 0, 53], "di@example.org").await.1["transcript_to"],
        "di@example.org",
        "another network still may"
    );
}

#[tokio::test]
async fn a_chat_sent_back_to_a_queue_expires_once_and_keeps_its_question() {
    let app = spawn_app_with_manual_clock_and(|c| c.limits.waiting_expires_minutes = 15).await;
    let res = reqwest::Client::new()
        .post(app.url("/api/libraries/riverside-main/chats"))
        .json(&json!({"question": "Old maps?", "email": "lee@example.org"}))
        .send()
        .await
        .unwrap();
    let p = patron(&app, &res.json::<Value>().await.unwrap());
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(p.session).await.0, 200);
    let question = ann.question_of(p.session).await["id"].as_i64().unwrap();
    let path = format!("/api/sessions/{}/transfer", p.session);
    assert_eq!(ann.post(&path, json!({"library": "riverside-law"})).await.0, 200);
    let mut ws = p.socket().await;
    ws.resume(None, 0).await;
    app.clock().advance(16 * 60_000);
    ws.until(|f| f["system"] == "ended").await;
    // A few more rounds of the background task: nothing more is written.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let lines: Vec<_> = app.stored(p.session).await;
    let sorry = lines.iter().filter(|m| m.body.starts_with("Sorry, no librarian")).count();
    assert_eq!(sorry, 1, "told once");
    assert_eq!(lines.iter().filter(|m| m.body.contains("has ended")).count(), 1, "ended once");
    let (_, detail) = ann.get(&format!("/api/questions/{question}")).await;
    let notes = detail["timeline"].as_array().unwrap().iter().filter(|t| t["change"] == "note").count();
    assert_eq!(notes, 1, "the question it had is kept, with the missed-chat note: {detail}");
}

#[tokio::test]
async fn who_may_block_a_waiting_or_an_ended_chat() {
    let app = spawn_app_with(|_| {}).await;
    let ann = app.staff("ann").await;
    let carla = app.staff("carla").await;
    // Waiting: not the librarians' (they would accept it first); the library's admins may.
    let (_, waiting) = start_from(&app, [127, 0, 0, 61], None).await;
    let w = waiting["session"].as_i64().unwrap();
    let body = json!({"reason": "a flood of insults"});
    assert_eq!(ann.post(&format!("/api/sessions/{w}/block"), body.clone()).await.0, 403);
    assert_eq!(carla.post(&format!("/api/sessions/{w}/block"), body.clone()).await.0, 201);
    let stored = app.state.app.store().session(refdesk_domain::ids::SessionId(w)).await.unwrap().unwrap();
    assert_eq!(stored.state, refdesk_domain::chat::SessionState::Ended, "and it ends");
    // Ended by the patron first: its librarian may still block, for an hour.
    let (_, started) = start_from(&app, [127, 0, 0, 62], None).await;
    let p = patron(&app, &started);
    assert_eq!(ann.accept(p.session).await.0, 200);
    let ended = reqwest::Client::new().post(app.url("/api/chat/end")).bearer_auth(&p.token).send().await.unwrap();
    assert_eq!(ended.status(), 200);
    let ben = app.staff("ben").await;
    let path = format!("/api/sessions/{}/block", p.session);
    assert_eq!(ben.post(&path, body.clone()).await.0, 404, "not his chat, nor his library");
    assert_eq!(ann.post(&path, body).await.0, 201);
    let (_, blocks) = carla.get("/api/blocks").await;
    assert_eq!(blocks.as_array().unwrap().len(), 2);
    let (_, none) = app.staff("ben").await.get("/api/blocks").await;
    assert!(none.as_array().is_none(), "a librarian lists no blocks: {none}");
}

#[tokio::test]
async fn a_block_ends_the_patrons_other_chats_still_waiting_and_no_one_elses() {
    let app = spawn_app_with(|_| {}).await;
    let carla = app.staff("carla").await;
    let state = |id: i64| {
        let store = app.state.app.store().clone();
        async move { store.session(refdesk_domain::ids::SessionId(id)).await.unwrap().unwrap().state }
    };
    let session = |v: Value| v["session"].as_i64().unwrap();
    // A patron floods the queue from two tabs and two networks.
    let (_, first) = start_from(&app, [127, 0, 0, 101], Some(BROWSER)).await;
    let (_, tab) = start_from(&app, [127, 0, 0, 101], None).await;
    let (_, moved) = start_from(&app, [127, 0, 0, 102], Some(BROWSER)).await;
    let (_, someone) = start_from(&app, [127, 0, 0, 103], None).await;
    // Another patron's widget behind the same shared address.
    let (_, neighbour) = start_from(&app, [127, 0, 0, 101], Some("1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d")).await;
    let (_, taken) = start_from(&app, [127, 0, 0, 101], None).await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(session(taken.clone())).await.0, 200);
    let mut tab_socket = patron(&app, &tab).socket().await;
    tab_socket.resume(None, 0).await;

    let (status, block) =
        carla.post(&format!("/api/sessions/{}/block", session(first.clone())), json!({"reason": "a flood"})).await;
    assert_eq!(status, 201, "{block}");
    use refdesk_domain::chat::SessionState::{Active, Ended, Waiting};
    for (chat, want, what) in [
        (&first, Ended, "the blocked chat"),
        (&tab, Ended, "the same network's other waiting chat"),
        (&moved, Ended, "the same browser's waiting chat from another network"),
        (&someone, Waiting, "another patron's"),
        (&neighbour, Waiting, "another patron's widget on the same network"),
        (&taken, Active, "a chat a librarian took is left to them"),
    ] {
        assert_eq!(state(session(chat.clone())).await, want, "{what}");
    }
    tab_socket.until(|f| f["system"] == "ended").await;
    let (_, queue) = ann.get("/api/queue").await;
    let waiting: Vec<i64> = queue.as_array().unwrap().iter().map(|e| e["session"].as_i64().unwrap()).collect();
    assert_eq!(waiting, vec![session(someone), session(neighbour)], "the others' chats alone: {queue}");
}

/// Starts a chat from behind the trusted proxy at 127.0.0.1, for the
/// client it names in `X-Forwarded-For`.
async fn start_forwarded(app: &TestApp, client: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url("/api/libraries/riverside-main/chats"))
        .header("X-Forwarded-For", client)
        .json(&json!({"question": "Is the archive open?"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// IPv6 hands a subscriber a /56 or a /48 (256 or 65,536 /64s) for
/// nothing: the day's chats of a /64 are backed by its /56's (4 times as
/// many) and its /48's (16 times), as the rate limits are.
#[tokio::test]
async fn the_chats_of_many_64s_of_one_56_share_its_days_cap() {
    let app = spawn_app_with(|c| {
        c.limits.chats_per_address_per_day = 1;
        c.limits.starts_per_minute = 1_000;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    for i in 0..4 {
        let (status, started) = start_forwarded(&app, &format!("2001:db8:7:{i:x}::1")).await;
        assert_eq!(status, 201, "/64 number {i} of the /56: {started}");
    }
    let (status, refused) = start_forwarded(&app, "2001:db8:7:4::1").await;
    assert_eq!(status, 429, "a fifth /64 of the /56: {refused}");
    assert_eq!(refused["error"]["code"], "too_many_chats");
    let (status, again) = start_forwarded(&app, "2001:db8:7:0::2").await;
    assert_eq!((status, again["error"]["code"].as_str()), (429, Some("too_many_chats")), "its /64 too: {again}");
    assert_eq!(start_forwarded(&app, "2001:db8:7:100::1").await.0, 201, "another /56 of the /48 is not held back");
}

#[tokio::test]
async fn the_offline_form_is_bounded_per_network_and_day() {
    let app = spawn_app_with_manual_clock_and(|c| c.limits.form_questions_per_address_per_day = 2).await;
    assert_eq!(form_from(&app, [127, 0, 0, 71]).await.0, 201);
    assert_eq!(form_from(&app, [127, 0, 0, 71]).await.0, 201);
    let (status, refused) = form_from(&app, [127, 0, 0, 71]).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_questions");
    assert_eq!(form_from(&app, [127, 0, 0, 72]).await.0, 201, "another network may");
    app.clock().advance(86_400_000 + 1_000);
    assert_eq!(form_from(&app, [127, 0, 0, 71]).await.0, 201, "a day later, again");
}

#[tokio::test]
async fn a_staff_member_writes_only_so_many_lines_and_notes_a_day_however_they_write_them() {
    // A stolen sign-in within its frame budget could write a 16 KB line
    // twenty times a second into every chat it reaches, all day.
    let app = spawn_app_with_manual_clock_and(|c| {
        crate::helpers::staff_writes_unbounded(c);
        c.limits.staff_lines_per_day = 5;
    })
    .await;
    let p =
        app.start_chat_with("riverside-main", json!({"question": "How many lines?", "email": "pat@example.org"})).await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(p.session).await.0, 200);
    let lines = format!("/api/sessions/{}/messages", p.session);
    // Over HTTP, on the socket, from the question list, a code set: five in all.
    assert_eq!(ann.post(&lines, json!({"body": "one"})).await.0, 200);
    // A line refused for another reason counts nothing: a chat not hers.
    let other = app.start_chat("riverside-main", "Someone else's").await;
    let (status, _) = ann.post(&format!("/api/sessions/{}/messages", other.session), json!({"body": "x"})).await;
    assert_eq!(status, 403, "not hers to write in");
    let mut desk = ann.socket().await;
    let ack = desk.say(Some(p.session), "note", "two, a note", "n2").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let again = desk.say(Some(p.session), "note", "two, a note", "n2").await;
    assert_eq!(again["duplicate"], true, "a re-send is acknowledged and counts nothing: {again}");
    let q = ann.question_of(p.session).await["id"].as_i64().unwrap();
    let (status, body) = ann.act(q, "note", json!({"body": "three", "confirm_live": true})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ann.act(q, "answer", json!({"body": "four, an answer", "confirm_live": true})).await;
    assert_eq!(status, 200, "{body}");
    let code = format!("/api/sessions/{}/code", p.session);
    let (status, body) = ann.post(&code, json!({"code": "follow_up_by_me"})).await;
    assert_eq!(status, 200, "five, a code set (a line in the chat): {body}");
    // A sixth, whichever way: refused, nothing stored.
    let stored = app.stored(p.session).await.len();
    let (status, body) = ann.post(&lines, json!({"body": "five"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_lines")), "{body}");
    let refused = desk.say(Some(p.session), "message", "five", "m5").await;
    assert_eq!(refused["code"], "too_many_lines", "{refused}");
    for action in ["note", "answer", "message-librarian"] {
        let (status, body) = ann.act(q, action, json!({"body": "five", "confirm_live": true})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_lines")), "{action}: {body}");
    }
    let (status, body) = ann.post(&code, json!({"code": "follow_up_by_me"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_lines")), "a code set again: {body}");
    let (status, body) = ann.act(q, "code", json!({"code": "answered", "confirm_live": true})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_lines")), "from the list: {body}");
    // A chat's first code is never refused: its question's status waits on it.
    let next = app.start_chat("riverside-main", "Another one").await;
    assert_eq!(ann.accept(next.session).await.0, 200);
    let first = format!("/api/sessions/{}/code", next.session);
    let (status, body) = ann.post(&first, json!({"code": "answered"})).await;
    assert_eq!(status, 200, "a first code past the count: {body}");
    assert_eq!(app.stored(p.session).await.len(), stored);
    // Every question-list action counts (each an entry in the history):
    // past the count a claim or an assignment is refused too; closing the
    // open question still goes.
    let carla = app.staff("carla").await;
    let to_carla = json!({"to": carla.id, "confirm_live": true});
    for (action, body) in [("assign", to_carla), ("refer", json!({"library": "lakeside-public", "confirm_live": true}))]
    {
        let (status, body) = ann.act(q, action, body).await;
        assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_lines")), "{action}: {body}");
    }
    let (status, body) = ann.act(q, "close", json!({"confirm_live": true})).await;
    assert_eq!(status, 200, "closing an open question past the count: {body}");
    // A line stored before, sent again (its ack lost): acknowledged, not refused (I4).
    let again = desk.say(Some(p.session), "note", "two, a note", "n2").await;
    assert_eq!((again["type"].as_str(), again["duplicate"].as_bool()), (Some("ack"), Some(true)), "{again}");
    // A colleague writes their own.
    let (status, body) = carla.act(q, "note", json!({"body": "from carla", "confirm_live": true})).await;
    assert_eq!(status, 200, "{body}");
    // The next day (signed in again), again. The chat is ended first (an
    // end is never refused for the count): a day later the idle timeout
    // would end it at the background round's next pass, sooner or later
    // than the note, which would then confirm a live chat that is not.
    assert_eq!(ann.post(&format!("/api/sessions/{}/end", p.session), json!(null)).await.0, 200, "past the count");
    app.clock().advance(86_400_000);
    let ann = app.staff("ann").await;
    let (status, body) = ann.act(q, "note", json!({"body": "a new day", "confirm_live": false})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_patron_adds_only_so_many_characters_while_waiting_whatever_the_lines() {
    // Twenty lines of 4,000 four-byte characters were 320 KB a chat nobody
    // took; now what the patron adds while waiting is bounded in characters
    // too, counted on the store's kept copy of the chat as on a fresh read.
    let tweak = |c: &mut refdesk_server::Config| c.limits.patron_chars_before_accept = 10_000;
    let app = spawn_app_with(tweak).await;
    let mut p = app.start_chat("riverside-main", "Is the archive open?").await;
    let mut pat = p.socket().await;
    pat.resume(None, 0).await;
    let long = "é".repeat(4_000);
    for n in 0..2 {
        let ack = pat.say(None, "message", &long, &format!("w{n}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let refused = pat.say(None, "message", &long, "w2").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("wait_for_a_librarian")));
    // After a restart, the count is read from the chat's lines: in
    // characters, not bytes (8,000 of them, 16,000 bytes), so what still
    // fits (2,000 characters) goes, then nothing more.
    drop(pat);
    let app = crate::helpers::start(app.stop().await, tweak).await;
    p.addr = app.addr;
    let mut again = p.socket().await;
    again.resume(None, 0).await;
    let ack = again.say(None, "message", &"x".repeat(1_999), "w3").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(again.say(None, "message", "??", "w4").await["code"], "wait_for_a_librarian");
    let ack = again.say(None, "message", "?", "w5").await;
    assert_eq!(ack["type"], "ack", "the last character that fits: {ack}");
    assert_eq!(again.say(None, "message", "?", "w6").await["code"], "wait_for_a_librarian");
    assert_eq!(app.stored(p.session).await.len(), 5, "the question and four lines");
    // Taken, the chat goes on: long lines are the librarian's to read now.
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(p.session).await.0, 200);
    let ack = again.say(None, "message", &long, "r0").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test]
async fn a_patron_adds_only_so_many_characters_to_a_chat_taken_or_not() {
    // A chat a librarian took was bounded by its lines only: 2,000 lines of
    // 4,000 four-byte characters, 32 MB. What the patron writes after the
    // question is bounded in characters in any chat, counted from the
    // chat's lines when the store reads it again (a restart, an accept).
    let tweak = |c: &mut refdesk_server::Config| c.limits.patron_chars_per_chat = 10_000;
    let app = spawn_app_with(tweak).await;
    let mut p = app.start_chat("riverside-main", "Is the archive open?").await;
    let mut pat = p.socket().await;
    pat.resume(None, 0).await;
    assert_eq!(pat.say(None, "message", &"é".repeat(3_000), "w0").await["type"], "ack");
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(p.session).await.0, 200);
    for (n, chars) in [4_000, 2_999].into_iter().enumerate() {
        let ack = pat.say(None, "message", &"é".repeat(chars), &format!("t{n}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let refused = pat.say(None, "message", "??", "t2").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("chat_full")), "{refused}");
    assert_eq!(pat.say(None, "message", "!", "t3").await["type"], "ack", "the last character that fits");
    drop(pat);
    let app = crate::helpers::start(app.stop().await, tweak).await;
    p.addr = app.addr;
    let mut again = p.socket().await;
    again.resume(None, 0).await;
    assert_eq!(again.say(None, "message", "?", "t4").await["code"], "chat_full", "counted again after a restart");
    assert_eq!(app.stored(p.session).await.len(), 6, "the question, its four lines and the accept's");
    // The librarian may still answer, and end the chat.
    let ann = app.staff("ann").await;
    let mut desk = ann.socket().await;
    desk.resume(Some(p.session), 0).await;
    let ack = desk.say(Some(p.session), "message", "Please start a new chat for more.", "s0").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

/// Where a full chat stops its patron tells nothing of the notes in it: the
/// patron's limit counts the lines they see.
#[tokio::test]
async fn a_chat_is_full_for_its_patron_at_the_same_line_whatever_notes_fall_between() {
    let app = spawn_app_with(|c| {
        crate::helpers::staff_writes_unbounded(c);
        c.limits.max_chat_lines = 8;
    })
    .await;
    let ann = app.staff("ann").await;
    let mut sent = Vec::new();
    // No notes, three, and notes until staff may add no line at all (the
    // chat's 8 and 100 more): the patron's own limit is where it was.
    for notes in [0, 3, 200] {
        let p = app.start_chat("riverside-main", "How full?").await;
        assert_eq!(ann.accept(p.session).await.0, 200);
        for n in 0..notes {
            let note = json!({"kind": "note", "body": format!("note {n}")});
            let (status, body) = ann.post(&format!("/api/sessions/{}/messages", p.session), note).await;
            if status == 429 {
                assert_eq!((n, body["error"]["code"].as_str()), (106, Some("chat_full")), "{body}");
                break;
            }
            assert_eq!(status, 200, "{body}");
        }
        let mut pat = p.socket().await;
        pat.resume(None, 0).await;
        let mut acked = 0;
        loop {
            let f = pat.say(None, "message", "more", &format!("m{acked}")).await;
            if f["type"] != "ack" {
                assert_eq!(f["code"], "chat_full", "{f}");
                break;
            }
            acked += 1;
            assert!(acked < 20, "never full");
        }
        sent.push(acked);
    }
    assert_eq!(sent, [6, 6, 6], "the question, the accept line and six lines each, with notes or without");
}

#[tokio::test]
async fn a_patron_adds_only_so_many_lines_while_waiting_and_no_chat_grows_past_its_limit() {
    let app = spawn_app_with(|c| {
        crate::helpers::staff_writes_unbounded(c);
        c.limits.patron_lines_before_accept = 3;
        c.limits.max_chat_lines = 8;
    })
    .await;
    let p = app.start_chat("riverside-main", "Is the archive open?").await;
    let mut pat = p.socket().await;
    pat.resume(None, 0).await;
    // Waiting, three lines after the question, then no more: the chat
    // holds four, whatever the patron sends (or re-sends).
    for n in 0..3 {
        let ack = pat.say(None, "message", &format!("detail {n}"), &format!("w{n}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    for n in 3..6 {
        let refused = pat.say(None, "message", "one more", &format!("w{n}")).await;
        assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("wait_for_a_librarian")));
    }
    // The last stored line sent again (its ack lost): acknowledged, not refused (I4).
    let again = pat.say(None, "message", "detail 2", "w2").await;
    assert_eq!((again["type"].as_str(), again["duplicate"].as_bool()), (Some("ack"), Some(true)), "{again}");
    assert_eq!(app.stored(p.session).await.len(), 4);

    // Taken (line 5), the chat goes on until it holds eight lines; then the
    // patron's are refused, and the librarian's still go.
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(p.session).await.0, 200);
    for n in 0..3 {
        let ack = pat.say(None, "message", &format!("reply {n}"), &format!("r{n}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let refused = pat.say(None, "message", "and another", "r3").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("chat_full")));
    let again = pat.say(None, "message", "reply 2", "r2").await;
    assert_eq!((again["type"].as_str(), again["duplicate"].as_bool()), (Some("ack"), Some(true)), "{again}");
    let (status, body) =
        ann.post(&format!("/api/sessions/{}/messages", p.session), json!({"body": "Let us start afresh."})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.stored(p.session).await.len(), 9);
    // Staff may add a hundred lines past it (to say goodbye, to point to a
    // new chat), not go on without bound: no chat grows past 108 here.
    for n in 9..108 {
        let (status, body) =
            ann.post(&format!("/api/sessions/{}/messages", p.session), json!({"body": format!("staff {n}")})).await;
        assert_eq!(status, 200, "line {n}: {body}");
    }
    let (status, body) = ann.post(&format!("/api/sessions/{}/messages", p.session), json!({"body": "one more"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("chat_full")), "{body}");
    // Nor through the question list, whose actions write into a live chat.
    let q = ann.question_of(p.session).await["id"].as_i64().unwrap();
    let (status, body) = ann.act(q, "note", json!({"body": "one more, from the list", "confirm_live": true})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("chat_full")), "{body}");
    // Nor by what else writes a line and may be done again and again: a
    // code set anew, a conference's change of mode, a take-over. The
    // chat's first code goes whatever (its question's status waits on it).
    let path = |what: &str| format!("/api/sessions/{}/{what}", p.session);
    let (status, body) = ann.post(&path("code"), json!({"code": "answered"})).await;
    assert_eq!(status, 200, "the first code: {body}");
    let dev = app.staff("dev").await; // institution admin, Riverside University
    for (who, what, body) in [
        (&ann, "code", json!({"code": "answered"})),
        (&dev, "conference", json!({"mode": "monitor"})),
        (&dev, "takeover", json!({})),
    ] {
        let (status, refused) = who.post(&path(what), body).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("chat_full")), "{what}: {refused}");
    }
    assert_eq!(app.stored(p.session).await.len(), 109, "the first code's line, and no other");
    // Ending is never held back.
    assert_eq!(ann.post(&path("end"), json!({})).await.0, 200);
    assert_eq!(app.stored(p.session).await.len(), 110, "the end's line");
}

#[tokio::test]
async fn chats_left_at_once_with_an_address_count_against_the_networks_questions_for_the_day() {
    let app = spawn_app_with(|c| c.limits.form_questions_per_address_per_day = 2).await;
    let ann = app.staff("ann").await;
    let follow_ups = || async { ann.get("/api/questions?view=follow_up").await.1.as_array().unwrap().len() };
    // A chat started with an address and left at once leaves a missed-chat
    // question for an e-mail answer: twice from one network, then no more.
    for left in 1..=3 {
        let client = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 81])).build().unwrap();
        let started = client
            .post(app.url("/api/libraries/riverside-main/chats"))
            .json(&json!({"name": "Pat", "email": "pat@example.org", "question": "Is the archive open?"}))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 201);
        let token = started.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        let ended = client.post(app.url("/api/chat/end")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(ended.status(), 200, "the chat ends whatever the count");
        assert_eq!(follow_ups().await, left.min(2), "after {left} chats left");
    }
    // The same budget as the offline form: that network has none left today.
    let (status, refused) = form_from(&app, [127, 0, 0, 81]).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("too_many_questions")), "{refused}");
    assert_eq!(form_from(&app, [127, 0, 0, 82]).await.0, 201, "another network may");
}

#[tokio::test]
async fn a_patrons_requests_with_a_chat_token_are_rate_limited_per_network() {
    let app = spawn_app_with(|c| c.limits.patron_posts_per_minute = 3).await;
    let (_, started) = start_from(&app, [127, 0, 0, 91], None).await;
    let p = patron(&app, &started);
    let from =
        |last: u8| reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, last])).build().unwrap();
    let rate = |client: reqwest::Client| {
        let (url, token) = (app.url("/api/chat/rating"), p.token.clone());
        async move {
            client.post(url).bearer_auth(token).json(&json!({"rating": 5})).send().await.unwrap().status().as_u16()
        }
    };
    for _ in 0..3 {
        assert_ne!(rate(from(91)).await, 429);
    }
    assert_eq!(rate(from(91)).await, 429, "a fourth request within the minute");
    assert_ne!(rate(from(92)).await, 429, "another network is not held back");
}

#[tokio::test]
async fn a_patrons_reads_of_their_chat_are_rate_limited_per_network() {
    // Each page is a read on the few readers everyone shares: a chat's token
    // (anyone's for the asking) must not buy an endless loop of them.
    let app = spawn_app_with(|c| c.limits.patron_reads_per_minute = 3).await;
    let (_, started) = start_from(&app, [127, 0, 0, 93], None).await;
    let p = patron(&app, &started);
    let from =
        |last: u8| reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, last])).build().unwrap();
    let read = |client: reqwest::Client| {
        let (url, token) = (app.url("/api/chat"), p.token.clone());
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    for _ in 0..2 {
        assert_eq!(read(from(93)).await.status(), 200);
    }
    // A HEAD runs the same read (axum answers it with the GET's handler).
    let head = from(93).head(app.url("/api/chat")).bearer_auth(&p.token).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let refused = read(from(93)).await;
    assert_eq!(refused.status(), 429, "a fourth page within the minute");
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(read(from(94)).await.status(), 200, "another network is not held back");
    // The posts have a bucket of their own: reading did not use it up.
    let ended = from(93).post(app.url("/api/chat/end")).bearer_auth(&p.token).send().await.unwrap();
    assert_eq!(ended.status(), 200);
}

#[tokio::test]
async fn a_chat_that_expires_past_its_networks_questions_for_the_day_promises_no_e_mail_answer() {
    let app = spawn_app_with_manual_clock_and(|c| {
        c.limits.form_questions_per_address_per_day = 1;
        c.limits.waiting_expires_minutes = 15;
    })
    .await;
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 85])).build().unwrap();
    let start = || async {
        let r = client
            .post(app.url("/api/libraries/riverside-main/chats"))
            .json(&json!({"name": "Pat", "email": "pat@example.org", "question": "Census records?"}))
            .send()
            .await
            .unwrap();
        patron(&app, &r.json::<Value>().await.unwrap())
    };
    // The network's one question for the day: a chat left at once.
    let first = start().await;
    assert_eq!(client.post(app.url("/api/chat/end")).bearer_auth(&first.token).send().await.unwrap().status(), 200);
    // Another waits, and nobody takes it: it ends without the promise.
    let second = start().await;
    let mut ws = second.socket().await;
    ws.resume(None, 0).await;
    app.clock().advance(16 * 60_000);
    let told = ws.until(|f| f["system"] == "ended").await;
    let line = told.iter().find(|f| f["body"].as_str().is_some_and(|b| b.starts_with("Sorry, no librarian"))).unwrap();
    assert!(line["body"].as_str().unwrap().contains("try again later"), "{line}");
    let store = app.state.app.store();
    assert!(store
        .session(refdesk_domain::ids::SessionId(second.session))
        .await
        .unwrap()
        .unwrap()
        .ctx
        .question
        .is_none());
}

#[tokio::test]
async fn guesses_at_one_account_from_many_networks_run_out_but_not_where_it_signs_in() {
    let app = spawn_app_with(|c| c.limits.failed_logins_per_account_per_hour = 3).await;
    let login = |from: u8, username: &str, password: &str| {
        let client =
            reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, from])).build().unwrap();
        let (url, body) = (app.url("/api/login"), json!({"username": username, "password": password}));
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let password = refdesk_app::demo::PASSWORD;
    // Ann signs in at her desk; later a guesser comes from other networks,
    // each within its own per-address limit.
    assert_eq!(login(111, "ann", password).await.0, 200);
    for from in 112..115 {
        assert_eq!(login(from, "ann", "wrong guess 1234").await.0, 401);
    }
    let (status, refused) = login(115, "ann", password).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("too_many_attempts")), "{refused}");
    assert_eq!(login(116, "nobody-here", "wrong guess 1234").await.0, 401, "each account its own budget");
    assert_eq!(login(116, &"A".repeat(100_000), "wrong guess 1234").await.0, 401, "not a sign-in name: nothing kept");
    // At her desk she still signs in.
    assert_eq!(login(111, "ann", password).await.0, 200, "locked out where she signs in");
    assert_eq!(login(112, "carla", password).await.0, 200, "another account");
}

#[tokio::test]
async fn where_an_account_signed_in_is_remembered_across_a_restart_and_a_reset_password_starts_afresh() {
    let tweak = |c: &mut refdesk_server::Config| c.limits.failed_logins_per_account_per_hour = 3;
    let login = |app: &TestApp, from: u8, password: &str| {
        let client =
            reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, from])).build().unwrap();
        let (url, body) = (app.url("/api/login"), json!({"username": "ann", "password": password}));
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let password = refdesk_app::demo::PASSWORD;
    let app = spawn_app_with(tweak).await;
    assert_eq!(login(&app, 121, password).await.0, 200, "ann signs in at her desk");
    // The node restarts; then a guesser spends her attempts from elsewhere.
    let app = crate::helpers::start(app.stop().await, tweak).await;
    for from in 122..125 {
        assert_eq!(login(&app, from, "wrong guess 1234").await.0, 401);
    }
    let (status, refused) = login(&app, 125, password).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("too_many_attempts")), "{refused}");
    assert_eq!(login(&app, 121, password).await.0, 200, "her desk, known from before the restart");
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("refdesk_limited_total{limit=\"login_account\"} 1"), "the operator sees it:\n{metrics}");
    // Her password is reset (by her library's admin): where she signed in is
    // forgotten, and the stranger's guesses at the old password no longer
    // hold her back.
    let store = app.state.app.store().clone();
    let ann = store.staff_by_username("ann").await.unwrap().unwrap().staff.id;
    let carla = app.staff("carla").await;
    let reset = carla.post(&format!("/api/staff/{}", ann.0), json!({"password": "a new passphrase 2026"})).await;
    assert_eq!(reset.0, 200, "{reset:?}");
    assert_eq!(store.known_networks("ann", 0).await.unwrap(), Some(vec![]), "her networks are forgotten");
    assert_eq!(login(&app, 126, "a new passphrase 2026").await.0, 200, "signed in with her new password, anywhere");
}

/// A patron blocked just after their chat ended (within the hour the
/// librarian may) is told so in it, as at a block that ends the chat: their
/// page, still open, stops offering a rating the block refuses. An older
/// chat blocked by an admin gets no line.
#[tokio::test]
async fn a_patron_blocked_just_after_the_end_is_told_in_the_chat() {
    let app = spawn_app_with_manual_clock_and(|_| {}).await;
    let (p, ann, mut pat) = accepted_by_ann(&app, [127, 0, 0, 22]).await;
    assert_eq!(ann.post(&format!("/api/sessions/{}/end", p.session), json!(null)).await.0, 200);
    pat.until(|f| f["system"] == "ended").await;
    app.clock().advance(10 * 60_000);
    let ann = app.staff("ann").await;
    let (status, block) =
        ann.post(&format!("/api/sessions/{}/block", p.session), json!({"reason": "insults at the end"})).await;
    assert_eq!(status, 201, "{block}");
    let told = pat.until(|f| f["type"] == "event").await;
    let told = told.last().unwrap();
    assert_eq!(told["system"], "blocked", "{told}");
    assert!(!told.to_string().contains("insults"), "the reason is for staff: {told}");

    // Ended over an hour before: the block stands, and says nothing in the chat.
    let (_, started) = start_from(&app, [127, 0, 0, 23], Some("1f1e2d3c4b5a69788796a5b4c3d2e1f0")).await;
    let p = patron(&app, &started);
    assert_eq!(ann.accept(p.session).await.0, 200);
    assert_eq!(ann.post(&format!("/api/sessions/{}/end", p.session), json!(null)).await.0, 200);
    app.clock().advance(2 * 3_600_000);
    let carla = app.staff("carla").await;
    let (status, block) =
        carla.post(&format!("/api/sessions/{}/block", p.session), json!({"reason": "found later"})).await;
    assert_eq!(status, 201, "{block}");
    let lines = app.stored(p.session).await;
    assert!(lines.iter().all(|m| m.system != Some(refdesk_domain::chat::SystemEvent::Blocked)), "{lines:?}");
}
