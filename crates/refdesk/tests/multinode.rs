//! Several refdesk nodes serving one cooperative: three `refdesk serve`
//! processes on their own ports, sharing one PostgreSQL database (a fresh
//! one per run, on the server `scripts/test.sh` makes sure is running) and
//! one NATS server (started here, so that the test can stop and restart it).
//!
//! The patron is on node 1, the librarian on node 2, a conferencing admin on
//! node 3. Everyone sees the same messages in the same order; two librarians
//! on different nodes accepting one chat → one wins; node 2 is killed
//! (SIGKILL) mid-chat → the librarian resumes on node 3 with nothing lost or
//! doubled; NATS stops mid-chat → the chat goes on through the database,
//! and when NATS is back delivery resumes, nothing lost;
//! the patron moves to node 3 and resumes there; the database goes away and
//! comes back.
//!
//! A second test restarts a node the clean way (SIGTERM): it drains, says
//! goodbye with 1001, and its clients resume on the other node. A third
//! shows that where an account signed in on one node spares it on another
//! once a stranger has spent its failed sign-ins there. A fourth, that a
//! librarian signing out on one node puts back in line the chat whose
//! patron's page is open on the other, and ends the one whose patron left.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

/// How long anything that should happen soon may take (a NATS reconnect
/// waits out the client's back-off).
const PATIENCE: Duration = Duration::from_secs(30);
const PASSWORD: &str = "refdesk-demo";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn nats_server() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/usr/local/bin"]) {
        let p = PathBuf::from(dir).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    panic!("nats-server must be installed (scripts/test.sh installs it)");
}

/// Our own NATS server, on a port of its own.
async fn start_nats(port: u16) -> Proc {
    let child = Command::new(nats_server())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    wait_for_port(port, "nats-server").await;
    Proc(child)
}

/// A refdesk node.
struct Node {
    port: u16,
    _proc: Proc,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn refdesk(config: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_refdesk"));
    c.arg("--config").arg(config).env("REFDESK_LOG", "warn");
    c
}

async fn start_node(config: &std::path::Path, data: &std::path::Path) -> Node {
    let port = free_port();
    let child = refdesk(config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .spawn()
        .expect("refdesk serve starts");
    let node = Node { port, _proc: Proc(child) };
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = reqwest::get(node.url("/readyz")).await {
            if r.status() == 200 {
                return node;
            }
        }
        assert!(Instant::now() < deadline, "node on port {port} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signed-in staff member, on duty, talking to one node.
struct Staff {
    http: reqwest::Client,
    cookie: String,
    base: String,
}

async fn sign_in(node: &Node, username: &str) -> Staff {
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let res = http
        .post(node.url("/api/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{username} signs in");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let staff = Staff { http, cookie, base: node.url("") };
    assert_eq!(staff.post("/api/me/availability", json!({"availability": "on_duty"})).await.0, 200);
    staff
}

impl Staff {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The same sign-in, used on another node.
    fn on(&self, node: &Node) -> Staff {
        Staff { http: self.http.clone(), cookie: self.cookie.clone(), base: node.url("") }
    }

    async fn socket(&self, node: &Node) -> Socket {
        Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node.port), Some(&self.cookie), None).await
    }
}

async fn start_chat(node: &Node, question: &str) -> (i64, String) {
    let res = reqwest::Client::new()
        .post(node.url("/api/libraries/riverside-main/chats"))
        .json(&json!({"name": "Pat", "question": question}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    (v["session"].as_i64().unwrap(), v["token"].as_str().unwrap().to_owned())
}

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client keeping every chat event it was given, by sequence number.
struct Socket {
    ws: Stream,
    /// seq → (kind, body), and how often each seq arrived.
    events: BTreeMap<u64, (String, String)>,
    doubled: Vec<u64>,
    /// What each `link` frame said (the node's link to the others down).
    links: Vec<bool>,
}

impl Socket {
    /// Connects and authenticates in the first frame (a patron's token, or
    /// bare for staff: the cookie decides).
    async fn connect(url: &str, cookie: Option<&str>, token: Option<&str>) -> Socket {
        let mut req = url.into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("Cookie", c.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("the WebSocket connects");
        let mut s = Socket { ws, events: BTreeMap::new(), doubled: Vec::new(), links: Vec::new() };
        let auth = json!({"type": "auth", "token": token}).to_string();
        s.ws.send(Ws::text(auth)).await.expect("the auth frame is sent");
        assert_eq!(s.next().await["type"], "hello");
        s
    }

    async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the socket is open")
                .expect("the frame is readable");
            if let Ws::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "link" {
                    self.links.push(v["down"].as_bool().unwrap());
                }
                if v["type"] == "event" {
                    let seq = v["seq"].as_u64().unwrap();
                    let entry =
                        (v["kind"].as_str().unwrap_or("").to_owned(), v["body"].as_str().unwrap_or("").to_owned());
                    if self.events.insert(seq, entry).is_some() {
                        self.doubled.push(seq);
                    }
                }
                return v;
            }
        }
    }

    async fn send(&mut self, frame: Value) {
        self.ws.send(Ws::text(frame.to_string())).await.unwrap();
    }

    /// Reads until the node has said its link is `down` (or not), if its
    /// last word on it was not that already; within [`PATIENCE`] (other
    /// frames keep coming meanwhile: the re-reads of an outage).
    async fn until_link(&mut self, down: bool) {
        if self.links.last() != Some(&down) {
            let told = tokio::time::timeout(PATIENCE, self.until(|f| f["type"] == "link" && f["down"] == down)).await;
            assert!(told.is_ok(), "the desk was not told its node's link is {}", if down { "down" } else { "back" });
        }
    }

    async fn resume(&mut self, session: Option<i64>, after: u64) {
        let mut frame = json!({"type": "resume", "after": after});
        if let Some(s) = session {
            frame["session"] = json!(s);
        }
        self.send(frame).await;
        loop {
            let f = self.next().await;
            assert_ne!(f["type"], "error", "resume succeeds: {f}");
            if f["type"] == "synced" {
                return;
            }
        }
    }

    /// Sends a line and returns its ack.
    async fn say(&mut self, session: Option<i64>, body: &str, client_id: &str) -> Value {
        self.write(session, "message", body, client_id).await
    }

    /// Sends a line of `kind` (a message, a note) and returns its ack.
    async fn write(&mut self, session: Option<i64>, kind: &str, body: &str, client_id: &str) -> Value {
        let mut frame = json!({"type": "send", "kind": kind, "body": body, "client_id": client_id});
        if let Some(s) = session {
            frame["session"] = json!(s);
        }
        self.send(frame).await;
        loop {
            let f = self.next().await;
            if (f["type"] == "ack" || f["type"] == "error") && f["client_id"] == client_id {
                assert_eq!(f["type"], "ack", "{body} is stored: {f}");
                return f;
            }
        }
    }

    /// Reads until a frame matches; returns it.
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let f = self.next().await;
            if pred(&f) {
                return f;
            }
        }
    }

    /// Reads until the event with this body has arrived.
    async fn until_body(&mut self, body: &str) {
        while !self.events.values().any(|(_, b)| b == body) {
            self.next().await;
        }
    }

    /// Reads (keeping the events) until the server's close frame; returns
    /// its code and reason.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the socket ends with a close frame, not a dropped connection")
                .expect("the frame is readable");
            match msg {
                Ws::Close(Some(frame)) => return (u16::from(frame.code), frame.reason.to_string()),
                Ws::Close(None) => panic!("a close frame without a code"),
                Ws::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "event" {
                        let seq = v["seq"].as_u64().unwrap();
                        let entry =
                            (v["kind"].as_str().unwrap_or("").to_owned(), v["body"].as_str().unwrap_or("").to_owned());
                        if self.events.insert(seq, entry).is_some() {
                            self.doubled.push(seq);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn last_seq(&self) -> u64 {
        self.events.keys().next_back().copied().unwrap_or(0)
    }

    /// The chat lines (not notes, not system lines), in sequence order.
    fn lines(&self) -> Vec<(u64, String)> {
        self.events.iter().filter(|(_, (k, _))| k == "message").map(|(s, (_, b))| (*s, b.clone())).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_cooperative_through_postgresql_and_nats() {
    // --- a fresh database, our own NATS, the demo cooperative, three nodes ---
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_multinode_{}_{nanos}", std::process::id());
    let database = refdesk_store::postgres::create_database(&server, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"));
    let nats_port = free_port();
    let mut nats = start_nats(nats_port).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("refdesk.toml");
    // The key the three nodes share to seal what they send over NATS.
    let key = refdesk_app::auth::new_token().unwrap();
    // Roll-up at once: a librarian of another library may take the chat
    // (the accept race below is between two libraries' librarians).
    std::fs::write(
        &config,
        format!(
            "database_url = \"{database}\"\nnats_url = \"nats://127.0.0.1:{nats_port}\"\nnats_subject = \"test.{name}\"\n\
             nats_key = \"{key}\"\n\
             [limits]\nrollup_seconds = 0\nlogins_per_minute = 100000\nstarts_per_minute = 100000\nchats_per_address_per_day = 100000\nstarts_per_library_per_day = 100000000\npatron_frames_per_second_per_address = 1000000\nmax_waiting_per_address = 100000\npatron_away_seconds = 1\n"
        ),
    )
    .unwrap();
    let demo = refdesk(&config).arg("demo").stdout(Stdio::null()).status().expect("refdesk demo runs");
    assert!(demo.success(), "the demo loads into the shared database");
    let node1 = start_node(&config, &dir.path().join("n1")).await;
    let node2 = start_node(&config, &dir.path().join("n2")).await;
    let node3 = start_node(&config, &dir.path().join("n3")).await;

    // --- two librarians on different nodes accept one chat at once: one wins ---
    let ann = sign_in(&node2, "ann").await;
    let ben = sign_in(&node3, "ben").await;
    let (race, _) = start_chat(&node1, "Who wins?").await;
    let path = format!("/api/sessions/{race}/accept");
    let (a, b) = tokio::join!(ann.post(&path, json!(null)), ben.post(&path, json!(null)));
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 409], "exactly one accept wins (I6): {a:?} {b:?}");

    // --- the patron on node 1, the librarian on node 2, an admin on node 3 ---
    let (session, token) = start_chat(&node1, "Where are the 1850 maps?").await;
    assert_eq!(ann.post(&format!("/api/sessions/{session}/accept"), json!(null)).await.0, 200);
    let mut pat = Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node1.port), None, Some(&token)).await;
    pat.resume(None, 0).await;
    let mut lib = ann.socket(&node2).await;
    lib.resume(Some(session), 0).await;
    let dev = sign_in(&node3, "dev").await;
    assert_eq!(dev.post(&format!("/api/sessions/{session}/conference"), json!({"mode": "join"})).await.0, 200);
    let mut adm = dev.socket(&node3).await;
    adm.resume(Some(session), 0).await;

    for i in 0..5 {
        pat.say(None, &format!("patron {i}"), &format!("p{i}")).await;
        lib.say(Some(session), &format!("librarian {i}"), &format!("l{i}")).await;
        adm.say(Some(session), &format!("admin {i}"), &format!("a{i}")).await;
    }
    for s in [&mut pat, &mut lib, &mut adm] {
        s.until_body("admin 4").await;
    }
    assert_eq!(pat.lines().len(), 16, "the question and 15 lines: {:?}", pat.lines());
    assert_eq!(pat.lines(), lib.lines(), "patron (node 1) and librarian (node 2) see the same, in the same order");
    assert_eq!(lib.lines(), adm.lines(), "and so does the admin (node 3)");

    // --- typing, watchers and the queue cross nodes too ---
    pat.send(json!({"type": "typing", "on": true})).await;
    lib.until(|f| f["type"] == "typing" && f["on"] == true).await;
    let carla = sign_in(&node1, "carla").await; // library admin: opening the chat makes her a watcher (B3)
    let mut watching = carla.socket(&node1).await;
    watching.resume(Some(session), 0).await;
    let carla_seen = |f: &Value| {
        f["type"] == "presence"
            && f["watchers"].as_array().is_some_and(|w| w.iter().any(|x| x["name"] == "Carla Catalog"))
    };
    let seen = lib.until(carla_seen).await; // on node 2
                                            // Node 1's list carries the patron's page too: told as patron_here, never listed.
    let presence = &seen;
    assert_eq!(presence["patron_here"], true, "{presence}");
    assert!(presence["watchers"].as_array().unwrap().iter().all(|w| w["name"] != ""), "{presence}");
    adm.until(carla_seen).await; // on node 3
    let mut desk = ben.socket(&node3).await;
    desk.send(json!({"type": "queue"})).await;
    desk.until(|f| f["type"] == "queue").await;
    let (queued, queued_token) = start_chat(&node1, "Seen across nodes?").await;
    desk.until(|f| f["type"] == "queue_added" && f["session"] == queued).await;
    // The waiting patron has a page on node 1 and one on node 3. Node 1's
    // closes: node 1 takes them for gone, node 3's page says they are not.
    let page = |node: &Node| format!("ws://127.0.0.1:{}/api/ws", node.port);
    let mut tab1 = Socket::connect(&page(&node1), None, Some(&queued_token)).await;
    tab1.resume(None, 0).await;
    tab1.until(|f| f["type"] == "position").await;
    let mut tab3 = Socket::connect(&page(&node3), None, Some(&queued_token)).await;
    tab3.resume(None, 0).await;
    tab3.until(|f| f["type"] == "position").await;
    drop(tab1);
    let away =
        |on: bool| move |f: &Value| f["type"] == "patron_away" && f["session"] == queued && f["since"].is_i64() == on;
    desk.until(away(true)).await;
    desk.until(away(false)).await;
    // Node 3's closes too: gone, whichever node the desk is on.
    drop(tab3);
    desk.until(away(true)).await;

    // --- node 2 is killed mid-chat; the librarian resumes on node 3 ---
    let before_kill = lib.last_seq();
    let cid_sent_to_node2 = lib.say(Some(session), "sent just before the crash", "l-crash").await;
    drop(node2); // SIGKILL: no shutdown, no goodbye
    pat.say(None, "are you still there?", "p-while-down").await;
    pat.say(None, "hello?", "p-while-down-2").await;
    let ann3 = ann.on(&node3);
    let mut lib3 = ann3.socket(&node3).await;
    lib3.resume(Some(session), before_kill).await;
    lib3.until_body("hello?").await;
    // The re-send of a line node 2 stored returns the stored one (I4), from node 3.
    let again = lib3.say(Some(session), "sent just before the crash", "l-crash").await;
    assert_eq!(again["seq"], cid_sent_to_node2["seq"], "a re-sent client id is stored once, whichever node");
    let resumed: Vec<&String> = lib3.events.values().map(|(_, b)| b).collect();
    assert_eq!(
        resumed,
        ["sent just before the crash", "are you still there?", "hello?"],
        "everything after the last seen seq, once"
    );
    assert!(lib3.doubled.is_empty(), "nothing doubled: {:?}", lib3.doubled);

    // --- NATS stops mid-chat: the chat goes on (the nodes re-read from the
    // database every 5 s while it is down); it comes back, nothing lost ---
    drop(nats);
    pat.say(None, "said while NATS was down", "p-nats-down").await;
    let (while_down, _) = start_chat(&node1, "Asked while NATS was down").await;
    lib3.until_body("said while NATS was down").await;
    // The desk on node 3 hears of the chat started on node 1 meanwhile (in
    // the whole queue re-sent as it re-reads).
    desk.until(|f| {
        (f["type"] == "queue_added" && f["session"] == while_down)
            || (f["type"] == "queue"
                && f["waiting"].as_array().is_some_and(|w| w.iter().any(|e| e["session"] == while_down)))
    })
    .await;
    adm.until_body("said while NATS was down").await;
    lib3.say(Some(session), "answered while NATS was down", "l-nats-down").await;
    pat.until_body("answered while NATS was down").await;
    // The desks are told their node's link is down (lines may come a few
    // seconds late), and when it is back; patrons are told nothing of it.
    desk.until_link(true).await;
    nats = start_nats(nats_port).await;
    pat.say(None, "and after it came back", "p-nats-up").await;
    lib3.until_body("and after it came back").await;
    adm.until_body("and after it came back").await;
    desk.until_link(false).await;
    assert!(pat.links.is_empty(), "a patron hears nothing of the nodes' link");
    lib3.say(Some(session), "librarian on node 3 answers", "l-after").await;
    pat.until_body("librarian on node 3 answers").await;
    adm.until_body("librarian on node 3 answers").await;

    // Every client holds a gapless run of what it may see, nothing doubled;
    // the patron and the admin agree line for line with the store's order.
    for (who, s) in [("patron", &pat), ("admin", &adm), ("librarian", &lib3)] {
        assert!(s.doubled.is_empty(), "{who} got nothing twice: {:?}", s.doubled);
    }
    let bodies = |s: &Socket| s.lines().into_iter().map(|(_, body)| body).collect::<Vec<_>>();
    assert_eq!(bodies(&pat), bodies(&adm), "patron (node 1) and admin (node 3) end in agreement");
    // The patron's numbers are their own: 1, 2, 3…
    let numbers: Vec<u64> = pat.events.keys().copied().collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>(), "the patron's numbers, gapless");

    // --- the patron moves from node 1 to node 3 mid-chat (a load balancer's
    // choice): resuming there gives exactly what they missed ---
    let seen = pat.last_seq();
    drop(pat);
    lib3.say(Some(session), "while you were away 1", "l-away-1").await;
    lib3.write(Some(session), "note", "NOTE-WHILE-AWAY", "l-away-note").await;
    lib3.say(Some(session), "while you were away 2", "l-away-2").await;
    let mut pat = Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node3.port), None, Some(&token)).await;
    pat.resume(None, seen).await;
    let missed: Vec<&String> = pat.events.values().map(|(_, b)| b).collect();
    assert_eq!(missed, ["while you were away 1", "while you were away 2"], "I3 on another node");
    assert_eq!(pat.events.keys().copied().collect::<Vec<_>>(), [seen + 1, seen + 2], "by the patron's numbers");

    // --- the database goes away: not ready, no false ack; back: ready by itself ---
    let admin = reqwest::Client::new();
    let psql = |sql: String| {
        let server = server.clone();
        async move {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&server).await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut c).await.unwrap();
        }
    };
    psql(format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    let ready = |n: &Node| admin.get(n.url("/readyz")).send();
    // Once the last verdict, which answers the probes of a second, is stale.
    let gone = Instant::now();
    while ready(&node1).await.unwrap().status() != 503 || ready(&node3).await.unwrap().status() != 503 {
        assert!(gone.elapsed() < Duration::from_secs(5), "a node without its database is not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Once more: a connection that was being opened as the database was
    // closed to new ones passed its check before, and was not yet listed
    // to be ended (a CI run saw a node's append go through one).
    psql(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")).await;
    pat.send(json!({"type": "send", "kind": "message", "body": "lost?", "client_id": "p-db-down"})).await;
    loop {
        let f = pat.next().await;
        if f["client_id"] == "p-db-down" {
            assert_eq!(f["type"], "error", "no ack for what was not stored: {f}");
            break;
        }
    }
    psql(format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")).await;
    let deadline = Instant::now() + PATIENCE;
    while ready(&node1).await.unwrap().status() != 200 || ready(&node3).await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the nodes reconnect to the database by themselves");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pat.say(None, "lost?", "p-db-down").await;
    lib3.until_body("lost?").await;
    adm.until_body("lost?").await;
    drop(nats);
}

/// A fresh PostgreSQL database, our own NATS server and a configuration
/// file for nodes sharing them (`extra`: more top-level settings; `limits`:
/// more limits); the demo cooperative is loaded. Returns the folder
/// (holding the file), the file and the NATS server.
async fn deployment(what: &str, extra: &str, limits: &str) -> (tempfile::TempDir, PathBuf, Proc) {
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_{what}_{}_{nanos}", std::process::id());
    let database = refdesk_store::postgres::create_database(&server, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"));
    let nats_port = free_port();
    let nats = start_nats(nats_port).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("refdesk.toml");
    let key = refdesk_app::auth::new_token().unwrap();
    std::fs::write(
        &config,
        format!(
            "database_url = \"{database}\"\nnats_url = \"nats://127.0.0.1:{nats_port}\"\nnats_subject = \"test.{name}\"\n\
             nats_key = \"{key}\"\n{extra}\n\
             [limits]\nlogins_per_minute = 100000\nstarts_per_minute = 100000\nchats_per_address_per_day = 100000\nstarts_per_library_per_day = 100000000\npatron_frames_per_second_per_address = 1000000\nmax_waiting_per_address = 100000\n{limits}"
        ),
    )
    .unwrap();
    let demo = refdesk(&config).arg("demo").stdout(Stdio::null()).status().expect("refdesk demo runs");
    assert!(demo.success(), "the demo loads into the shared database");
    (dir, config, nats)
}

/// A sign-in as Ann on `node` from the loopback address 127.0.0.`from`: its status.
async fn sign_in_from(node: &Node, from: u8, password: &str) -> u16 {
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, from])).build().unwrap();
    let body = json!({"username": "ann", "password": password});
    client.post(node.url("/api/login")).json(&body).send().await.unwrap().status().as_u16()
}

/// The networks an account signed in from are in the database: a node
/// whose budget for the account a stranger spent still lets her in from
/// where she signed in on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_an_account_signed_in_on_one_node_spares_it_on_another() {
    let (dir, config, _nats) = deployment("networks", "", "failed_logins_per_account_per_hour = 3\n").await;
    let node1 = start_node(&config, &dir.path().join("n1")).await;
    let node2 = start_node(&config, &dir.path().join("n2")).await;
    // Each node made its data folder, private, on PostgreSQL too: its
    // erasure journal goes there (a restored database needs it).
    for n in ["n1", "n2"] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir.path().join(n)).expect("the node made its data folder");
        assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{n}");
    }
    assert_eq!(sign_in_from(&node1, 41, PASSWORD).await, 200, "at her desk, through node 1");
    for from in 42..45 {
        assert_eq!(sign_in_from(&node2, from, "wrong guess 1234").await, 401);
    }
    assert_eq!(sign_in_from(&node2, 45, PASSWORD).await, 429, "her attempts on node 2 are spent");
    assert_eq!(sign_in_from(&node2, 41, PASSWORD).await, 200, "but not at her desk, known from node 1");
}

/// SIGTERM to node 1 while a patron and a librarian chat through it.
/// `drain_seconds = 3`: /readyz says 503 at once and the chat goes on
/// through node 1; after the drain every socket is closed with 1001; the
/// two resume on node 2 with every acknowledged line there, once, in
/// order; node 1 exits by itself, well within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_node_and_its_clients_resume_on_another_with_nothing_lost() {
    const DRAIN: Duration = Duration::from_secs(3);
    let (dir, config, _nats) = deployment("drain", "drain_seconds = 3\nshutdown_seconds = 5", "").await;
    let mut node1 = start_node(&config, &dir.path().join("n1")).await;
    let node2 = start_node(&config, &dir.path().join("n2")).await;

    let ann = sign_in(&node1, "ann").await;
    let (session, token) = start_chat(&node1, "Before the restart").await;
    assert_eq!(ann.post(&format!("/api/sessions/{session}/accept"), json!(null)).await.0, 200);
    let mut pat = Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node1.port), None, Some(&token)).await;
    pat.resume(None, 0).await;
    let mut lib = ann.socket(&node1).await;
    lib.resume(Some(session), 0).await;
    // Every acknowledged line: (seq, body).
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut ack = |f: Value, body: &str| acked.push((f["seq"].as_u64().unwrap(), body.to_owned()));
    ack(pat.say(None, "patron before", "p0").await, "patron before");
    ack(lib.say(Some(session), "librarian before", "l0").await, "librarian before");

    // --- SIGTERM: /readyz is 503 at once, everything else still works ---
    let pid = node1._proc.0.id();
    let term = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    assert!(term.success());
    let signalled = Instant::now();
    let http = reqwest::Client::new();
    loop {
        let r = http.get(node1.url("/readyz")).send().await.expect("node 1 still listens");
        let (status, body) = (r.status().as_u16(), r.text().await.unwrap());
        if status == 503 {
            assert_eq!(body, "draining");
            break;
        }
        assert!(signalled.elapsed() < Duration::from_secs(1), "/readyz turns 503 at once: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..3 {
        let body = format!("patron during the drain {i}");
        ack(pat.say(None, &body, &format!("pd{i}")).await, &body);
        let body = format!("librarian during the drain {i}");
        ack(lib.say(Some(session), &body, &format!("ld{i}")).await, &body);
    }
    lib.until_body("patron during the drain 2").await;
    pat.until_body("librarian during the drain 2").await;
    // New connections are still accepted (a fresh client, a fresh TCP connection).
    let (other, _) = start_chat(&node1, "Asked during the drain").await;
    assert!(other > session);
    assert_eq!(http.get(node1.url("/readyz")).send().await.unwrap().status(), 503, "still draining");
    assert!(signalled.elapsed() < DRAIN, "all of this happened within the drain period");

    // --- after the drain: every socket is told 1001, at once ---
    let (code, reason) = pat.closed().await;
    assert_eq!(code, 1001, "the patron's socket: going away ({reason})");
    assert!(!reason.is_empty(), "with a reason");
    assert_eq!(lib.closed().await.0, 1001, "the librarian's socket: going away");
    let closed_after = signalled.elapsed();
    assert!(closed_after >= DRAIN - Duration::from_millis(200), "not before the drain ends: {closed_after:?}");
    assert!(closed_after < DRAIN + Duration::from_secs(2), "promptly after it: {closed_after:?}");

    // --- both resume on node 2 from what they had seen: nothing lost, nothing doubled ---
    let (pat_seen, lib_seen) = (pat.last_seq(), lib.last_seq());
    let mut pat2 = Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node2.port), None, Some(&token)).await;
    pat2.resume(None, pat_seen).await;
    let mut lib2 = ann.on(&node2).socket(&node2).await;
    lib2.resume(Some(session), lib_seen).await;
    ack(pat2.say(None, "patron after", "p1").await, "patron after");
    ack(lib2.say(Some(session), "librarian after", "l1").await, "librarian after");
    lib2.until_body("patron after").await;
    pat2.until_body("librarian after").await;
    let mut whole = Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node2.port), None, Some(&token)).await;
    whole.resume(None, 0).await;
    whole.until_body("librarian after").await;
    acked.sort();
    let stored: Vec<(u64, String)> =
        whole.lines().into_iter().filter(|(seq, _)| acked.iter().any(|(s, _)| s == seq)).collect();
    assert_eq!(stored, acked, "every acknowledged line is there, at its seq, in order");
    assert_eq!(whole.lines().len(), acked.len() + 1, "and nothing else but the question: {:?}", whole.lines());
    for (who, s) in [("patron", &pat2), ("librarian", &lib2), ("transcript", &whole)] {
        assert!(s.doubled.is_empty(), "{who} got nothing twice: {:?}", s.doubled);
    }

    // --- node 1 exits by itself, within drain + shutdown bound ---
    let exited = loop {
        if let Some(status) = node1._proc.0.try_wait().unwrap() {
            break status;
        }
        // shutdown_seconds = 5, and a second for the process to end.
        assert!(signalled.elapsed() < DRAIN + Duration::from_secs(6), "node 1 exits within its bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "a clean exit: {exited}");
    assert!(http.get(node1.url("/readyz")).send().await.is_err(), "node 1's listener is closed");
}

/// The state of a patron's chat, as their page reads it.
async fn chat_state(node: &Node, token: &str) -> String {
    let res = reqwest::Client::new().get(node.url("/api/chat")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    page["state"].as_str().unwrap_or_default().to_owned()
}

/// A librarian signs out on node 1 with two chats: one whose patron's page
/// is open on node 2 goes back in line for another librarian (node 1 has
/// no page of it, but hears of node 2's); one whose patron closed the page
/// ends as hers once no page of it came back on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_librarians_chat_whose_patron_is_on_another_node_goes_back_in_line() {
    let (dir, config, _nats) = deployment("handback", "", "patron_away_seconds = 1\n").await;
    let node1 = start_node(&config, &dir.path().join("n1")).await;
    let node2 = start_node(&config, &dir.path().join("n2")).await;
    let ann = sign_in(&node1, "ann").await;
    let (here, here_token) = start_chat(&node2, "My page is open on node 2").await;
    let (gone, gone_token) = start_chat(&node2, "I closed my page").await;
    for session in [here, gone] {
        assert_eq!(ann.post(&format!("/api/sessions/{session}/accept"), json!(null)).await.0, 200);
    }
    let mut pat = Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node2.port), None, Some(&here_token)).await;
    pat.resume(None, 0).await;
    let mut closed = Socket::connect(&format!("ws://127.0.0.1:{}/api/ws", node2.port), None, Some(&gone_token)).await;
    closed.resume(None, 0).await;
    closed.ws.close(None).await.expect("the page closes");
    // Past patron_away_seconds: the second patron counts as away.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (status, _) = ann.post("/api/logout", json!(null)).await;
    assert_eq!(status, 200, "Ann signs out on node 1");
    // At most patron_away_seconds and 20 s later, each has its outcome.
    let deadline = Instant::now() + PATIENCE + Duration::from_secs(10);
    loop {
        let states = (chat_state(&node1, &here_token).await, chat_state(&node1, &gone_token).await);
        if states == ("waiting".to_owned(), "ended".to_owned()) {
            break;
        }
        assert_ne!(states.0, "ended", "the chat whose patron is on node 2 did not end");
        assert!(Instant::now() < deadline, "back in line, and ended: {states:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The patron on node 2 is told, and a librarian on node 2 can take it.
    pat.until(|f| f["type"] == "event" && f["body"].as_str().is_some_and(|b| b.contains("Ann Archer"))).await;
    let again = sign_in(&node2, "ann").await;
    assert_eq!(again.post(&format!("/api/sessions/{here}/accept"), json!(null)).await.0, 200, "taken again");
}
