//! `/metrics` scraped during a chat and read with a real OpenMetrics parser
//! (`openmetrics-parser`, from the format's grammar): the figures move as they
//! should — messages committed, the waiting and active gauges of the
//! patron's library, the outbox while SMTP is down, HTTP requests by route
//! and status — and with `metrics_listen` set, `/metrics` is served there
//! and only there. Every request carries a request id.

use crate::helpers::{free_port, spawn_app, spawn_app_with, spawn_app_with_manual_clock_and, SmtpServer, TestApp};
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use serde_json::json;

type Scrape = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// One scrape of `url`, checked to be the OpenMetrics text format and parsed
/// by its grammar (which also requires the closing `# EOF`).
async fn scrape_url(url: &str) -> Scrape {
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = res.text().await.unwrap();
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("not valid OpenMetrics ({e:?}):\n{text}"))
}

async fn scrape(app: &TestApp) -> Scrape {
    scrape_url(&app.url("/metrics")).await
}

/// The value of the series of family `name` with these labels: a counter's
/// total, a gauge's value, a histogram's count. `None` when there is none.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = s.families.get(name)?;
    let sample = family.iter_samples().find(|x| {
        let set = x.get_labelset().unwrap();
        labels.iter().all(|(k, v)| set.get_label_value(k) == Some(*v))
    })?;
    match &sample.value {
        OpenMetricsValue::Counter(c) => Some(c.value.as_f64()),
        OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => Some(n.as_f64()),
        OpenMetricsValue::Histogram(h) => h.count.map(|n| n as f64),
        other => panic!("{name}: {other:?}"),
    }
}

fn chats(s: &Scrape, library: &str, state: &str) -> f64 {
    value(s, "refdesk_chats", &[("library", library), ("state", state)]).unwrap_or_else(|| panic!("{library} {state}"))
}

fn committed(s: &Scrape) -> f64 {
    value(s, "refdesk_messages_committed", &[]).expect("the committed count")
}

#[tokio::test]
async fn a_chat_moves_the_committed_count_the_queue_gauges_and_the_request_counts() {
    // Arrange: a node with nothing live, and its figures.
    let app = spawn_app().await;
    let before = scrape(&app).await;
    assert_eq!(chats(&before, "riverside-main", "waiting"), 0.0, "every library shows, at 0");
    for family in ["refdesk_chats", "refdesk_commit_seconds", "refdesk_outbox_unsent", "refdesk_limited"] {
        assert!(before.families.get(family).is_some_and(|f| !f.help.is_empty()), "{family} is there and described");
    }

    // Act: a patron starts a chat (its question is its first line).
    let patron = app.start_chat("riverside-main", "Where are the maps?").await;
    let waiting = scrape(&app).await;
    assert_eq!(chats(&waiting, "riverside-main", "waiting"), 1.0);
    assert_eq!(chats(&waiting, "riverside-main", "active"), 0.0);
    assert!(committed(&waiting) > committed(&before), "the question is committed");

    // A librarian accepts it: it leaves the waiting gauge for the active one.
    let ann = app.staff("ann").await;
    let (status, _) = ann.accept(patron.session).await;
    assert_eq!(status, 200);
    let accepted = scrape(&app).await;
    assert_eq!(chats(&accepted, "riverside-main", "waiting"), 0.0);
    assert_eq!(chats(&accepted, "riverside-main", "active"), 1.0);

    // A message sent raises the committed count, and its request is counted.
    let (status, _) =
        ann.post(&format!("/api/sessions/{}/messages", patron.session), json!({"body": "Second floor."})).await;
    let after = scrape(&app).await;
    assert!(committed(&after) > committed(&accepted), "the message is committed");
    let status = status.to_string();
    let route = [("route", "/api/sessions/{id}/messages"), ("method", "POST"), ("status", status.as_str())];
    assert_eq!(value(&after, "refdesk_http_requests", &route), Some(1.0), "by route and status");
    let timed = value(&after, "refdesk_http_request_seconds", &route[..2]);
    assert!(timed >= Some(1.0), "and timed: {timed:?}");
    assert!(value(&after, "refdesk_commit_seconds", &[]) > Some(0.0), "commits are timed");
    assert!(value(&after, "refdesk_commit_writes", &[]) > Some(0.0), "and their sizes noted");
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    let nope = value(&after, "refdesk_http_requests", &unmatched).unwrap_or(0.0);
    reqwest::get(app.url("/no/such/page?token=secret")).await.unwrap();
    let later = scrape(&app).await;
    assert_eq!(value(&later, "refdesk_http_requests", &unmatched), Some(nope + 1.0), "never by URL");

    // The patron's socket is counted while it is open.
    let socket = patron.socket().await;
    app.eventually("the patron's socket is counted", || async {
        value(&scrape(&app).await, "refdesk_connections", &[("kind", "patron_socket")]) == Some(1.0)
    })
    .await;
    socket.close().await;
    app.eventually("and no longer once closed", || async {
        value(&scrape(&app).await, "refdesk_connections", &[("kind", "patron_socket")]) == Some(0.0)
    })
    .await;
}

/// What an operator alerts on beside the queues: the build running, the
/// database's size, and who is on duty at each library.
#[tokio::test]
async fn the_build_the_database_size_and_the_staff_on_duty_per_library_are_figures() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let build = before.families.get("refdesk_build").expect("the build's family");
    let sample = build.iter_samples().next().expect("one sample");
    assert_eq!(sample.get_labelset().unwrap().get_label_value("version"), Some(env!("CARGO_PKG_VERSION")));
    let labels = sample.get_labelset().unwrap();
    let commit = labels.get_label_value("commit").expect("the commit");
    assert_eq!(commit, refdesk_server::COMMIT);
    assert!(!commit.is_empty() && !commit.contains(char::is_whitespace), "{commit}");
    let size = value(&before, "refdesk_database_bytes", &[]).expect("the database's size");
    assert!(size >= 4096.0, "{size}");
    let on_duty = |s: &Scrape, library: &str| value(s, "refdesk_staff_on_duty", &[("library", library)]);
    assert_eq!(on_duty(&before, "riverside-main"), Some(0.0), "every library shows, at 0");
    assert_eq!(on_duty(&before, "lakeside-public"), Some(0.0));
    // Ann goes on duty at Riverside: one there, none elsewhere.
    let ann = app.staff("ann").await;
    assert_eq!(ann.post("/api/me/availability", json!({"availability": "on_duty"})).await.0, 200);
    let after = scrape(&app).await;
    assert_eq!(on_duty(&after, "riverside-main"), Some(1.0));
    assert_eq!(on_duty(&after, "lakeside-public"), Some(0.0));
    // Away is not on duty.
    assert_eq!(ann.post("/api/me/availability", json!({"availability": "away"})).await.0, 200);
    assert_eq!(on_duty(&scrape(&app).await, "riverside-main"), Some(0.0));
}

#[tokio::test]
async fn with_smtp_down_the_outbox_depth_and_the_oldest_age_grow_until_it_is_back() {
    // Arrange: SMTP is down; the clock moves when the test says.
    let port = free_port();
    let app = spawn_app_with_manual_clock_and(move |c| {
        c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.mail.retry_initial_ms = 50;
        c.mail.retry_max_ms = 200;
    })
    .await;
    let empty = scrape(&app).await;
    assert_eq!(value(&empty, "refdesk_outbox_unsent", &[]), Some(0.0));
    assert_eq!(value(&empty, "refdesk_outbox_oldest_unsent_age_seconds", &[]), Some(0.0));

    // Act: a chat whose patron asked for the transcript ends.
    let form = json!({"question": "Q?", "email": "pat@example.org", "transcript": true});
    let patron = app.start_chat_with("riverside-main", form).await;
    let ann = app.staff("ann").await;
    ann.accept(patron.session).await;
    let (status, _) = ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
    assert_eq!(status, 200);

    // Assert: it waits in the outbox, the failed try is counted, and the
    // age of the oldest grows with the clock.
    app.eventually("the mailer tried and failed", || async {
        value(&scrape(&app).await, "refdesk_mail", &[("outcome", "retry")]) >= Some(1.0)
    })
    .await;
    let queued = scrape(&app).await;
    assert_eq!(value(&queued, "refdesk_outbox_unsent", &[]), Some(1.0));
    let age = value(&queued, "refdesk_outbox_oldest_unsent_age_seconds", &[]).unwrap();
    app.clock().advance(120_000);
    let later = scrape(&app).await;
    let older = value(&later, "refdesk_outbox_oldest_unsent_age_seconds", &[]).unwrap();
    assert!(older >= age + 119.0, "{age} s, then {older} s");

    // SMTP comes back: the outbox empties and the e-mail is counted sent.
    let smtp = SmtpServer::start_on(port).await;
    app.clock().advance(1_000);
    app.state.app.mail_wakeup().notify_one();
    smtp.wait_for(1).await;
    app.eventually("the outbox is empty again", || async {
        let s = scrape(&app).await;
        value(&s, "refdesk_outbox_unsent", &[]) == Some(0.0)
            && value(&s, "refdesk_outbox_oldest_unsent_age_seconds", &[]) == Some(0.0)
            && value(&s, "refdesk_mail", &[("outcome", "sent")]) == Some(1.0)
    })
    .await;
}

/// With no SMTP server configured, e-mail goes to files in the data folder:
/// counted as filed, never as sent, so that an operator who forgot SMTP
/// sees that no patron got it.
#[tokio::test]
async fn mail_written_to_files_is_counted_filed_not_sent() {
    let app = spawn_app().await;
    let form = json!({"question": "Q?", "email": "pat@example.org", "transcript": true});
    let patron = app.start_chat_with("riverside-main", form).await;
    let ann = app.staff("ann").await;
    ann.accept(patron.session).await;
    let (status, _) = ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
    assert_eq!(status, 200);
    app.state.app.mail_wakeup().notify_one();
    app.eventually("the transcript is filed", || async {
        value(&scrape(&app).await, "refdesk_mail", &[("outcome", "filed")]) == Some(1.0)
    })
    .await;
    assert_eq!(value(&scrape(&app).await, "refdesk_mail", &[("outcome", "sent")]), Some(0.0));
}

/// A delivered e-mail (here a transcript) stays in the outbox a week, then
/// the retention round deletes it: the outbox is no archive of transcripts.
#[tokio::test]
async fn a_delivered_mail_leaves_the_outbox_a_week_later() {
    let app = spawn_app_with_manual_clock_and(|_| {}).await;
    let form = json!({"question": "Q?", "email": "pat@example.org", "transcript": true});
    let patron = app.start_chat_with("riverside-main", form).await;
    let ann = app.staff("ann").await;
    ann.accept(patron.session).await;
    assert_eq!(ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
    app.state.app.mail_wakeup().notify_one();
    let store = app.state.app.store();
    app.eventually("the transcript is delivered", || async {
        store.mail(1).await.unwrap().is_some_and(|m| m.sent_at.is_some())
    })
    .await;
    let week = refdesk_app::privacy::SENT_MAIL_KEPT;
    app.clock().advance(week - 60_000);
    app.state.app.apply_retention(app.clock().now()).await.unwrap();
    assert!(store.mail(1).await.unwrap().is_some(), "kept for a week");
    app.clock().advance(120_000);
    app.state.app.apply_retention(app.clock().now()).await.unwrap();
    assert!(store.mail(1).await.unwrap().is_none(), "deleted once a week old");
}

#[tokio::test]
async fn with_metrics_listen_set_metrics_are_served_there_and_not_on_the_main_listener() {
    let port = free_port();
    let app = spawn_app_with(move |c| c.metrics_listen = Some(([127, 0, 0, 1], port).into())).await;
    let elsewhere = format!("http://127.0.0.1:{port}/metrics");
    app.eventually("the metrics listener answers", || async { reqwest::get(&elsewhere).await.is_ok() }).await;

    let main = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(main.status(), 404, "not on the main listener");
    let s = scrape_url(&elsewhere).await;
    let refused = [("route", "/metrics"), ("method", "GET"), ("status", "404")];
    assert_eq!(value(&s, "refdesk_http_requests", &refused), Some(1.0), "the main listener's figures");
    assert_eq!(chats(&s, "riverside-main", "waiting"), 0.0);
}

#[tokio::test]
async fn the_metrics_listener_holds_few_connections_and_few_from_one_address() {
    use tokio::io::AsyncReadExt;
    let port = free_port();
    let app = spawn_app_with(move |c| c.metrics_listen = Some(([127, 0, 0, 1], port).into())).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    app.eventually("the metrics listener answers", || async { reqwest::get(&url).await.is_ok() }).await;
    // Whoever reaches the address opens connections and says nothing.
    let open_from = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
        socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
    };
    // Held: no answer yet (a refused one is closed at once).
    let held = |mut conns: Vec<tokio::net::TcpStream>| async move {
        let mut kept = Vec::new();
        for mut c in conns.drain(..) {
            let mut b = [0u8; 1];
            if tokio::time::timeout(std::time::Duration::from_millis(300), c.read(&mut b)).await.is_err() {
                kept.push(c);
            }
        }
        kept
    };
    let mut one = Vec::new();
    for _ in 0..20 {
        one.push(open_from(9).await);
    }
    // Each past the address's cap took the place of its oldest: the last
    // four are held.
    let one = held(one).await;
    assert_eq!(one.len(), refdesk_server::metrics::METRICS_CONNECTIONS_PER_ADDRESS, "from one address");
    // Many addresses: the listener's cap, whatever their number; the
    // newest hold it, the first address's among the oldest closed.
    let mut many = Vec::new();
    for last in 10..20 {
        for _ in 0..4 {
            many.push(open_from(last).await);
        }
    }
    let many = held(many).await;
    assert_eq!(many.len(), refdesk_server::metrics::METRICS_CONNECTIONS, "the listener's cap");
    assert_eq!(held(one).await.len(), 0, "the oldest silent connections gave their places");
    // Once they go, the scraper is served again (it would have been at once:
    // its connection takes a silent one's place); the closings were counted
    // as the metrics listener's, not the main listener's.
    drop(many);
    let scraper = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let scrape = || async {
        let res = scraper.get(&url).send().await.ok()?;
        let text = res.text().await.ok()?;
        openmetrics_parser::openmetrics::parse_openmetrics(&text).ok()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let s = loop {
        if let Some(s) = scrape().await {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the scraper is served again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let closed = value(&s, "refdesk_limited", &[("limit", "metrics_connection_oldest")]).unwrap();
    assert!(closed >= 16.0 + 24.0, "16 from one address and 24 past the cap: {closed}");
    assert_eq!(value(&s, "refdesk_limited", &[("limit", "connection_oldest")]), Some(0.0));
    assert_eq!(value(&s, "refdesk_limited", &[("limit", "connection")]), Some(0.0));
}

#[tokio::test]
async fn on_the_main_listener_the_metrics_are_served_to_this_machine_only() {
    let app = spawn_app().await;
    assert_eq!(reqwest::get(app.url("/metrics")).await.unwrap().status(), 200, "from a loopback address");
    // Through a proxy on this machine (nginx forwarding every path): not served.
    let http = reqwest::Client::new();
    for (header, value) in
        [("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=203.0.113.9"), ("X-Real-IP", "203.0.113.9")]
    {
        let res = http.get(app.url("/metrics")).header(header, value).send().await.unwrap();
        assert_eq!(res.status(), 404, "{header}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("metrics_listen"), "{body}");
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_well_formed_one_given_is_kept() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let given = http.get(app.url("/healthz")).header("X-Request-Id", "lb-1234.abc_D").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "lb-1234.abc_D");
    let bad = http.get(app.url("/healthz")).header("X-Request-Id", "no spaces, please").send().await.unwrap();
    let made = bad.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 32, "a new one: {made}");
    let refused = http.post(app.url("/api/login")).body("not json").send().await.unwrap();
    assert!(refused.status().is_client_error());
    assert!(refused.headers().contains_key("x-request-id"), "refusals too");
}
