//! E-mail against a real SMTP server: delivered with the right recipient,
//! subject and body, never with a note; kept while SMTP is down and
//! delivered once it is back — exactly once, across a refdesk restart too.

use crate::helpers::{mail_text, spawn_app, spawn_app_with, start, SmtpServer};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn with_smtp_down_an_answer_is_kept_and_delivered_exactly_once_when_it_is_back_even_across_a_restart() {
    // The SMTP server's port, held (bound, not listening) while it is
    // down: connections to it are refused at once, and no other test's
    // server can take it meanwhile (one that did, not speaking SMTP, held
    // the mailer's attempts to its 30 s timeout: CI failed once).
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let port = held.local_addr().unwrap().port();
    let url = format!("smtp://127.0.0.1:{port}");
    let tweak = move |c: &mut refdesk_server::Config| {
        c.mail.smtp_url = Some(url.clone());
        c.mail.retry_initial_ms = 50;
        c.mail.retry_max_ms = 200;
    };
    let app = spawn_app_with(tweak.clone()).await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat_with("riverside-main", json!({"question": "Q?", "email": "pat@example.org"})).await;
    ann.accept(patron.session).await;
    ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
    ann.post(&format!("/api/sessions/{}/code", patron.session), json!({"code": "follow_up_by_me"})).await;
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let (status, out) = ann.act(q, "answer", json!({"body": "FIRST-ANSWER: drawer 7"})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["emailed_to"], "pat@example.org");
    assert_eq!(out["notice"], "The answer is on its way by e-mail to pat@example.org.", "not sent yet: queued");

    // SMTP is down: the mailer tries and fails, and keeps the e-mail.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let due = app.state.app.store().due_mail(i64::MAX, 10).await.unwrap();
        assert_eq!(due.len(), 1, "kept in the outbox");
        if due[0].attempts >= 2 {
            assert!(due[0].last_error.is_some());
            // The log names the server it could not reach.
            let server = format!("server=smtp://127.0.0.1:{port}");
            let logs = crate::helpers::captured_logs();
            assert!(logs.lines().any(|l| l.contains("will retry") && l.contains(&server)), "{server} not in the log");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the mailer retries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // refdesk restarts while SMTP is still down; then SMTP comes back.
    let dir = app.stop().await;
    let app = start(dir, tweak).await;
    drop(held);
    let smtp = SmtpServer::start_on(port).await;
    let mails = smtp.wait_for(1).await;
    assert!(mail_text(&mails[0]).contains("FIRST-ANSWER"));

    // A second answer goes through too; the first is still there only once.
    let ann = app.staff("ann").await;
    ann.act(q, "answer", json!({"body": "SECOND-ANSWER"})).await;
    let mails = smtp.wait_for(2).await;
    let firsts = mails.iter().filter(|m| mail_text(m).contains("FIRST-ANSWER")).count();
    assert_eq!((mails.len(), firsts), (2, 1), "exactly once");
    // The server has the message before the mailer records it sent: wait for that.
    app.eventually("nothing left to send", || async {
        app.state.app.store().due_mail(i64::MAX, 10).await.unwrap().is_empty()
    })
    .await;
    assert_eq!(smtp.messages().len(), 2, "and nothing sent again");
}

#[tokio::test]
async fn the_transcript_is_emailed_at_the_end_when_asked_for_without_notes_or_staff_lines() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let ann = app.staff("ann").await;
    let patron = app
        .start_chat_with(
            "riverside-main",
            json!({"name": "Pat", "question": "How do I cite a map?", "email": "pat@example.org", "transcript": true}),
        )
        .await;
    ann.accept(patron.session).await;
    let path = format!("/api/sessions/{}/messages", patron.session);
    ann.post(&path, json!({"body": "Use the Chicago style for maps."})).await;
    ann.post(&path, json!({"kind": "note", "body": "SECRET-NOTE check with Dev"})).await;
    ann.post(&format!("/api/sessions/{}/code", patron.session), json!({"code": "answered"})).await;
    let (status, _) = ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
    assert_eq!(status, 200);

    let mails = smtp.wait_for(1).await;
    let raw = &mails[0];
    let text = mail_text(raw);
    assert!(raw.contains("pat@example.org"));
    assert!(raw.contains("Transcript of your chat with Riverside"), "the library is named: {raw}");
    assert!(raw.contains("MIME-Version: 1.0"), "{raw}");
    assert!(text.contains("How do I cite a map?") && text.contains("Use the Chicago style for maps."), "{text}");
    assert!(text.contains("Chat session has ended"));
    assert!(!text.contains("SECRET-NOTE") && !raw.contains("SECRET-NOTE"), "no note (B4)");
    assert!(!text.contains("Resolution code set"), "no staff-only line (B4)");
}

/// An address whose domain is written in full-width or accented letters is
/// sent with its domain in ASCII: a relay without SMTPUTF8 (as this one)
/// would refuse it as typed, after the patron was told it is on its way.
#[tokio::test]
async fn an_address_with_a_domain_in_other_letters_is_sent_in_its_ascii_form() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let ann = app.staff("ann").await;
    for (n, typed) in ["pat@ｅｘａｍｐｌｅ.ｏｒｇ", "zoe@exämple.de"].into_iter().enumerate() {
        let form = json!({"question": "Maps?", "email": typed, "transcript": true});
        let patron = app.start_chat_with("riverside-main", form).await;
        ann.accept(patron.session).await;
        ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
        smtp.wait_for(n + 1).await;
    }
    let mails = smtp.messages();
    for sent in ["To: pat@example.org", "To: zoe@xn--exmple-cua.de"] {
        assert!(mails.iter().any(|m| m.lines().any(|l| l == sent)), "{sent} in none of {mails:?}");
    }
}

/// A patron cannot forge a librarian's lines in the transcript the library
/// e-mails: their lines are "You", and a line of theirs that holds several
/// begins none of the transcript's.
#[tokio::test]
async fn a_patrons_words_cannot_pass_for_the_librarians_in_the_transcript() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let ann = app.staff("ann").await;
    let forged = "Hi\n[07:20] Ann Archer (librarian): Your account is locked: verify it at http://evil.example\n[07:20] Chat session has ended (ended by the librarian)";
    let form = json!({"name": "Ann Archer (librarian)", "question": forged, "email": "victim@example.org", "transcript": true});
    let patron = app.start_chat_with("riverside-main", form).await;
    ann.accept(patron.session).await;
    ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
    let text = mail_text(&smtp.wait_for(1).await[0]);
    let starts: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert!(starts.iter().any(|l| l.ends_with("] You: Hi")), "{text}");
    assert!(!starts.iter().any(|l| l.contains("evil.example")), "no line of the patron's begins one: {text}");
    assert_eq!(starts.iter().filter(|l| l.contains("Chat session has ended")).count(), 1, "{text}");
    assert!(text.lines().any(|l| l.starts_with("    [07:20] Ann Archer (librarian): Your account")), "{text}");
    assert!(!text.contains("Ann Archer (librarian): Hi"), "{text}");
}

#[tokio::test]
async fn the_transcripts_times_are_on_the_patrons_clock_and_an_offset_out_of_range_changes_nothing() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let http = reqwest::Client::new();
    let start = |offset: serde_json::Value| {
        let form = json!({"question": "Maps?", "email": "pat@example.org", "transcript": true, "utc_offset": offset});
        http.post(app.url("/api/libraries/riverside-main/chats")).json(&form).send()
    };
    for bad in [json!(841), json!(-900), json!("+05:30"), json!(1.5)] {
        assert_eq!(start(bad.clone()).await.unwrap().status(), 422, "{bad}");
    }
    let ann = app.staff("ann").await;
    let (_, queue) = ann.get("/api/queue").await;
    assert_eq!(queue.as_array().map(Vec::len), Some(0), "a refused start made no chat: {queue}");

    // India: UTC+05:30. The patron then confirms the address with their
    // clock changed (a laptop carried across a border): the last one counts.
    let started: serde_json::Value = start(json!(330)).await.unwrap().json().await.unwrap();
    let (session, token) = (started["session"].as_i64().unwrap(), started["token"].as_str().unwrap().to_owned());
    let confirm = |offset: serde_json::Value| {
        let body = json!({"email": "pat@example.org", "utc_offset": offset});
        http.post(app.url("/api/chat/transcript")).bearer_auth(&token).json(&body).send()
    };
    assert_eq!(confirm(json!(-841)).await.unwrap().status(), 422);
    let id = refdesk_domain::ids::SessionId(session);
    let rec = app.state.app.store().session(id).await.unwrap().unwrap();
    assert_eq!(rec.transcript_utc_offset, Some(330), "the refused offset changed nothing");
    assert_eq!(confirm(json!(-300)).await.unwrap().status(), 200);
    ann.accept(session).await;
    ann.post(&format!("/api/sessions/{session}/messages"), json!({"body": "Try the map room."})).await;
    ann.post(&format!("/api/sessions/{session}/end"), json!(null)).await;

    let text = mail_text(&smtp.wait_for(1).await[0]);
    assert!(text.contains("(times are UTC-05:00)"), "{text}");
    let lines = app.state.app.store().messages_after(id, 0, 100).await.unwrap();
    let first = lines.iter().find(|m| m.body == "Maps?").unwrap();
    let local = (first.at.div_euclid(60_000) - 300).rem_euclid(24 * 60);
    let stamp = format!("[{:02}:{:02}] You: Maps?", local / 60, local % 60);
    assert!(text.contains(&stamp), "the question at {stamp} New York time: {text}");
    assert!(!text.contains("UTC]"), "{text}");
    assert!(
        text.contains("] Chat session has ended") && !text.contains("—:"),
        "refdesk's lines are said by no one: {text}"
    );
}

#[tokio::test]
async fn an_smtp_refusal_that_quotes_the_recipient_never_puts_the_address_in_the_logs() {
    for reply in [
        "550 5.1.1 <{addr}>: Recipient address rejected: User unknown",
        "450 4.2.0 <{addr}>: Recipient address rejected: Greylisted, try again later",
    ] {
        let smtp = SmtpServer::start_refusing(reply).await;
        let url = smtp.url();
        let app = spawn_app_with(move |c| {
            c.mail.smtp_url = Some(url);
            c.mail.retry_initial_ms = 50;
            c.mail.retry_max_ms = 100;
        })
        .await;
        let to = format!("refused.{}.{}@example.org", std::process::id(), &reply[..3]);
        let form = json!({"question": "q", "email": to, "transcript": true});
        let patron = app.start_chat_with("riverside-main", form).await;
        let ann = app.staff("ann").await;
        assert_eq!(ann.accept(patron.session).await.0, 200);
        let end = ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
        assert_eq!(end.0, 200);
        // Refused, and (greylisted) refused again, each time logged.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let wanted = if reply.starts_with('4') { 2 } else { 1 };
        while smtp.refused().len() < wanted {
            assert!(std::time::Instant::now() < deadline, "the mailer tried: {:?}", smtp.refused());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(smtp.refused().iter().all(|a| a.eq_ignore_ascii_case(&to)), "{:?}", smtp.refused());
        // The refusal is logged with its code (and the mail's id)...
        let code = &reply[..3];
        app.eventually("the refusal is logged", || async {
            crate::helpers::captured_logs().contains(&format!("({code})"))
        })
        .await;
        // ...and the address, which the server's reply quoted, nowhere.
        let logs = crate::helpers::captured_logs().to_lowercase();
        assert!(!logs.contains(&to.to_lowercase()), "the logs carry the refused address {to}");
    }
}

#[tokio::test]
async fn an_answer_the_mail_server_refuses_for_good_is_said_on_its_question_and_flags_it_for_follow_up() {
    let smtp = SmtpServer::start_refusing("550 5.1.1 <{addr}>: Recipient address rejected: User unknown").await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat_with("riverside-main", json!({"question": "Q?", "email": "gone@example.org"})).await;
    ann.accept(patron.session).await;
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let (status, _) = ann.act(q, "answer", json!({"body": "Here it is.", "confirm_live": true})).await;
    assert_eq!(status, 200);
    let detail = || async { ann.get(&format!("/api/questions/{q}")).await.1 };
    let told = |d: &serde_json::Value| {
        d["timeline"].as_array().unwrap().iter().any(|t| {
            let body = t["body"].as_str().unwrap_or_default();
            t["change"] == "note" && body.starts_with("The answer e-mailed to gone@example.org could not be delivered")
        })
    };
    app.eventually("the refusal is said on the question", || async { told(&detail().await) }).await;
    let d = detail().await;
    assert_eq!(d["question"]["state"]["follow_up"], true, "{d}");
    let note = d["timeline"].as_array().unwrap().iter().find(|t| t["change"] == "note").unwrap().clone();
    assert!(
        note["body"].as_str().unwrap().contains("the mail server answered: “permanent error (550): 5.1.1"),
        "quoted: {note}"
    );
    assert!(smtp.refused().len() == 1, "refused once, not tried again: {:?}", smtp.refused());
}

#[tokio::test]
async fn a_patron_can_ask_for_the_transcript_during_the_chat_and_bad_addresses_are_refused() {
    let app = spawn_app().await;
    let patron = app.start_chat("riverside-main", "q").await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(app.url("/api/chat/transcript")).bearer_auth(&patron.token).json(&body).send()
    };
    assert_eq!(post(json!({"email": "nope"})).await.unwrap().status(), 422);
    // A quoted or escaped local part would write one mailbox in endless ways.
    assert_eq!(post(json!({"email": "\"pat\"@example.org"})).await.unwrap().status(), 422);
    let res = post(json!({"email": "pat@example.org"})).await.unwrap();
    assert_eq!(res.status(), 200);
    let rec = app.state.app.store().session(refdesk_domain::ids::SessionId(patron.session)).await.unwrap().unwrap();
    assert_eq!(rec.transcript_to.as_deref(), Some("pat@example.org"));
    // A page opened again reads where it goes.
    let page: serde_json::Value =
        http.get(app.url("/api/chat")).bearer_auth(&patron.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["transcript_to"], "pat@example.org");
    let res = http
        .post(app.url("/api/libraries/riverside-main/chats"))
        .json(&json!({"question": "q", "transcript": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "a transcript needs an address");
    // Once a librarian took the chat, staff are told, in a line of their
    // own, once per change: refused addresses and the same mailbox again
    // write nothing; the patron reads none of it.
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    // The patron's page, open meanwhile, is sent none of it either.
    let mut page_socket = patron.socket().await;
    page_socket.resume(None, 0).await;
    assert_eq!(post(json!({"email": "nope"})).await.unwrap().status(), 422);
    assert_eq!(post(json!({"email": "PAT@example.org", "utc_offset": 60})).await.unwrap().status(), 200);
    assert_eq!(post(json!({})).await.unwrap().status(), 200);
    assert_eq!(post(json!({"email": "pat@work.example"})).await.unwrap().status(), 200);
    let mut desk = ann.socket().await;
    desk.resume(Some(patron.session), 0).await;
    assert_eq!(desk.say(Some(patron.session), "message", "After the asks", "after-asks").await["type"], "ack");
    let seen = page_socket.until(|f| f["type"] == "event" && f["body"] == "After the asks").await;
    assert!(seen.iter().all(|f| f["system"] != "transcript"), "the patron's socket: {seen:?}");
    let (_, view) = ann.get(&format!("/api/sessions/{}", patron.session)).await;
    let told: Vec<_> = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["system"] == "transcript")
        .map(|m| (m["audience"].as_str().unwrap(), m["body"].as_str().unwrap()))
        .collect();
    assert_eq!(told.len(), 2, "the same mailbox said nothing; cancelled, then asked: {view}");
    assert!(told.iter().all(|(audience, _)| *audience == "staff"), "{told:?}");
    assert!(told[0].1.contains("no longer") && told[1].1.contains("asked for the transcript"), "{told:?}");
    let page: serde_json::Value =
        http.get(app.url("/api/chat")).bearer_auth(&patron.token).send().await.unwrap().json().await.unwrap();
    assert!(!page.to_string().contains("transcript by e-mail"), "the patron reads no such line: {page}");
    assert!(!page.to_string().contains("\"system\":\"transcript\""), "{page}");
}

#[tokio::test]
async fn a_patron_asks_for_the_transcript_after_the_chat_has_ended_and_it_is_sent_once_without_notes() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| {
        c.mail.smtp_url = Some(url);
        c.limits.patron_mails_per_recipient_per_day = 1;
    })
    .await;
    let ann = app.staff("ann").await;
    let http = reqwest::Client::new();
    let ask = |token: String, email: &'static str| {
        let req = http.post(app.url("/api/chat/transcript")).bearer_auth(token);
        async move {
            let res = req.json(&json!({"email": email, "utc_offset": 60})).send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    // A chat no librarian took has no transcript, after its end either.
    let missed = app.start_chat("riverside-main", "Nobody came").await;
    let end = |token: String| http.post(app.url("/api/chat/end")).bearer_auth(token).send();
    assert_eq!(end(missed.token.clone()).await.unwrap().status(), 200);
    let (status, body) = ask(missed.token.clone(), "pat@example.org").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no librarian took"), "{body}");
    // A chat Ann took, ended with no transcript asked for.
    let patron = app.start_chat("riverside-main", "Where are the 1890 maps?").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let path = format!("/api/sessions/{}/messages", patron.session);
    ann.post(&path, json!({"body": "In the map room, drawer 12."})).await;
    ann.post(&path, json!({"kind": "note", "body": "SECRET-NOTE drawer 12 sticks"})).await;
    assert_eq!(ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
    // Without an address there is nothing to cancel.
    let res = http.post(app.url("/api/chat/transcript")).bearer_auth(&patron.token).json(&json!({})).send();
    assert_eq!(res.await.unwrap().status(), 409);
    // Asked for now: sent at once, to that address, with no note.
    let (status, body) = ask(patron.token.clone(), "pat@example.org").await;
    assert_eq!((status, &body["transcript_to"]), (200, &json!("pat@example.org")), "{body}");
    let mails = smtp.wait_for(1).await;
    let text = mail_text(&mails[0]);
    assert!(mails[0].contains("pat@example.org") && text.contains("In the map room, drawer 12."), "{text}");
    assert!(!mails[0].contains("SECRET-NOTE"), "no note (B4)");
    assert!(!text.contains("asked for the transcript"), "nor the line telling staff: {text}");
    let (_, view) = ann.get(&format!("/api/sessions/{}", patron.session)).await;
    assert_eq!(view["messages"].as_array().unwrap().last().unwrap()["system"], "transcript", "staff are told: {view}");
    // Once per chat: asking again, to any address, sends nothing more.
    let (status, body) = ask(patron.token.clone(), "other@example.org").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("already been asked for"), "{body}");
    // Another chat's transcript to the same mailbox is past its day's cap
    // (1 here): not sent, and not refused either (a refusal would tell a
    // stranger the address had transcripts today), as at an end.
    let second = app.start_chat("riverside-main", "And the 1900 maps?").await;
    assert_eq!(ann.accept(second.session).await.0, 200);
    assert_eq!(ann.post(&format!("/api/sessions/{}/end", second.session), json!(null)).await.0, 200);
    let (status, body) = ask(second.token.clone(), "Pat+maps@example.org").await;
    assert_eq!(status, 200, "{body}");
    // Staff are told the truth: asked, not sent.
    let (_, view) = ann.get(&format!("/api/sessions/{}", second.session)).await;
    let last = &view["messages"].as_array().unwrap().last().unwrap()["body"];
    assert!(last.as_str().unwrap().contains("not sent"), "{view}");
    app.eventually("nothing left to send", || async {
        app.state.app.store().due_mail(i64::MAX, 10).await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "one transcript in all");
}

#[tokio::test]
async fn a_transcript_after_the_end_is_for_an_hour_and_never_for_a_chat_whose_patron_was_blocked() {
    let app = crate::helpers::spawn_app_with_manual_clock().await;
    let ann = app.staff("ann").await;
    let ask = |token: String| {
        let req = reqwest::Client::new().post(app.url("/api/chat/transcript")).bearer_auth(token);
        async move {
            let res = req.json(&json!({"email": "pat@example.org"})).send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let ended_chat = |question: &'static str| async {
        let patron = app.start_chat("riverside-main", question).await;
        assert_eq!(ann.accept(patron.session).await.0, 200);
        assert_eq!(ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
        patron
    };
    // An hour after its end, a chat's transcript is no longer sent (the
    // mailbox's day counts the chats ended in it).
    let late = ended_chat("Old maps?").await;
    app.clock().advance(3_600_000 + 1_000);
    let (status, body) = ask(late.token.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("more than an hour ago"), "{body}");
    let rec = app.state.app.store().session(refdesk_domain::ids::SessionId(late.session)).await.unwrap().unwrap();
    assert_eq!(rec.transcript_to, None, "nothing recorded");
    // Blocked after the end (within its hour): the chat is not theirs to mail
    // (the block holds the network: last). Ann, with no desk open for the
    // hour the clock moved on, may have been signed off by the background
    // round meanwhile: she goes on duty again.
    let (status, _) = ann.post("/api/me/availability", json!({"availability": "on_duty"})).await;
    assert_eq!(status, 200);
    let rude = ended_chat("You are all useless").await;
    let (status, body) = ann.post(&format!("/api/sessions/{}/block", rude.session), json!({"reason": "abuse"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = ask(rude.token.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("blocked"), "{body}");
    assert!(app.state.app.store().due_mail(i64::MAX, 10).await.unwrap().is_empty(), "nothing queued");
}

#[tokio::test]
async fn with_no_smtp_server_configured_email_is_written_as_eml_files() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat_with("riverside-main", json!({"question": "Q?", "email": "pat@example.org"})).await;
    ann.accept(patron.session).await;
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let (status, _) = ann.act(q, "answer", json!({"body": "EML-ANSWER", "confirm_live": true})).await;
    assert_eq!(status, 200);
    let dir = app.dir.path().join("mail");
    let files = |n: usize| {
        let dir = dir.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let mut files: Vec<_> = std::fs::read_dir(&dir)
                    .map(|d| {
                        d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect()
                    })
                    .unwrap_or_default();
                if files.len() >= n {
                    files.sort();
                    return files;
                }
                assert!(std::time::Instant::now() < deadline, "{n} .eml files appear under the data folder");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let file = files(1).await[0].clone();
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(raw.contains("pat@example.org") && mail_text(&raw).contains("EML-ANSWER"));
    assert!(raw.contains("MIME-Version: 1.0"), "{raw}");
    // A database restored from an older backup gives the next e-mail the
    // id of one already filed (the outbox's newest row gone): it is filed
    // beside it, not over it.
    forget_the_newest_outbox_row(&app);
    let (status, _) = ann.act(q, "answer", json!({"body": "EML-SECOND", "confirm_live": true})).await;
    assert_eq!(status, 200);
    let both = files(2).await;
    assert!(mail_text(&std::fs::read_to_string(&file).unwrap()).contains("EML-ANSWER"), "the first is kept");
    assert!(both.iter().any(|f| mail_text(&std::fs::read_to_string(f).unwrap()).contains("EML-SECOND")));
    // Private like the database: a patron's address and question are in it.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the mail folder");
    assert_eq!(mode(&file), 0o600, "an e-mail file");
}

/// Deletes the outbox's newest row so that the next e-mail gets its id, as
/// after a restore from a backup taken before it: on SQLite the next id is
/// the highest plus one; on PostgreSQL the identity is set back too.
fn forget_the_newest_outbox_row(app: &crate::helpers::TestApp) {
    let newest = "DELETE FROM outbox WHERE id = (SELECT max(id) FROM outbox) RETURNING id";
    match std::fs::read_to_string(app.dir.path().join("database_url")) {
        Ok(url) => {
            let psql = |sql: &str| {
                let out = std::process::Command::new("psql")
                    .args([url.trim(), "-qtAc", sql])
                    .output()
                    .expect("psql runs (scripts/test.sh installs it)");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8(out.stdout).unwrap()
            };
            let id = psql(newest).lines().next().unwrap().trim().to_owned();
            psql(&format!("ALTER TABLE outbox ALTER COLUMN id RESTART WITH {id}"));
        }
        Err(_) => {
            let db = rusqlite::Connection::open(app.dir.path().join("refdesk.sqlite3")).unwrap();
            db.busy_timeout(Duration::from_secs(10)).unwrap();
            db.query_row(newest, [], |r| r.get::<_, i64>(0)).unwrap();
        }
    }
}

#[tokio::test]
async fn answers_e_mailed_to_one_address_are_capped_per_day() {
    let app = spawn_app_with(|c| c.limits.answers_per_recipient_per_day = 2).await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat_with("riverside-main", json!({"question": "Q?", "email": "pat@example.org"})).await;
    ann.accept(patron.session).await;
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let answer = |body: &str, email: &str| json!({"body": body, "email": email, "confirm_live": true});
    for n in 0..2 {
        assert_eq!(ann.act(q, "answer", answer(&format!("ANSWER {n}"), "victim@example.org")).await.0, 200);
    }
    let (status, refused) = ann.act(q, "answer", answer("ANSWER 2", "Vic.tim+x@Example.org")).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("too_many_mails")), "{refused}");
    let (_, detail) = ann.get(&format!("/api/questions/{q}")).await;
    let answers = detail["timeline"].as_array().unwrap().iter().filter(|t| t["change"] == "answer").count();
    assert_eq!(answers, 2, "the refused answer left nothing: {detail}");
    assert_eq!(ann.act(q, "answer", answer("ANSWER 3", "pat@example.org")).await.0, 200, "another address");
}

/// A stolen sign-in cannot spread answers over many addresses, each within
/// its own cap: one staff member's answers of the day are capped too.
#[tokio::test]
async fn answers_one_librarian_e_mails_are_capped_per_day_whatever_the_addresses() {
    let app = spawn_app_with(|c| c.limits.answers_per_staff_per_day = 2).await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat_with("riverside-main", json!({"question": "Q?", "email": "pat@example.org"})).await;
    ann.accept(patron.session).await;
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let answer = |email: &str| json!({"body": "Here it is.", "email": email, "confirm_live": true});
    for n in 0..2 {
        assert_eq!(ann.act(q, "answer", answer(&format!("reader{n}@example.org"))).await.0, 200);
    }
    let (status, refused) = ann.act(q, "answer", answer("reader2@example.org")).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("too_many_mails")), "{refused}");
    let carla = app.staff("carla").await;
    assert_eq!(carla.act(q, "answer", answer("reader2@example.org")).await.0, 200, "a colleague's own count");
}

/// A library's admins say where patrons' replies go: its e-mails carry
/// `Reply-To` with the library's name and that address, another library's
/// none; a librarian may not set it, and an address that is not one
/// changes nothing.
#[tokio::test]
async fn a_librarys_emails_name_the_address_its_admins_gave_for_replies() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let (ann, ben, carla) = (app.staff("ann").await, app.staff("ben").await, app.staff("carla").await);
    let setting = "/api/libraries/riverside-main/reply-to";
    assert_eq!(carla.get(setting).await, (200, json!({"reply_to": null})));
    assert_eq!(ann.put(setting, json!({"reply_to": "ref@riverside.example.org"})).await.0, 403);
    for bad in ["not an address", "ref@[127.0.0.1]", "a@b@c.org", "désk@bücher.example.org"] {
        let (status, why) = carla.put(setting, json!({"reply_to": bad})).await;
        assert_eq!((status, why["error"]["field"].as_str()), (422, Some("reply_to")), "{bad}: {why}");
    }
    assert_eq!(carla.get(setting).await.1, json!({"reply_to": null}), "nothing saved");
    let set = carla.put(setting, json!({"reply_to": " ref@riverside.example.org "})).await;
    assert_eq!(set, (200, json!({"reply_to": "ref@riverside.example.org"})));

    // A transcript from each of two libraries.
    for (staff, library, email) in
        [(&ann, "riverside-main", "pat@example.org"), (&ben, "lakeside-public", "lee@example.org")]
    {
        let form = json!({"name": "Pat", "question": "Replies?", "email": email, "transcript": true});
        let patron = app.start_chat_with(library, form).await;
        staff.accept(patron.session).await;
        assert_eq!(staff.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
    }
    let mails = smtp.wait_for(2).await;
    let header = |raw: &str| raw.lines().find(|l| l.to_ascii_lowercase().starts_with("reply-to:")).map(str::to_owned);
    let riverside = mails.iter().find(|m| m.contains("pat@example.org")).unwrap();
    let reply = header(riverside).expect("a Reply-To header");
    assert!(
        reply.contains("ref@riverside.example.org") && reply.contains("Riverside University Main Library"),
        "{reply}"
    );
    let lakeside = mails.iter().find(|m| m.contains("lee@example.org")).unwrap();
    assert_eq!(header(lakeside), None, "another library's has none");
    // Cleared: none again.
    assert_eq!(carla.put(setting, json!({"reply_to": null})).await, (200, json!({"reply_to": null})));
}
