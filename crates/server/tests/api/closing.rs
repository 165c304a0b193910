//! A library's admins close its chat to new patrons with a notice (a
//! holiday, a library leaving the service), and open it again: the status
//! says the notice, new chats and offline questions are refused with it,
//! and what was going on goes on.

use crate::helpers::spawn_app;
use serde_json::{json, Value};

async fn patron_post(app: &crate::helpers::TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new().post(app.url(path)).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn status(app: &crate::helpers::TestApp, slug: &str) -> Value {
    reqwest::get(app.url(&format!("/api/libraries/{slug}/status"))).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_librarys_admins_close_its_chat_with_a_notice_and_open_it_again() {
    let app = spawn_app().await;
    let (ann, carla) = (app.staff("ann").await, app.staff("carla").await);
    let path = "/api/libraries/riverside-main/closing";
    let waiting = app.start_chat("riverside-main", "Is the map room open on Saturday?").await;
    assert_eq!(status(&app, "riverside-main").await["closed_notice"], Value::Null);
    assert_eq!(carla.get(path).await, (200, json!({"notice": null})));

    // Not a librarian's to do, and a notice must be one line of 500 at most.
    assert_eq!(ann.put(path, json!({"notice": "Closed."})).await.0, 403);
    assert_eq!(ann.get(path).await.0, 403);
    for bad in ["two\nlines", &"x".repeat(501), "turned \u{202E}around"] {
        let (code, err) = carla.put(path, json!({ "notice": bad })).await;
        assert_eq!((code, err["error"]["field"].as_str()), (422, Some("notice")), "{bad:?}: {err}");
    }
    assert_eq!(status(&app, "riverside-main").await["closed_notice"], Value::Null, "nothing changed");

    let notice = "Closed for the holidays until 2 January. Call us at 555-0100.";
    let (code, done) = carla.put(path, json!({ "notice": format!("  {notice} ") })).await;
    assert_eq!((code, done), (200, json!({ "notice": notice })), "trimmed");
    assert_eq!(status(&app, "riverside-main").await["closed_notice"], notice);
    let start = json!({"name": "Sam", "question": "Can I renew a book?"});
    let (code, err) = patron_post(&app, "/api/libraries/riverside-main/chats", start.clone()).await;
    assert_eq!((code, &err["error"]["code"], &err["error"]["message"]), (409, &json!("closed"), &json!(notice)));
    let ask = json!({"email": "sam@example.org", "question": "Can I renew a book?"});
    let (code, err) = patron_post(&app, "/api/libraries/riverside-main/questions", ask.clone()).await;
    assert_eq!((code, err["error"]["code"].as_str()), (409, Some("closed")), "nor the question form: {err}");

    // The patron already waiting is served; other libraries are open.
    assert_eq!(ann.accept(waiting.session).await.0, 200);
    assert_eq!(status(&app, "lakeside-public").await["closed_notice"], Value::Null);
    assert_eq!(patron_post(&app, "/api/libraries/lakeside-public/chats", start.clone()).await.0, 201);

    // Open again: the notice goes, and patrons may start chats.
    assert_eq!(carla.put(path, json!({"notice": ""})).await, (200, json!({"notice": null})), "blank is open");
    assert_eq!(status(&app, "riverside-main").await["closed_notice"], Value::Null);
    assert_eq!(patron_post(&app, "/api/libraries/riverside-main/chats", start).await.0, 201);
    assert_eq!(patron_post(&app, "/api/libraries/riverside-main/questions", ask).await.0, 201);

    // Both changes are in the admin log, for the library's admins.
    let (_, log) = carla.get("/api/admin-log").await;
    let said: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "closing")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        said,
        vec!["the chat is open again".to_owned(), format!("the chat is closed to new patrons, who read: {notice}")]
    );
}

/// A library's admins set how its widget button looks on their site, once,
/// and every widget reads it with the library's status (the look was only
/// written into the snippet: changing a colour meant editing every page of
/// the library's site, and the admin page forgot it on the next visit).
#[tokio::test]
async fn a_librarys_admins_set_its_widget_buttons_look_which_the_status_carries() {
    let app = spawn_app().await;
    let (ann, carla) = (app.staff("ann").await, app.staff("carla").await);
    let path = "/api/libraries/riverside-main/widget";
    let default =
        json!({"label_online": null, "label_offline": null, "color": null, "text_color": null, "position": null});
    assert_eq!(status(&app, "riverside-main").await["widget"], default);

    let look = json!({"label_online": "  Chat with Riverside now ", "label_offline": "Leave Riverside a question",
        "color": "#7A1F1F", "text_color": "#fff", "position": "left"});
    assert_eq!(ann.put(path, look.clone()).await.0, 403, "the library's admins only");
    assert_eq!(carla.put("/api/libraries/lakeside-public/widget", look.clone()).await.0, 403, "another library");
    assert_eq!(carla.put("/api/libraries/no-such-library/widget", look.clone()).await.0, 404);
    for (field, bad) in [
        ("color", json!("red")),
        ("text_color", json!("#ffffff; background: url(//evil.example)")),
        ("position", json!("top")),
        ("label_online", json!("x".repeat(81))),
        ("label_offline", json!("two\nlines")),
    ] {
        let mut body = look.clone();
        body[field] = bad;
        let (code, err) = carla.put(path, body).await;
        assert_eq!((code, err["error"]["field"].as_str()), (422, Some(field)), "{err}");
    }
    let (code, err) = carla.put(path, json!({"colour": "#000"})).await;
    assert_eq!((code, err["error"]["code"].as_str()), (422, Some("bad_json")), "an unknown field: {err}");
    assert_eq!(status(&app, "riverside-main").await["widget"], default, "nothing changed");

    let kept = json!({"label_online": "Chat with Riverside now", "label_offline": "Leave Riverside a question",
        "color": "#7a1f1f", "text_color": "#fff", "position": "left"});
    assert_eq!(carla.put(path, look.clone()).await, (200, kept.clone()), "trimmed, in lower case");
    assert_eq!(status(&app, "riverside-main").await["widget"], kept, "every widget reads it");
    assert_eq!(status(&app, "lakeside-public").await["widget"], default, "Riverside's alone");
    assert_eq!(carla.put(path, look).await.0, 200, "saved again as it is");
    assert_eq!(carla.put(path, json!({})).await, (200, default.clone()), "all left out: the default");
    assert_eq!(status(&app, "riverside-main").await["widget"], default);

    // Two changes in the admin log (saving the same look again is none).
    let (_, log) = carla.get("/api/admin-log").await;
    let said: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "widget")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(
        said,
        [
            "the widget's button: the default on duty, the default off duty, colours #ffffff on #0b57d0, at the bottom right",
            "the widget's button: “Chat with Riverside now” on duty, “Leave Riverside a question” off duty, colours #fff on #7a1f1f, at the bottom left",
        ]
    );
}
