//! The real `refdesk serve`'s log lines: with `log_format = "json"` every
//! line on standard error is a JSON object, and a request's lines carry its
//! request id (the one the client gave, or the one sent back); in text, no
//! colour codes when standard error is not a terminal.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_refdesk");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `refdesk serve` writing its log to a file, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(dir: &Path, log: &Path, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(dir).args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap());
        cmd.env("REFDESK_LOG", "info").env_remove("REFDESK_LOG_FORMAT");
        cmd.envs(env.iter().copied());
        let server = Server { child: cmd.spawn().expect("refdesk serve starts"), port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(server.url("/readyz")).await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "refdesk serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The log's lines once `pred` holds for one of them (bounded wait: the
/// line is written as the answer goes out).
async fn lines_until(log: &Path, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(&pred) {
            return text.lines().map(str::to_owned).collect();
        }
        assert!(Instant::now() < deadline, "no such log line in:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The request id of a JSON log line: a field of its span (or of one of
/// the spans it is in).
fn request_id(line: &Value) -> Option<&str> {
    line["span"]["request_id"]
        .as_str()
        .or_else(|| line["spans"].as_array()?.iter().find_map(|s| s["request_id"].as_str()))
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_request_id_of_each_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    // Anonymous reads are logged at debug.
    let env = [("REFDESK_LOG_FORMAT", "json"), ("REFDESK_LOG", "info,refdesk_server::metrics=debug")];
    let server = Server::start(&dir.path().join("data"), &log, &env).await;
    let http = reqwest::Client::new();
    http.get(server.url("/")).header("X-Request-Id", "probe-7.a_b").send().await.unwrap();
    let made = http.get(server.url("/api/service")).send().await.unwrap();
    let made = made.headers()["x-request-id"].to_str().unwrap().to_owned();

    let lines = lines_until(&log, |l| l.contains(&made)).await;
    let parsed: Vec<Value> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(parsed.iter().all(|v| v["level"].is_string() && v["timestamp"].is_string()), "{lines:?}");
    let given = parsed.iter().find(|v| request_id(v) == Some("probe-7.a_b")).expect("the given id is logged");
    assert_eq!(given["fields"]["message"], "answered");
    assert_eq!(given["fields"]["status"], 200);
    assert_eq!(given["span"]["route"], "/");
    assert!(parsed.iter().any(|v| request_id(v) == Some(made.as_str())), "the id sent back is the one logged");
    assert!(!lines.iter().any(|l| l.contains("127.0.0.1:") && l.contains("answered")), "no client address");
    // The line saying it serves names the build.
    let serving = parsed.iter().find(|v| v["fields"]["message"] == "serving").expect("a line saying it serves");
    assert_eq!(serving["fields"]["version"].as_str(), Some(refdesk_server::VERSION), "{serving}");

    // A second node on the same port stops, and why is a JSON line too (a
    // log collector would miss a line of text).
    let again = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", server.port)])
        .env("REFDESK_LOG_FORMAT", "json")
        .env("REFDESK_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the last line is not JSON ({e}): {stderr}"));
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(last["fields"]["error"].as_str().unwrap_or_default().contains("listening on"), "{last}");
}

#[tokio::test]
async fn text_logs_have_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let server = Server::start(&dir.path().join("data"), &log, &[("REFDESK_LOG", "info,refdesk_server=debug")]).await;
    reqwest::Client::new().get(server.url("/")).header("X-Request-Id", "plain-1").send().await.unwrap();
    let lines = lines_until(&log, |l| l.contains("plain-1")).await;
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("request_id=plain-1") && l.contains("answered")), "{lines:?}");
}

/// A reverse proxy left out of `trusted_proxies` (its requests carry
/// `X-Forwarded-For`, from this machine) is said, once: every client behind
/// it would be one address for the limits and blocks.
#[tokio::test]
async fn a_proxy_left_out_of_trusted_proxies_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let server = Server::start(&dir.path().join("data"), &log, &[]).await;
    let client = reqwest::Client::new();
    for n in 1..=3 {
        let body = serde_json::json!({"username": "nobody", "password": "not this one"});
        let sent = client.post(server.url("/api/login")).header("X-Forwarded-For", format!("203.0.113.{n}"));
        sent.header("X-Request-Id", format!("proxied-{n}")).json(&body).send().await.unwrap();
    }
    let lines = lines_until(&log, |l| l.contains("proxied-3")).await;
    let said: Vec<_> = lines.iter().filter(|l| l.contains("is not in trusted_proxies")).collect();
    assert_eq!(said.len(), 1, "{lines:?}");
    assert!(said[0].contains("WARN") && said[0].contains("requests from 127.0.0.1 carry X-Forwarded-For"), "{said:?}");
}

#[tokio::test]
async fn a_flood_of_refusals_unknown_paths_and_widget_requests_does_not_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    // At debug for the requests' lines, to see which are at info.
    let env = [("REFDESK_LOGINS_PER_MINUTE", "1"), ("REFDESK_LOG", "info,refdesk_server::metrics=debug")];
    let server = Server::start(&dir.path().join("data"), &log, &env).await;
    let http = reqwest::Client::new();
    let login = serde_json::json!({"username": "nobody", "password": "wrong guess"});
    for n in 0..30 {
        http.post(server.url("/api/login")).json(&login).send().await.unwrap();
        http.get(server.url("/wp-login.php")).send().await.unwrap();
        // No credential; another site's form; a body that is not JSON.
        http.get(server.url("/api/me")).send().await.unwrap();
        http.post(server.url("/api/logout")).header("Origin", "https://elsewhere.example").send().await.unwrap();
        let from_elsewhere = http.post(server.url("/api/login")).header("Origin", "https://elsewhere.example");
        from_elsewhere.json(&login).send().await.unwrap();
        http.post(server.url("/api/logout")).header("Content-Type", "text/plain").body("x").send().await.unwrap();
        // Anonymous reads: pages, documents, lists, a method no route takes.
        for page in ["/", "/desk", "/api/service", "/api/libraries", "/api/openapi.json"] {
            http.get(server.url(page)).send().await.unwrap();
        }
        http.delete(server.url("/api/service")).send().await.unwrap();
        // What every page of a library's site with the widget asks, made-up names or not.
        http.get(server.url("/widget.js")).send().await.unwrap();
        http.get(server.url(&format!("/api/libraries/site-{n}/status"))).send().await.unwrap();
        http.get(server.url(&format!("/ask/site-{n}?embed=1"))).send().await.unwrap();
        http.get(server.url("/assets/ask.js")).send().await.unwrap();
    }
    http.get(server.url("/")).header("X-Request-Id", "after-the-flood").send().await.unwrap();
    let lines = lines_until(&log, |l| l.contains("after-the-flood")).await;
    let answered: Vec<&String> = lines.iter().filter(|l| l.contains("answered") && l.contains(" INFO ")).collect();
    // The first sign-in (401) alone: the 29 refusals (429), the 30 unknown
    // paths (404), the 120 requests without a credential (401), from
    // another site (403, sign-ins too) or not JSON (415), the 180
    // anonymous reads and refused methods, and the widget's 120 requests
    // are counted, not logged at info.
    assert_eq!(answered.len(), 1, "{answered:#?}");
    assert!(answered[0].contains("status=401") && answered[0].contains("/api/login"), "{answered:#?}");
    let debug = lines.iter().filter(|l| l.contains("answered") && l.contains(" DEBUG ")).count();
    assert!(debug >= 30 * 16, "every request has its line, at debug: {debug}");
    let metrics = http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"refdesk_limited_total{limit="login"} 29"#), "still counted:\n{metrics}");
    for status in ["401", "403", "405", "415"] {
        assert!(metrics.contains(&format!(r#"status="{status}""#)), "{status}s still counted:\n{metrics}");
    }
}

/// A server whose standard output and error are pipes their reader closed
/// (`refdesk serve 2>&1 | head`, a log shipper restarting) goes on serving:
/// a line it cannot write is lost, not a panic that ends the service. It
/// still stops cleanly on SIGTERM, saying so in its lock file.
#[tokio::test]
async fn a_server_whose_log_pipe_closes_goes_on_serving_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(&data).args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Every request is logged: each one after the close is a write that fails.
    cmd.env("REFDESK_LOG", "info,refdesk_server=debug").env_remove("REFDESK_LOG_FORMAT");
    let mut server = Server { child: cmd.spawn().expect("refdesk serve starts"), port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(server.url("/readyz")).await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "refdesk serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server.child.stdout.take());
    drop(server.child.stderr.take());
    for _ in 0..20 {
        let res = reqwest::get(server.url("/readyz")).await.expect("still serving after its log pipe closed");
        assert_eq!(res.status(), 200);
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the server ended when it could not write its log");
    let term = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill runs");
    assert!(term.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(20), "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let lock = std::fs::read_to_string(data.join("refdesk.lock")).unwrap();
    assert!(lock.contains("serve stopped"), "the lock file says it stopped cleanly: {lock:?}");
}
