//! Bad input from patrons and staff: a clear error, the connection stays
//! up, and nothing already stored changes.

use crate::helpers::{spawn_app, spawn_app_with};
use serde_json::json;

#[tokio::test]
async fn an_oversize_message_is_refused_with_a_clear_error_and_the_socket_stays_open() {
    let app = spawn_app_with(|c| c.limits.max_message_chars = 50).await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "short question").await;
    ann.accept(patron.session).await;
    let mut ws = patron.socket().await;
    ws.resume(None, 0).await;
    let before = app.stored(patron.session).await;

    let err = ws.say(None, "message", &"x".repeat(51), "big").await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "invalid");
    assert!(err["message"].as_str().unwrap().contains("limit is 50"), "{err}");
    assert_eq!(app.stored(patron.session).await, before, "nothing stored");

    // Still open and working.
    let ok = ws.say(None, "message", &"x".repeat(50), "fits").await;
    assert_eq!(ok["type"], "ack");

    // Over REST too, for staff.
    let (status, body) =
        ann.post(&format!("/api/sessions/{}/messages", patron.session), json!({"body": "y".repeat(51)})).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "invalid");
}

#[tokio::test]
async fn a_close_from_the_client_is_answered_with_a_close_frame() {
    let app = spawn_app().await;
    let patron = app.start_chat("riverside-main", "Closing handshake?").await;
    let mut socket = patron.socket().await;
    assert_eq!(socket.close_from_here().await, Some(1000), "a patron's socket answers the close (RFC 6455, 5.5.1)");
    let ann = app.staff("ann").await;
    let mut socket = ann.socket().await;
    assert_eq!(socket.close_from_here().await, Some(1000), "and a librarian's");
}

#[tokio::test]
async fn malformed_frames_get_an_error_frame_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let patron = app.start_chat("riverside-main", "q").await;
    let mut ws = patron.socket().await;
    for bad in
        ["{not json", "[]", r#"{"type":"launch_missiles"}"#, r#"{"type":"send"}"#, r#"{"type":"resume","after":-1}"#]
    {
        ws.send_raw(bad).await;
        let f = ws.next().await;
        assert_eq!((f["type"].as_str(), f["code"].as_str()), (Some("error"), Some("bad_frame")), "{bad}");
    }
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
    assert_eq!(app.stored(patron.session).await.len(), 1, "nothing stored but the question");
}

#[tokio::test]
async fn unknown_sessions_and_wrong_tokens_are_refused() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(999_999).await.0, 404);
    assert_eq!(ann.get("/api/sessions/999999").await.0, 404);
    let mut ws = ann.socket().await;
    ws.send(json!({"type": "resume", "session": 999_999, "after": 0})).await;
    let f = ws.next().await;
    assert_eq!((f["type"].as_str(), f["code"].as_str()), (Some("error"), Some("not_found")));

    // A wrong chat token opens nothing, over REST or WebSocket.
    let res = reqwest::Client::new().get(app.url("/api/chat")).bearer_auth("0".repeat(64)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    // Said as a patron can act on it: there is nothing to sign in to.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("start a new chat") && !message.contains("sign in"), "{message}");
    let res = reqwest::Client::new().get(app.url("/api/chat")).send().await.unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated", "no token at all");
    // Said as such: nothing was erased, the request only lacked its token.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no chat token") && !message.contains("erased"), "{body}");
    let ws_url = format!("ws://{}/api/ws", app.addr);
    assert_eq!(
        first_frame_refused(&ws_url, Some(json!({"type": "auth", "token": "f".repeat(64)}))).await,
        "unauthenticated"
    );
    // No cookie, no staff socket; told what each kind of client sends.
    let (code, message) = first_frame_refusal(&ws_url, Some(json!({"type": "auth"}))).await;
    assert_eq!(code, "unauthenticated");
    assert!(message.contains("chat's token") && message.contains("sign in first"), "{message}");
    // Anything before `auth` ends the connection; so does silence. Neither
    // says the credential is bad (a client keeps it and tries again).
    assert_eq!(first_frame_refused(&ws_url, Some(json!({"type": "resume", "after": 0}))).await, "bad_frame");
    assert_eq!(first_frame_refused(&ws_url, None).await, "auth_timeout");
    // A token in the URL (which proxies log) is refused outright, even a good one.
    let chat = app.start_chat("riverside-main", "in the URL").await;
    let url = format!("ws://{}/api/ws?token={}", app.addr, chat.token);
    assert!(tokio_tungstenite::connect_async(url).await.is_err(), "the upgrade is refused");

    // Wrong password: 401, and the same answer as an unknown user.
    for (user, pass) in [("ann", "wrong-password"), ("nobody", "refdesk-demo")] {
        let res = reqwest::Client::new()
            .post(app.url("/api/login"))
            .json(&json!({"username": user, "password": pass}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert!(!res.headers().contains_key("set-cookie"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], json!({"code": "unauthenticated", "message": "wrong username or password"}));
    }
}

#[tokio::test]
async fn a_patron_cannot_send_a_note_or_act_as_staff() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "q").await;
    let other = app.start_chat("riverside-main", "someone else's chat").await;
    ann.accept(patron.session).await;
    let mut ws = patron.socket().await;
    ws.resume(None, 0).await;
    let before = app.stored(patron.session).await;
    let before_other = app.stored(other.session).await;

    let err = ws.say(None, "note", "I am staff now", "n1").await;
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("forbidden")));
    let err = ws.say(Some(other.session), "message", "hello other", "x1").await;
    assert_eq!(err["code"], "not_found", "a patron cannot write into another chat");
    ws.send(json!({"type": "resume", "session": other.session, "after": 0})).await;
    assert_eq!(ws.next().await["code"], "not_found", "nor read it");
    ws.send(json!({"type": "queue"})).await;
    assert_eq!(ws.next().await["code"], "forbidden", "nor see the queue");
    ws.send(json!({"type": "typing", "on": true, "note": true})).await;
    assert_eq!(ws.next().await["code"], "forbidden", "nor type a note");

    // Staff endpoints with a patron token: not signed in.
    let http = reqwest::Client::new();
    for path in ["/api/queue", "/api/questions", &format!("/api/sessions/{}", patron.session)] {
        let res = http.get(app.url(path)).bearer_auth(&patron.token).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
    let res = http
        .post(app.url(&format!("/api/sessions/{}/accept", other.session)))
        .bearer_auth(&patron.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    assert_eq!(app.stored(patron.session).await, before);
    assert_eq!(app.stored(other.session).await, before_other);
}

#[tokio::test]
async fn staff_outside_the_chat_cannot_write_into_it_and_bad_codes_change_nothing() {
    let app = spawn_app().await;
    let (ann, carla, ben) = (app.staff("ann").await, app.staff("carla").await, app.staff("ben").await);
    let patron = app.start_chat("riverside-main", "q").await;
    ann.accept(patron.session).await;
    let before = app.stored(patron.session).await;
    let path = format!("/api/sessions/{}/messages", patron.session);
    assert_eq!(carla.post(&path, json!({"body": "hi"})).await.0, 403, "not part of the chat");
    assert_eq!(ben.post(&path, json!({"body": "hi"})).await.0, 404, "another library's chat does not exist for ben");
    assert_eq!(ann.post(&path, json!({"kind": "answer", "body": "hi"})).await.0, 422);
    assert_eq!(ann.post(&path, json!({"kind": "system", "body": "hi"})).await.0, 422);
    assert_eq!(ann.post(&path, json!({"body": "   "})).await.0, 422);
    assert_eq!(ann.post(&path, json!({"body": "x", "client_id": "has space"})).await.0, 422);
    let code = format!("/api/sessions/{}/code", patron.session);
    assert_eq!(ann.post(&code, json!({"code": "no_such_code"})).await.0, 422);
    assert_eq!(ben.post(&code, json!({"code": "answered"})).await.0, 404);
    assert_eq!(app.stored(patron.session).await, before, "nothing changed");
    let (_, list) = ann.get("/api/questions").await;
    assert_eq!(list[0]["state"]["code"], serde_json::Value::Null);

    // Ending twice: a conflict, and no second end line.
    let end = format!("/api/sessions/{}/end", patron.session);
    assert_eq!(ann.post(&end, json!(null)).await.0, 200);
    assert_eq!(ann.post(&end, json!(null)).await.0, 409);
    assert_eq!(ann.post(&path, json!({"body": "too late"})).await.0, 409, "nothing is said after the end");
    let ends = app.stored(patron.session).await.iter().filter(|m| m.body.starts_with("Chat session has ended")).count();
    assert_eq!(ends, 1);
}

#[tokio::test]
async fn a_bad_pre_chat_form_is_refused() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let cases = [
        ("riverside-main", json!({"question": ""}), 422),
        ("riverside-main", json!({"question": "q", "email": "not-an-address"}), 422),
        ("riverside-main", json!({"question": "q", "name": "a\u{7}b"}), 422),
        ("riverside-main", json!({"nope": 1}), 422),
        ("no-such-library", json!({"question": "q"}), 404),
    ];
    for (lib, body, status) in cases {
        let res = http.post(app.url(&format!("/api/libraries/{lib}/chats"))).json(&body).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{body}");
        let v: serde_json::Value = res.json().await.unwrap();
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let ann = app.staff("ann").await;
    assert_eq!(ann.get("/api/queue").await.1, json!([]), "no chat was created");
}

#[tokio::test]
async fn malformed_paths_and_query_strings_get_the_same_error_shape() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    for path in ["/api/sessions/abc", "/api/questions/1.5", "/api/im/1?after=x"] {
        let (status, body) = ann.get(path).await;
        assert_eq!(status, 400, "{path}");
        assert!(body["error"]["code"].as_str().is_some_and(|c| c.starts_with("bad_")), "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{path}");
        // In words, not Rust's names of types.
        assert!(message.contains("whole number") && !message.contains("64"), "{path}: {message}");
    }
    // A body's value of the wrong form, too.
    let (status, body) =
        ann.post("/api/libraries", json!({"institution": "North College", "slug": "x", "name": "X"})).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("expected a whole number") && !message.contains("i64"), "{message}");
}

/// Reading a conversation with nobody answers as sending to nobody does
/// (it answered `200 []`): `422`; with a colleague not yet written to, an
/// empty conversation.
#[tokio::test]
async fn a_conversation_with_no_colleague_is_refused_as_sending_to_one_is() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let ben = app.staff("ben").await;
    for peer in ["-1", "9223372036854775807", "0"] {
        let (status, body) = ann.get(&format!("/api/im/{peer}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid")), "{peer}: {body}");
        let (sent, _) = ann.post(&format!("/api/im/{peer}"), json!({"body": "hello"})).await;
        assert_eq!(sent, 422, "{peer}");
    }
    assert_eq!(ann.get(&format!("/api/im/{}", ben.id)).await, (200, json!([])), "a colleague not written to yet");
    assert_eq!(ann.post(&format!("/api/im/{}", ben.id), json!({"body": "hello"})).await.0, 200);
    let (status, page) = ann.get(&format!("/api/im/{}", ben.id)).await;
    assert_eq!((status, page.as_array().map(Vec::len)), (200, Some(1)), "{page}");
}

#[tokio::test]
async fn a_transcript_cannot_be_requested_once_the_chat_has_ended() {
    let app = spawn_app().await;
    let patron = app.start_chat("riverside-main", "q").await;
    let http = reqwest::Client::new();
    let end = http.post(app.url("/api/chat/end")).bearer_auth(&patron.token).send().await.unwrap();
    assert_eq!(end.status(), 200);
    let res = http
        .post(app.url("/api/chat/transcript"))
        .bearer_auth(&patron.token)
        .json(&json!({"email": "pat@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "told, instead of a transcript that would never come");
}

#[tokio::test]
async fn the_open_entry_points_are_rate_limited_per_address() {
    let app = spawn_app_with(|c| {
        c.limits.logins_per_minute = 3;
        c.limits.starts_per_minute = 2;
    })
    .await;
    let http = reqwest::Client::new();
    let login = || http.post(app.url("/api/login")).json(&json!({"username": "ann", "password": "wrong-guess"})).send();
    for _ in 0..3 {
        assert_eq!(login().await.unwrap().status(), 401);
    }
    let res = login().await.unwrap();
    assert_eq!(res.status(), 429, "a password-guessing run is slowed down");
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    let start = || http.post(app.url("/api/libraries/riverside-main/chats")).json(&json!({"question": "q"})).send();
    assert_eq!(start().await.unwrap().status(), 201);
    assert_eq!(start().await.unwrap().status(), 201);
    assert_eq!(start().await.unwrap().status(), 429, "a flood of chats is refused");
    let form = http
        .post(app.url("/api/libraries/riverside-main/questions"))
        .json(&json!({"question": "q", "email": "p@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 429, "the offline form shares the bucket");
    // Reading is not limited, and nothing was created by the refused calls.
    assert_eq!(http.get(app.url("/api/libraries/riverside-main/status")).send().await.unwrap().status(), 200);
    assert_eq!(app.state.app.store().waiting().await.unwrap().len(), 2);
}

/// A tablet capitalises the first letter of the name box; a pasted name
/// brings a space: the name is read in lower case, without spaces around
/// it (every sign-in name is lower case), and no attempt is spent on it.
#[tokio::test]
async fn a_sign_in_name_is_read_in_lower_case_without_spaces_around_it() {
    let app = spawn_app().await;
    for typed in ["Ann", " ann ", "ANN\t"] {
        let res = reqwest::Client::new()
            .post(app.url("/api/login"))
            .json(&json!({"username": typed, "password": refdesk_app::demo::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{typed:?}");
        let me: serde_json::Value = res.json().await.unwrap();
        assert_eq!(me["username"], "ann");
    }
    let inside = json!({"username": "a nn", "password": refdesk_app::demo::PASSWORD});
    let res = reqwest::Client::new().post(app.url("/api/login")).json(&inside).send().await.unwrap();
    assert_eq!(res.status(), 401, "a space inside is no sign-in name");
}

/// A stranger sharing the library's address (its Wi-Fi, its public
/// computers) can spend the address's sign-in attempts; a browser an account
/// signed in from before has a budget of its own for that account, which no
/// one can forge a cookie for.
#[tokio::test]
async fn a_stranger_spending_the_addresses_sign_ins_does_not_lock_out_a_browser_that_signed_in_before() {
    let app = spawn_app_with(|c| c.limits.logins_per_minute = 3).await;
    let desk = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let stranger = reqwest::Client::new();
    let login = |http: &reqwest::Client, username: &str, password: &str, cookie: Option<String>| {
        let req = http.post(app.url("/api/login")).json(&json!({"username": username, "password": password}));
        let req = match cookie {
            Some(c) => req.header("cookie", format!("refdesk_device={c}")),
            None => req,
        };
        req.send()
    };
    let res = login(&desk, "ann", refdesk_app::demo::PASSWORD, None).await.unwrap();
    assert_eq!(res.status(), 200);
    let set: Vec<String> = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().into()).collect();
    let device = set.iter().find(|c| c.starts_with("refdesk_device=")).expect("a known-browser cookie");
    for attribute in ["; HttpOnly", "; SameSite=Strict", "; Path=/", "; Max-Age=2592000"] {
        assert!(device.contains(attribute), "{device}");
    }
    let token = device.split(';').next().unwrap().trim_start_matches("refdesk_device=").to_owned();
    assert!(!token.contains("ann"), "a shared computer's cookie does not say who signed in there: {token}");
    // Ben signs in at another browser, before the stranger comes.
    let elsewhere = reqwest::Client::new();
    let res = login(&elsewhere, "ben", refdesk_app::demo::PASSWORD, None).await.unwrap();
    let bens = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned());
    let mut bens =
        bens.filter_map(|c| c.strip_prefix("refdesk_device=").map(|c| c.split(';').next().unwrap().to_owned()));
    let bens = bens.next().expect("ben's token");

    // The stranger spends the address's last attempt, and is refused.
    assert_eq!(login(&stranger, "ann", "wrong-guess", None).await.unwrap().status(), 401);
    assert_eq!(login(&stranger, "ann", "wrong-guess", None).await.unwrap().status(), 429, "the address is spent");
    // Forged, altered or another account's: the address's budget, spent.
    let (name, rest) = token.split_once(':').unwrap();
    let (issued, tag) = rest.split_once(':').unwrap();
    let later = format!("{name}:{}:{tag}", issued.parse::<i64>().unwrap() + 1);
    let zeros = format!("{name}:{issued}:{}", "0".repeat(64));
    let padded = format!("{name}:0{issued}:{tag}");
    for forged in [later, zeros, padded, bens.clone()] {
        let res = login(&stranger, "ann", "wrong-guess", Some(forged.clone())).await.unwrap();
        assert_eq!(res.status(), 429, "{forged}");
    }
    let res = login(&stranger, "ben", refdesk_app::demo::PASSWORD, Some(token.clone())).await.unwrap();
    assert_eq!(res.status(), 429, "ann's token spares attempts at ann's account only");
    let res = login(&stranger, "ben", "wrong-guess", Some(bens)).await.unwrap();
    assert_eq!(res.status(), 401, "and ben's at ben's");

    // The desk's browser signs ann in all the same; the next shift's
    // librarian at the same browser has no token yet.
    let res = login(&desk, "ann", refdesk_app::demo::PASSWORD, None).await.unwrap();
    assert_eq!(res.status(), 200, "the desk signs in");
    assert_eq!(login(&desk, "ben", refdesk_app::demo::PASSWORD, None).await.unwrap().status(), 429);
    // The browser's budget is the address's size: ann's guesses from it
    // are limited too (a new token came with the sign-in: a full budget).
    for _ in 0..3 {
        assert_eq!(login(&desk, "ann", "wrong-guess", None).await.unwrap().status(), 401);
    }
    let res = login(&desk, "ann", "wrong-guess", None).await.unwrap();
    assert_eq!(res.status(), 429, "its own budget is spent");
    assert!(res.headers().contains_key("retry-after"));
    let said: serde_json::Value = res.json().await.unwrap();
    let said = said["error"]["message"].as_str().unwrap();
    assert!(said.starts_with("too many sign-in attempts at this account from this browser"), "{said}");
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("refdesk_limited_total{limit=\"login\"} 8"), "refusals are counted:\n{metrics}");

    // The key is the store's: after a restart the browser is known still.
    let tweak = |c: &mut refdesk_server::config::Config| c.limits.logins_per_minute = 3;
    let app = crate::helpers::start(app.stop().await, tweak).await;
    let login = |http: &reqwest::Client, password: &str| {
        http.post(app.url("/api/login")).json(&json!({"username": "ann", "password": password})).send()
    };
    for _ in 0..3 {
        assert_eq!(login(&stranger, "wrong-guess").await.unwrap().status(), 401);
    }
    assert_eq!(login(&stranger, "wrong-guess").await.unwrap().status(), 429);
    assert_eq!(login(&desk, refdesk_app::demo::PASSWORD).await.unwrap().status(), 200, "known after a restart");
}

/// Opens a socket, sends `first` (or nothing), and returns the code of the
/// error frame the server answers with; the server then closes the socket.
async fn first_frame_refused(url: &str, first: Option<serde_json::Value>) -> String {
    first_frame_refusal(url, first).await.0
}

/// The code and message of the error a socket gets for its first frame.
async fn first_frame_refusal(url: &str, first: Option<serde_json::Value>) -> (String, String) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("the upgrade itself is open to all");
    if let Some(f) = first {
        ws.send(Ws::text(f.to_string())).await.unwrap();
    }
    let mut refusal = None;
    // The server waits 10 s for an `auth` frame.
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next()).await {
        match msg {
            Ws::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "error", "nothing but an error before auth: {v}");
                refusal = Some((v["code"].as_str().unwrap().to_owned(), v["message"].as_str().unwrap().to_owned()));
            }
            Ws::Close(_) => break,
            _ => {}
        }
    }
    refusal.expect("an error frame before the close")
}

/// A staff member's request with a raw body of the given content type
/// (`None`: no `Content-Type` header).
async fn send_raw(
    staff: &crate::helpers::Staff,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: &'static str,
) -> (u16, serde_json::Value) {
    let mut req = staff.http.request(method, format!("{}{path}", staff.base())).body(body);
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_refused_with_415_and_changes_nothing() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat_with("riverside-main", json!({"question": "maps?", "email": "pat@example.org"})).await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let question = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let before = ann.get(&format!("/api/questions/{question}")).await.1;
    let answer = r#"{"body": "see the link", "email": "attacker@example.org", "confirm_live": true}"#;

    // What a page on another site can send without asking the browser
    // first: text/plain, a form, multipart — and a body with no type.
    for t in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x"), None]
    {
        let path = format!("/api/questions/{question}/answer");
        let (status, err) = send_raw(&ann, reqwest::Method::POST, &path, t, answer).await;
        assert_eq!(status, 415, "{t:?}: {err}");
        assert_eq!(err["error"]["code"], "unsupported_media_type", "{t:?}");
        for (path, body) in [
            (format!("/api/questions/{question}/close"), r#"{"confirm_live": true}"#),
            (format!("/api/sessions/{}/end", patron.session), "null"),
            ("/api/logout".to_owned(), "{}"),
            ("/api/me/availability".to_owned(), r#"{"availability": "off_duty"}"#),
        ] {
            assert_eq!(send_raw(&ann, reqwest::Method::POST, &path, t, body).await.0, 415, "{t:?} {path}");
        }
        let (status, _) = send_raw(&ann, reqwest::Method::PUT, "/api/policies/1", t, r#"{"body": "x"}"#).await;
        assert_eq!(status, 415, "PUT too");
    }
    assert_eq!(ann.get(&format!("/api/questions/{question}")).await.1, before, "nothing changed");
    assert!(app.state.app.store().due_mail(i64::MAX, 10).await.unwrap().is_empty(), "nothing was e-mailed");
    assert_eq!(ann.get("/api/me").await.0, 200, "still signed in");

    // The open entry points too.
    let http = reqwest::Client::new();
    let res = http
        .post(app.url("/api/libraries/riverside-main/chats"))
        .header("content-type", "text/plain")
        .body(r#"{"question": "q"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);

    // JSON in any of its spellings passes; a bodiless POST needs no type.
    let path = format!("/api/questions/{question}/note");
    let note = r#"{"body": "typed", "confirm_live": true}"#;
    assert_eq!(
        send_raw(&ann, reqwest::Method::POST, &path, Some("application/json; charset=utf-8"), note).await.0,
        200
    );
    assert_eq!(send_raw(&ann, reqwest::Method::POST, &path, Some("Application/JSON"), note).await.0, 200);
    let claim = format!("/api/questions/{question}/claim");
    assert_eq!(send_raw(&ann, reqwest::Method::POST, &claim, None, "").await.0, 409, "needs confirm_live, but no 415");
    let end = format!("/api/sessions/{}/end", patron.session);
    assert_eq!(send_raw(&ann, reqwest::Method::POST, &end, None, "").await.0, 200, "a bodiless POST");
}

#[tokio::test]
async fn the_patron_side_works_from_the_widget_frame() {
    // The frame is refdesk's own page (/ask/SLUG?embed=1) inside a library's
    // site: its requests are same-origin, JSON, with the token as a header.
    let app = spawn_app().await;
    let origin = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let frame = |req: reqwest::RequestBuilder| req.header("origin", &origin).header("sec-fetch-site", "same-origin");
    let res = frame(http.post(app.url("/api/libraries/riverside-main/chats")))
        .json(&json!({"question": "From the widget", "email": "pat@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let started = res.json::<serde_json::Value>().await.unwrap();
    let token = started["token"].as_str().unwrap().to_owned();
    // Taken by a librarian, so that it may be rated once ended.
    assert_eq!(app.staff("ann").await.accept(started["session"].as_i64().unwrap()).await.0, 200);
    let res = frame(http.post(app.url("/api/chat/transcript")))
        .bearer_auth(&token)
        .json(&json!({"email": "pat@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = frame(http.post(app.url("/api/chat/end"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200, "a bodiless POST, as ask.js sends it");
    let res = frame(http.post(app.url("/api/chat/rating")))
        .bearer_auth(&token)
        .json(&json!({"rating": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = frame(http.post(app.url("/api/libraries/riverside-main/questions")))
        .json(&json!({"question": "Offline form", "email": "pat@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_422_and_text_that_is_not_json_is_400_everywhere() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "q").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let question = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let before = ann.get(&format!("/api/questions/{question}")).await.1;
    let json = Some("application/json");
    let note = format!("/api/questions/{question}/note");
    let messages = format!("/api/sessions/{}/messages", patron.session);
    let availability = "/api/me/availability";
    // A question action reads its body itself (it may be empty); the rest
    // through the JSON extractor: the same answers.
    for (path, body, status) in [
        (note.as_str(), r#"{"body": 42, "confirm_live": true}"#, 422),
        (&note, r#"{"body": "x", "confirm_live": "yes"}"#, 422),
        (&note, r#"{"body": "x", "confirm_live": true, "colour": "red"}"#, 422),
        (&note, r#"[1, 2]"#, 422),
        (&note, r#"{"body": "x""#, 400),
        (&note, "not json", 400),
        (&messages, r#"{"body": 42}"#, 422),
        (&messages, r#"{"kind": 1, "body": "x"}"#, 422),
        (&messages, r#"{"body": "x""#, 400),
        (&messages, "not json", 400),
        (availability, r#"{"availability": true}"#, 422),
        (availability, r#"{"availability": "away", "colour": "red"}"#, 422),
        (availability, "not json", 400),
    ] {
        let (got, err) = send_raw(&ann, reqwest::Method::POST, path, json, body).await;
        assert_eq!(got, status, "{path} {body}: {err}");
        assert_eq!(err["error"]["code"], "bad_json", "{path} {body}");
    }
    // The parser quotes what it did not expect: not sent back whole.
    let long = format!(r#"{{"availability": "away", "{}": 1}}"#, "k".repeat(30_000)).leak();
    let (got, err) = send_raw(&ann, reqwest::Method::POST, availability, json, long).await;
    assert_eq!((got, err["error"]["code"].as_str()), (422, Some("bad_json")), "{err}");
    assert!(err.to_string().len() < 1_000, "the error quotes the body whole: {} bytes", err.to_string().len());
    assert_eq!(ann.get(&format!("/api/questions/{question}")).await.1, before, "nothing changed");
}

#[tokio::test]
async fn an_empty_or_unknown_list_filter_is_422() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    for bad in ["code=", "view=", "status=", "code=no_such_code", "view=everything", "status=open", "code=ANSWERED"] {
        let (status, err) = ann.get(&format!("/api/questions?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {err}");
        assert_eq!(err["error"]["code"], "invalid", "{bad}");
    }
    for good in ["", "code=answered", "view=all", "status=new", "q=", "library="] {
        assert_eq!(ann.get(&format!("/api/questions?{good}")).await.0, 200, "{good}");
    }
}

#[tokio::test]
async fn signing_out_without_a_sign_in_is_401() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let res = http.post(app.url("/api/logout")).send().await.unwrap();
    assert_eq!(res.status(), 401, "no cookie");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");

    let ann = app.staff("ann").await;
    assert_eq!(ann.post("/api/logout", json!(null)).await.0, 200);
    assert_eq!(ann.get("/api/me").await.0, 401);
    // The cookie the browser still holds (reqwest dropped it; send it by hand).
    let res = http.post(app.url("/api/logout")).header("cookie", &ann.cookie).send().await.unwrap();
    assert_eq!(res.status(), 401, "a cookie that signs nobody in");
    assert!(res.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "and it is cleared");
}

#[tokio::test]
async fn a_refused_field_of_the_start_form_is_named_in_the_error_and_nothing_is_started() {
    let app = spawn_app_with(|c| c.limits.max_message_chars = 4000).await;
    // The entry point says how long a question may be, for the form's count.
    let status: serde_json::Value =
        reqwest::get(app.url("/api/libraries/riverside-main/status")).await.unwrap().json().await.unwrap();
    assert_eq!(status["max_message_chars"], 4000, "{status}");
    let start = |form: serde_json::Value| {
        let url = app.url("/api/libraries/riverside-main/chats");
        async move {
            let r = reqwest::Client::new().post(url).json(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let long = "q".repeat(4001);
    for (form, field, why) in [
        (json!({"question": "Maps?", "email": "pat@example"}), "email", "invalid email: not an e-mail address"),
        (json!({"question": " \u{200B} "}), "question", "invalid question: type your question"),
        (
            json!({"question": long}),
            "question",
            "invalid question: it is 4001 characters long, and a question may have 4000: shorten it",
        ),
        (json!({"question": "Maps?", "name": "n".repeat(101)}), "name", "invalid name: at most 100 characters"),
    ] {
        let (status, body) = start(form).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"], json!({"code": "invalid", "message": why, "field": field}), "{body}");
    }
    let ann = app.staff("ann").await;
    let (_, queue) = ann.get("/api/queue").await;
    assert_eq!(queue.as_array().map(Vec::len), Some(0), "nothing started: {queue}");
    // Other errors name no field.
    let (status, body) = ann.get("/api/questions/999999").await;
    assert_eq!((status, body["error"].get("field")), (404, None), "{body}");
}

/// A staff member's display name that would read as a colleague's is
/// refused (what shows as nothing, a word mixing alphabets) or made plain
/// (runs of spaces), and one called alike as a reader tells names apart
/// (punctuation and accents aside) is taken: nothing is changed by a
/// refusal.
#[tokio::test]
async fn a_display_name_that_reads_as_a_colleagues_is_refused_and_spaces_are_made_plain() {
    let app = spawn_app().await;
    let carla = app.staff("carla").await;
    let ann = app.staff("ann").await;
    let path = format!("/api/staff/{}", ann.id);
    for (name, status) in
        [("Ben\u{200B}Booker", 422), ("B\u{0435}n Booker", 422), ("Ben  Booker", 409), ("BEN BOOKER", 409)]
            .into_iter()
            // Punctuation and accents are missed at a glance too.
            .chain([("Ben Booker.", 409), ("Ben-Booker", 409), ("Bén Böoker", 409), ("Erin Index.", 409)])
    {
        let (got, body) = carla.post(&path, json!({"display_name": name})).await;
        assert_eq!(got, status, "{name:?}: {body}");
    }
    let (_, me) = ann.get("/api/me").await;
    assert_eq!(me["display_name"], "Ann Archer", "unchanged");
    let (status, body) = carla.post(&path, json!({"display_name": "  Ann   Archer-Ames "})).await;
    assert_eq!(status, 200, "{body}");
    let (_, people) = carla.get("/api/staff").await;
    let renamed = people.as_array().unwrap().iter().find(|p| p["id"] == ann.id).unwrap().clone();
    assert_eq!(renamed["display_name"], "Ann Archer-Ames", "{renamed}");
}

/// A setting whose `null` clears it (a retention period: personal data
/// kept for good; a closing notice: the chat open; a reply address) is not
/// cleared by a body that leaves it out: `422 bad_json`, and nothing
/// changes (an operator's `{"transcripts": "delete"}` turned a library's
/// retention off).
#[tokio::test]
async fn a_body_leaving_out_a_setting_whose_null_clears_it_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let carla = app.staff("carla").await;
    let settings = [
        ("retention", json!({"days": 30, "transcripts": "mask"}), json!({"transcripts": "delete"})),
        ("closing", json!({"notice": "Closed until Monday"}), json!({})),
        ("reply-to", json!({"reply_to": "desk@riverside.example.org"}), json!({})),
    ];
    for (setting, set, partial) in settings {
        let url = format!("/api/libraries/riverside-main/{setting}");
        let (status, body) = carla.put(&url, set.clone()).await;
        assert_eq!(status, 200, "{setting}: {body}");
        let (_, before) = carla.get(&url).await;
        let (status, body) = carla.put(&url, partial).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("bad_json")), "{setting}: {body}");
        assert_eq!(carla.get(&url).await.1, before, "{setting}: unchanged");
    }
    // An explicit null still clears; what transcripts become, left out,
    // stays as it was (a library that chose to delete them).
    let url = "/api/libraries/riverside-main/retention";
    assert_eq!(carla.put(url, json!({"days": 30, "transcripts": "delete"})).await.0, 200);
    let (status, body) = carla.put(url, json!({"days": 60})).await;
    assert_eq!((status, body["transcripts"].as_str()), (200, Some("delete")), "{body}");
    assert_eq!(carla.get(url).await.1, json!({"days": 60, "transcripts": "delete"}));
    let (status, body) = carla.put(url, json!({"days": null})).await;
    assert_eq!((status, &body["days"]), (200, &serde_json::Value::Null), "{body}");
}

/// One request on a kept-alive connection: its status and headers
/// (lower-cased names), the body read to its `Content-Length`.
async fn exchange(conn: &mut tokio::net::TcpStream, request: &str) -> (u16, Vec<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the connection closed without an answer: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    while got.len() < head_end + length {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the body was cut short");
        got.extend_from_slice(&buf[..n]);
    }
    (status, headers)
}

/// An answer given before the request's body was read to its end (a path
/// that does not parse, a sign-in missing, a route that takes no body)
/// says `Connection: close`: hyper closes such a connection rather than read
/// the rest, and a keep-alive client that was not told sent its next
/// request into it, which failed with no answer. An answer that read its
/// body keeps the connection, and the next request on it is answered.
#[tokio::test]
async fn an_answer_that_left_the_body_unread_says_the_connection_closes() {
    let app = crate::helpers::spawn_app().await;
    let host = app.addr;
    let body = format!("{{\"a\":\"{}\"}}", "x".repeat(90_000));
    let unread = [
        ("GET", "/api/sessions/abc"),
        ("POST", "/api/im/1e3/read"),
        ("GET", "/api/me"),
        ("POST", "/api/libraries/riverside-main/chats/nowhere"),
    ];
    for (method, path) in unread {
        for body in [body.as_str(), "{}"] {
            let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let (status, headers) = exchange(&mut conn, &request).await;
            let close = headers.iter().any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
            assert!(close, "{method} {path} ({} bytes) → {status}, headers {headers:?}", body.len());
        }
    }
    // Read to its end: the connection is kept, and serves the next request.
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let login = r#"{"username":"ann","password":"refdesk-demo"}"#;
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{login}",
        login.len()
    );
    let (status, headers) = exchange(&mut conn, &request).await;
    assert_eq!(status, 200, "{headers:?}");
    assert!(!headers.iter().any(|(k, _)| k == "connection"), "{headers:?}");
    let (status, _) = exchange(&mut conn, &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n")).await;
    assert_eq!(status, 200);
}
