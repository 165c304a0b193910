//! Patron privacy (issue 15): a library's retention period on a manual
//! clock, erasing one patron's data on request, and logs that never carry
//! patron data. "Nowhere" is checked in the whole database (a dump of it),
//! in the API and in search, on whichever backend the suite runs on.

use crate::helpers::{spawn_app_with_manual_clock, Patron, TestApp};
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

/// Every row of the database as text: `sqlite3 .dump`, or `pg_dump`.
fn dump(app: &TestApp) -> String {
    let out = match std::fs::read_to_string(app.dir.path().join("database_url")) {
        Ok(url) => std::process::Command::new("pg_dump").args(["--data-only", url.trim()]).output(),
        Err(_) => {
            std::process::Command::new("sqlite3").arg(app.dir.path().join("refdesk.sqlite3")).arg(".dump").output()
        }
    }
    .expect("the database's own dump tool runs (scripts/test.sh installs it)");
    assert!(out.status.success(), "dump failed: {}", String::from_utf8_lossy(&out.stderr));
    // pg_dump marks each dump with a random token of its own.
    let text: String = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(text.contains("riverside-main"), "the dump holds the data");
    text
}

/// On SQLite, the bytes of a backup of the live database (`refdesk
/// backup`: a copy of its pages, free space and all), in lower case: what an
/// erasure left in free pages or freed space would be in it.
fn backup_bytes(app: &TestApp) -> Option<Vec<u8>> {
    if app.dir.path().join("database_url").exists() {
        return None;
    }
    let to = app.dir.path().join("copy.sqlite3");
    let _ = std::fs::remove_file(&to);
    refdesk_store::sqlite::backup::backup(&app.dir.path().join("refdesk.sqlite3"), &to, false).unwrap();
    Some(std::fs::read(&to).unwrap().to_ascii_lowercase())
}

/// A dump without the rows of staff, their sign-ins and the networks they
/// signed in from: the background
/// round may sign off a librarian who left (and so change those rows) at
/// any moment, and no privacy operation touches them.
fn patron_data(dump: &str) -> String {
    let mut skipping = false;
    let mut out = String::new();
    for line in dump.lines() {
        // PostgreSQL: a table's rows are one `COPY … FROM stdin;` block.
        let staff_table = ["COPY public.staff ", "COPY public.logins ", "COPY public.sign_in_networks "];
        if staff_table.iter().any(|p| line.starts_with(p)) {
            skipping = true;
        }
        let staff_row =
            ["INSERT INTO staff ", "INSERT INTO logins ", "INSERT INTO sign_in_networks ", "INSERT INTO \"staff\""]
                .iter()
                .chain(&["INSERT INTO \"logins\"", "INSERT INTO \"sign_in_networks\""])
                .any(|p| line.starts_with(p));
        if !skipping && !staff_row {
            out.push_str(line);
            out.push('\n');
        }
        if skipping && line == "\\." {
            skipping = false;
        }
    }
    out
}

/// Who a chat's patron is, in every form the test looks for.
struct Person {
    name: &'static str,
    email: String,
    phone: &'static str,
}

/// A chat in which the patron gives their name, address and phone, asks
/// for the transcript, rates it with a comment; ann answers and ends it.
async fn personal_chat(app: &TestApp, library: &str, who: &Person) -> (Patron, i64) {
    let question = format!("I am {}, please mail {} or call {}", who.name, who.email, who.phone);
    let form = json!({"name": who.name, "email": who.email, "question": question});
    let patron = app.start_chat_with(library, form).await;
    let staff = app.staff(if library == "riverside-main" { "ann" } else { "ben" }).await;
    app.clock().advance(45_000);
    assert_eq!(staff.accept(patron.session).await.0, 200);
    let mut pat = patron.socket().await;
    pat.resume(None, 0).await;
    pat.say(None, "message", &format!("My e-mail is {} and I'm {}", who.email.to_uppercase(), who.name), "p1").await;
    let say = json!({"kind": "message", "body": format!("Thanks {}, I will write to {}", who.name, who.email)});
    assert_eq!(staff.post(&format!("/api/sessions/{}/messages", patron.session), say).await.0, 200);
    let note = json!({"kind": "note", "body": format!("{} called from {}", who.name, who.phone)});
    assert_eq!(staff.post(&format!("/api/sessions/{}/messages", patron.session), note).await.0, 200);
    assert_eq!(patron.post("/api/chat/transcript", json!({"email": who.email})).await.0, 200);
    app.clock().advance(300_000);
    assert_eq!(
        staff
            .post(&format!("/api/sessions/{}/code", patron.session), json!({"code": "answered", "read_scale": 2}))
            .await
            .0,
        200
    );
    assert_eq!(patron.post("/api/chat/end", json!(null)).await.0, 200);
    let comment = json!({"rating": 5, "comment": format!("{} here: great, reach me at {}", who.name, who.email)});
    assert_eq!(patron.post("/api/chat/rating", comment).await.0, 200);
    let question = staff.question_of(patron.session).await["id"].as_i64().unwrap();
    (patron, question)
}

fn person(name: &'static str, tag: &str) -> Person {
    Person { name, email: format!("{tag}.{}@example.org", std::process::id()), phone: "555-867-5309" }
}

async fn report(app: &TestApp, name: &str) -> Value {
    let erin = app.staff("erin").await;
    let (status, table) = erin.get(&format!("/api/reports/{name}?from=2020-01-01&to=2022-12-31")).await;
    assert_eq!(status, 200, "{table}");
    table
}

#[tokio::test]
async fn after_the_retention_period_no_name_address_or_network_is_left_anywhere_and_reports_hold() {
    let app = spawn_app_with_manual_clock().await;
    // 2021-03-01, so that the reports' range is fixed.
    let start = 1_614_556_800_000;
    app.clock().advance(start - app.clock().now());
    let carla = app.staff("carla").await;
    let keep = json!({"days": 30, "transcripts": "mask"});
    let ann = app.staff("ann").await;
    assert_eq!(ann.put("/api/libraries/riverside-main/retention", keep.clone()).await.0, 403);
    // Whatever she sends: she may not set it at all (not told her days are wrong).
    assert_eq!(ann.put("/api/libraries/riverside-main/retention", json!({"days": -5})).await.0, 403);
    for days in [json!(0), json!(-5), json!(3651), json!(4_294_967_297_i64)] {
        let (status, why) = carla.put("/api/libraries/riverside-main/retention", json!({"days": days})).await;
        let message = why["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert_eq!(status, 422, "{days}");
        assert!(message.contains("1 to 3650 days"), "{days}: the rule's words, not a parser's: {message}");
    }
    let told = |app: &TestApp, slug: &str| {
        let url = app.url(&format!("/api/libraries/{slug}/status"));
        async move { reqwest::get(url).await.unwrap().json::<Value>().await.unwrap()["personal_data_days"].clone() }
    };
    assert_eq!(told(&app, "riverside-main").await, Value::Null, "patrons are told: kept until erased");
    assert_eq!(carla.put("/api/libraries/riverside-main/retention", keep.clone()).await.0, 200);
    assert_eq!(carla.get("/api/libraries/riverside-main/retention").await.1, keep);
    assert_eq!(told(&app, "riverside-main").await, json!(30), "patrons are told the period at once");
    assert_eq!(told(&app, "lakeside-public").await, Value::Null, "each library its own");
    let erin = app.staff("erin").await;
    let delete = json!({"days": 30, "transcripts": "delete"});
    assert_eq!(erin.put("/api/libraries/lakeside-public/retention", delete).await.0, 200);

    let masked = person("Zephyrine Quillfeather", "zephyrine");
    let deleted = person("Bartholomew Ravensworth", "bartholomew");
    let (_, q_masked) = personal_chat(&app, "riverside-main", &masked).await;
    let (p_deleted, _) = personal_chat(&app, "lakeside-public", &deleted).await;
    let net = refdesk_app::auth::digest("refdesk-net:127.0.0.1");
    let reports = ["by-day", "by-library", "service", "ratings", "read-scale", "by-code", "coverage"];
    let mut before = Vec::new();
    for r in reports {
        before.push(report(&app, r).await);
    }

    // Before the period: nothing changes.
    app.clock().advance(29 * DAY);
    // What a shorter period would erase now is counted first, erasing nothing
    // (the libraries page asks with it before a period is shortened).
    let (carla, ann) = (app.staff("carla").await, app.staff("ann").await);
    let due = |days: i64| format!("/api/libraries/riverside-main/retention/due?days={days}");
    assert_eq!(carla.get(&due(30)).await.1, json!({"days": 30, "chats": 0, "more": false}));
    assert_eq!(carla.get(&due(28)).await.1, json!({"days": 28, "chats": 1, "more": false}));
    assert_eq!(ann.get(&due(28)).await.0, 403, "admins only");
    assert_eq!(
        carla.get("/api/libraries/lakeside-public/retention/due?days=1").await.0,
        403,
        "their own libraries only"
    );
    for bad in ["0", "3651", "-5", "x"] {
        let (status, why) = carla.get(&format!("/api/libraries/riverside-main/retention/due?days={bad}")).await;
        assert_eq!(status, if bad == "x" { 400 } else { 422 }, "{bad}: {why}");
    }
    assert_eq!(app.state.app.apply_retention(app.clock().now()).await.unwrap(), 0);
    let all = dump(&app);
    for needle in [masked.name, masked.email.as_str(), deleted.name, deleted.email.as_str(), net.as_str()] {
        assert!(all.contains(needle), "kept until the period ends: {needle}");
    }

    // After it: erased, by itself in the background round too.
    app.clock().advance(2 * DAY);
    app.eventually("the background round applies the retention periods", || async {
        !dump(&app).contains(masked.name)
    })
    .await;
    assert_eq!(app.state.app.apply_retention(app.clock().now()).await.unwrap(), 0, "nothing left to erase");
    // A month on, sign-ins have run out.
    let (carla, erin) = (app.staff("carla").await, app.staff("erin").await);
    let all = dump(&app);
    for needle in [
        masked.name,
        "Zephyrine",
        "Quillfeather",
        &masked.email,
        "ZEPHYRINE.",
        masked.phone,
        deleted.name,
        &deleted.email,
        &net,
    ] {
        assert!(!all.to_lowercase().contains(&needle.to_lowercase()), "{needle:?} is still in the database");
    }
    if let Some(copy) = backup_bytes(&app) {
        for needle in [masked.name, &masked.email, deleted.name, &deleted.email] {
            let bytes = needle.to_lowercase().into_bytes();
            assert!(!copy.windows(bytes.len()).any(|w| w == bytes), "a backup taken now still holds {needle:?}");
        }
    }
    let (_, page) = carla.get(&format!("/api/questions/{q_masked}")).await;
    let text = page.to_string();
    assert!(!text.contains("Quillfeather") && !text.contains(&masked.email), "{text}");
    assert_eq!(page["patron_email"], Value::Null);
    // The page says it was the retention period, and when.
    let log_at = erin.get("/api/privacy/log").await.1[0]["at"].clone();
    assert_eq!(page["erasure"], json!({"at": log_at, "action": "retention", "transcripts": "mask", "by_name": null}));
    assert!(text.contains("[email]") && text.contains("[name]") && text.contains("[phone]"), "masked, kept: {text}");
    assert!(page["transcript"].as_array().unwrap().len() > 3, "the masked transcript is kept");
    let (_, found) = carla.get("/api/questions?q=Quillfeather").await;
    assert_eq!(found, json!([]), "search finds nothing of the patron");
    let lines = app.stored(p_deleted.session).await;
    assert_eq!(lines.len(), 2, "a deleted transcript keeps its question and its last line's number: {lines:?}");
    assert_eq!(lines[1].body, refdesk_domain::privacy::DELETED, "and nothing the last line said");
    for (r, was) in reports.iter().zip(&before) {
        assert_eq!(&report(&app, r).await, was, "report {r} gives the same figures");
    }
    let (_, log) = erin.get("/api/privacy/log").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.iter().all(|e| e["action"] == "retention" && e["sessions"] == 1 && e["by"].is_null()));
    let (_, carlas) = carla.get("/api/privacy/log").await;
    assert_eq!(carlas.as_array().unwrap().len(), 1, "an admin sees their libraries' entries only");
}

#[tokio::test]
async fn an_admin_finds_a_patrons_chats_by_address_and_erases_them_all_or_nothing() {
    let app = spawn_app_with_manual_clock().await;
    let who = person("Philippa Oakenshield", "philippa");
    let (first, q1) = personal_chat(&app, "riverside-main", &who).await;
    let (_, _) = personal_chat(&app, "lakeside-public", &who).await;
    // A chat still going on, the address in another letter case.
    let live = app
        .start_chat_with(
            "riverside-main",
            json!({"name": who.name, "email": who.email.to_uppercase(), "question": "Still there?"}),
        )
        .await;
    let carla = app.staff("carla").await;
    let erin = app.staff("erin").await;
    let find = |email: &str| ("/api/privacy/patron", json!({ "email": email }));
    let (path, body) = find(&who.email);
    assert_eq!(app.staff("ann").await.post(path, body.clone()).await.0, 403, "librarians do not erase");
    let (status, found) = carla.post(path, body.clone()).await;
    assert_eq!(status, 200);
    let found = found.as_array().unwrap().clone();
    assert_eq!(found.len(), 2, "carla's library only: {found:?}");
    assert!(found.iter().all(|f| f["patron_name"] == who.name && f["question_text"].is_string()), "{found:?}");
    assert_eq!(
        erin.post(path, body.clone()).await.1.as_array().unwrap().len(),
        3,
        "the cooperative admin sees all three"
    );
    let ids: Vec<i64> = found.iter().map(|f| f["session"].as_i64().unwrap()).collect();
    let before = patron_data(&dump(&app));
    // The patrons' rows are there; the staff's (their password hashes) are not.
    assert!(before.contains("Philippa") && !before.contains("$argon2id$"), "{before}");
    let (status, err) = carla.post("/api/privacy/erase", json!({"email": who.email, "sessions": ids})).await;
    assert_eq!(status, 409, "a chat still going on: {err}");
    assert_eq!(patron_data(&dump(&app)), before, "all or nothing");
    assert!(!app.dir.path().join("erasures.jsonl").exists(), "nor is a refused erasure noted to be made again");
    let (_, theirs) = erin.post(path, body.clone()).await;
    let lakeside = theirs.as_array().unwrap().iter().find(|f| !ids.contains(&f["session"].as_i64().unwrap())).unwrap()
        ["session"]
        .as_i64()
        .unwrap();
    let (status, _) = carla.post("/api/privacy/erase", json!({"email": who.email, "sessions": [lakeside]})).await;
    assert_eq!(status, 422, "not carla's library");
    assert_eq!(live.post("/api/chat/end", json!(null)).await.0, 200);
    assert_eq!(carla.get(&format!("/api/questions/{q1}")).await.1["question"]["erased"], false);
    // The erasure journal cannot be written (a folder in its place):
    // nothing is erased, and the admin gets an error (the log says why).
    let journal = app.dir.path().join("erasures.jsonl");
    std::fs::create_dir(&journal).unwrap();
    let (status, err) = carla.post("/api/privacy/erase", json!({"email": who.email, "sessions": ids})).await;
    assert_eq!(status, 500, "{err}");
    assert_eq!(err["error"]["code"], "internal", "{err}");
    assert_eq!(carla.post(path, body.clone()).await.1.as_array().unwrap().len(), 2, "nothing erased");
    std::fs::remove_dir(&journal).unwrap();
    // Two sockets of the patron's, opened before: one following the chat,
    // one that has not asked for it yet.
    let mut following = first.socket().await;
    following.resume(None, 0).await;
    let mut idle = first.socket().await;
    let (status, erased) = carla.post("/api/privacy/erase", json!({"email": who.email, "sessions": ids})).await;
    assert_eq!((status, erased), (200, json!({"erased": 2})));
    following.until(|f| f["type"] == "erased").await;
    assert!(following.closed_within(std::time::Duration::from_secs(5)).await, "the patron's socket closes once told");
    idle.send(json!({"type": "resume", "after": 0})).await;
    let read = idle.until(|f| f["type"] == "erased" || f["type"] == "event" || f["type"] == "synced").await;
    assert_eq!(read.last().unwrap()["type"], "erased", "nothing of the erased chat is replayed: {read:?}");
    assert!(idle.closed_within(std::time::Duration::from_secs(5)).await, "and that socket closes too");
    let noted = std::fs::read_to_string(&journal).unwrap();
    assert!(ids.iter().all(|id| noted.contains(&format!("[{id},"))), "both noted first: {noted}");
    assert!(!noted.contains(&who.email) && !noted.contains("Philippa"), "nothing of the patron's: {noted}");
    assert_eq!(carla.post(path, body.clone()).await.1, json!([]));
    // A page that kept the chat's token (a shared computer) reads nothing.
    assert_eq!(first.get("/api/chat").await.0, 401, "the erased chat's token opens nothing");
    let (_, left) = erin.post(path, body.clone()).await;
    assert_eq!(left.as_array().unwrap().len(), 1, "the other library's chat is untouched");
    let (_, page) = carla.get(&format!("/api/questions/{q1}")).await;
    assert!(!page.to_string().contains("Oakenshield") && !page.to_string().contains(&who.email));
    assert_eq!(page["question"]["erased"], true, "a page that shows it knows to read it again");
    let (_, log) = carla.get("/api/privacy/log").await;
    assert_eq!(log[0]["action"], "erase");
    assert_eq!(log[0]["by"], "Carla Catalog");
    assert_eq!(log[0]["sessions"], 2);
    assert!(!log.to_string().contains(&who.email), "the audit list never holds the address");
    let (status, _) = carla.post("/api/privacy/erase", json!({"email": "not-an-address", "sessions": ids})).await;
    assert_eq!(status, 422);
    let (path, body) = find("nobody");
    assert_eq!(carla.post(path, body).await.0, 422, "not an address");
    // A control character (PostgreSQL refuses a NUL in text: a 500 before).
    for bad in ["a\u{0}@b.c", "a\u{7}b@c.d"] {
        let (path, body) = find(bad);
        assert_eq!(carla.post(path, body).await.0, 422, "{bad:?}");
        let erase = json!({"email": bad, "sessions": ids});
        assert_eq!(carla.post("/api/privacy/erase", erase).await.0, 422, "{bad:?}");
    }
}

/// A patron who gave no e-mail address asks to be forgotten: the library
/// finds their question and erases its chat by its number (erasing went by
/// address alone, so such a patron waited for the retention period).
#[tokio::test]
async fn an_admin_erases_a_chat_by_its_number_when_its_patron_gave_no_address() {
    let app = spawn_app_with_manual_clock().await;
    let form = json!({"name": "Gwendolyn Quillfeather", "question": "I am Gwendolyn Quillfeather: any maps of 1850?"});
    let patron = app.start_chat_with("riverside-main", form).await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let body = json!({"kind": "message", "body": "Gwendolyn, yes: the 1851 survey."});
    assert_eq!(ann.post(&format!("/api/sessions/{}/messages", patron.session), body).await.0, 200);
    let elsewhere = app.start_chat_with("lakeside-public", json!({"name": "Other", "question": "Hours?"})).await;
    let (carla, erin) = (app.staff("carla").await, app.staff("erin").await);
    let erase = |sessions: Value| json!({ "sessions": sessions });
    assert_eq!(ann.post("/api/privacy/erase", erase(json!([patron.session]))).await.0, 403, "librarians do not erase");
    let (status, err) = carla.post("/api/privacy/erase", erase(json!([patron.session]))).await;
    assert_eq!(status, 409, "still going on: {err}");
    assert_eq!(ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
    for other in [json!([elsewhere.session]), json!([patron.session, elsewhere.session]), json!([999_999])] {
        let (status, err) = carla.post("/api/privacy/erase", erase(other.clone())).await;
        assert_eq!((status, err["error"]["field"].as_str()), (422, Some("sessions")), "not Carla's library: {other}");
    }
    assert!(patron_data(&dump(&app)).contains("Quillfeather"), "nothing erased yet");
    let id = carla.question_of(patron.session).await["id"].as_i64().unwrap();
    assert_eq!(carla.get(&format!("/api/questions/{id}")).await.1["erasure"], Value::Null, "not erased");

    app.clock().advance(60_000);
    let (status, done) = carla.post("/api/privacy/erase", erase(json!([patron.session]))).await;
    assert_eq!((status, done), (200, json!({"erased": 1})));
    // Its page says who erased it, and when (the timeline did not).
    let (_, page) = carla.get(&format!("/api/questions/{id}")).await;
    let at = app.clock().now();
    assert_eq!(
        page["erasure"],
        json!({"at": at, "action": "erase", "transcripts": "mask", "by_name": "Carla Catalog"})
    );
    let (_, page) = carla.get("/api/questions?q=Quillfeather").await;
    assert_eq!(page, json!([]), "the name is masked in the question and the lines");
    let (_, list) = erin.get("/api/questions").await;
    let q = list.as_array().unwrap().iter().find(|q| q["session"] == patron.session).unwrap().clone();
    assert_eq!(q["erased"], true);
    assert!(!q.to_string().contains("Quillfeather") && !q.to_string().contains("Gwendolyn"), "{q}");
    let (_, log) = carla.get("/api/privacy/log").await;
    assert_eq!((&log[0]["action"], &log[0]["sessions"]), (&json!("erase"), &json!(1)));
    let (_, other) = erin.get(&format!("/api/sessions/{}", elsewhere.session)).await;
    assert_eq!(other["session"]["patron_name"], "Other", "the other library's chat is untouched: {other}");
}

#[tokio::test]
async fn logs_never_carry_patron_names_addresses_message_text_or_tokens() {
    let app = spawn_app_with_manual_clock().await;
    let who = person("Isadora Fenwickshire", "isadora");
    let (patron, _) = personal_chat(&app, "riverside-main", &who).await;
    let logs = crate::helpers::captured_logs();
    assert!(logs.contains("chat"), "the logs are captured at debug level: {} bytes", logs.len());
    for needle in ["Fenwickshire", &who.email, "please mail", "I will write to", &patron.token, "great, reach me"] {
        assert!(!logs.contains(needle), "the logs carry {needle:?}");
    }
}

#[tokio::test]
async fn no_cache_keeps_what_the_api_answers_and_signing_out_clears_the_browsers() {
    // A shared computer at the desk: what its browser cached of a patron's
    // question must not outlive the librarian's sign-in (nor an erasure).
    let app = crate::helpers::spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "My card number is 1234").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    for path in [format!("/api/questions/{q}"), "/api/questions/export".into(), "/api/libraries".into()] {
        let res = ann.http.get(format!("{}{path}", ann.base())).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
    }
    let res = ann.http.post(format!("{}/api/logout", ann.base())).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["clear-site-data"], "\"cache\"");
}

/// An erasure reaches the pages open on the chat: the desks following it
/// and the patron's own page are told (`erased`) and stop following it; a
/// desk following another chat is told nothing. The same for the retention
/// period's erasures.
#[tokio::test]
async fn pages_open_on_a_chat_are_told_it_was_erased_and_stop_following_it() {
    // The sign-ins outlast the two days the retention period takes below:
    // a desk whose sign-in lapsed is closed at its next check (a ping), which
    // came before the `erased` frame in a run of the suite on PostgreSQL.
    let app = crate::helpers::spawn_app_with_manual_clock_and(|c| c.limits.login_hours = 24 * 7).await;
    let who = person("Evangeline Thistlewood", "evangeline");
    let (patron, _) = personal_chat(&app, "riverside-main", &who).await;
    let other = person("Montgomery Brackenridge", "montgomery");
    let (kept, _) = personal_chat(&app, "riverside-main", &other).await;
    let ann = app.staff("ann").await;
    let mut desk = ann.socket().await;
    let lines = desk.resume(Some(patron.session), 0).await;
    assert!(lines.iter().any(|l| l["body"].as_str().unwrap_or("").contains("Thistlewood")), "{lines:?}");
    let mut elsewhere = ann.socket().await;
    elsewhere.resume(Some(kept.session), 0).await;
    let mut own = patron.socket().await;
    own.resume(None, 0).await;

    let carla = app.staff("carla").await;
    let body = json!({"email": who.email, "sessions": [patron.session]});
    assert_eq!(carla.post("/api/privacy/erase", body).await.1, json!({"erased": 1}));
    let erased = json!({"type": "erased", "session": patron.session});
    assert_eq!(desk.until(|f| f["type"] == "erased").await.last(), Some(&erased));
    assert_eq!(own.until(|f| f["type"] == "erased").await.last(), Some(&erased));
    elsewhere.send(json!({"type": "ping"})).await;
    let frames = elsewhere.until(|f| f["type"] == "pong").await;
    assert!(frames.iter().all(|f| f["type"] != "erased"), "only pages on the chat are told: {frames:?}");

    // No longer followed: a line written to it now is not passed on; a
    // resume reads what is left.
    let code = json!({"code": "answered", "read_scale": 3});
    assert_eq!(ann.post(&format!("/api/sessions/{}/code", patron.session), code).await.0, 200);
    desk.send(json!({"type": "ping"})).await;
    let frames = desk.until(|f| f["type"] == "pong").await;
    assert!(frames.iter().all(|f| f["type"] != "event"), "{frames:?}");
    let left = desk.resume(Some(patron.session), 0).await;
    assert!(!left.is_empty() && !format!("{left:?}").contains("Thistlewood"), "{left:?}");
    let again = desk.resume(Some(patron.session), 1).await;
    assert!(again.len() < left.len(), "resumed after a line it got since: no `erased` again");
    // A page that was reconnecting when it went out resumes after the
    // lines it had from before: it is told then, and follows nothing.
    let mut reconnected = ann.socket().await;
    let had = lines.iter().filter_map(|l| l["seq"].as_u64()).max().unwrap();
    reconnected.send(json!({"type": "resume", "session": patron.session, "after": had})).await;
    let told = reconnected.until(|f| ["erased", "synced", "error"].contains(&f["type"].as_str().unwrap_or(""))).await;
    assert_eq!(told.last(), Some(&json!({"type": "erased", "session": patron.session})), "{told:?}");

    // The retention period's erasure is told too.
    assert_eq!(carla.put("/api/libraries/riverside-main/retention", json!({"days": 1})).await.0, 200);
    app.clock().advance(2 * DAY);
    // (the background round may have applied it first)
    app.state.app.apply_retention(app.clock().now()).await.unwrap();
    let erased = json!({"type": "erased", "session": kept.session});
    assert_eq!(elsewhere.until(|f| f["type"] == "erased").await.last(), Some(&erased));
}
