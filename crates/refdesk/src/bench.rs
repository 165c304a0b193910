//! The load generator: N concurrent chats, each a patron and a librarian on
//! real WebSockets, sending at a set rate for a set time against a running
//! server. Reports delivered messages per second, end-to-end latency (send →
//! delivered to the other side) and, given the server's pid, its RSS and
//! CPU time per delivered message. `--idle N` instead opens N idle patron
//! connections and reports the server's memory per socket.
//!
//! Every message body carries its send time, so latency is measured on one
//! clock (this process) with nothing shared between tasks on the hot path.

use anyhow::{bail, Context};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Options of `refdesk bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Base URL of the server (loopback only): the patrons' node.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Base URL of the node the librarian uses (loopback only); default: `--url`.
    /// With two nodes, every message crosses from one node to the other.
    #[arg(long)]
    staff_url: Option<String>,
    /// Concurrent chats.
    #[arg(long, default_value_t = 100)]
    chats: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Messages per second per side of each chat.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Library whose entry point the patrons use.
    #[arg(long, default_value = "riverside-main")]
    library: String,
    /// Staff member who accepts the chats.
    #[arg(long, default_value = "ann")]
    username: String,
    /// Their password.
    #[arg(long, default_value = "refdesk-demo", env = "REFDESK_BENCH_PASSWORD")]
    password: String,
    /// The server's process id, to read its RSS and CPU time from /proc;
    /// repeat it for several nodes (their figures are added up).
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Instead of chatting, open this many idle patron connections and report memory.
    #[arg(long)]
    idle: Option<usize>,
}

struct ProcStat {
    rss_kib: u64,
    cpu_seconds: f64,
}

/// The RSS and CPU time of several processes, added up (None without pids).
fn procs_stat(pids: &[u32]) -> anyhow::Result<Option<ProcStat>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut total = ProcStat { rss_kib: 0, cpu_seconds: 0.0 };
    for pid in pids {
        let s = proc_stat(*pid)?;
        total.rss_kib += s.rss_kib;
        total.cpu_seconds += s.cpu_seconds;
    }
    Ok(Some(total))
}

fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the server's /proc status")?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading the server's /proc stat")?;
    // Fields after the parenthesised command name; utime and stime are 14th and 15th overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ProcStat { rss_kib, cpu_seconds: ticks / 100.0 })
}

struct Chat {
    session: i64,
    token: String,
}

async fn start_chats(http: &reqwest::Client, base: &str, library: &str, n: usize) -> anyhow::Result<Vec<Chat>> {
    let mut chats = Vec::with_capacity(n);
    // A few at a time: enough to fill group commits, not enough to trip limits.
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let futs = chunk.iter().map(|i| {
            let url = format!("{base}/api/libraries/{library}/chats");
            let body = json!({"name": format!("Bench patron {i}"), "question": format!("Load test question {i}")});
            async move {
                let r: Value = http.post(url).json(&body).send().await?.error_for_status()?.json().await?;
                anyhow::Ok(Chat {
                    session: r["session"].as_i64().context("no session id")?,
                    token: r["token"].as_str().context("no token")?.to_owned(),
                })
            }
        });
        for c in futures_util::future::join_all(futs).await {
            chats.push(c?);
        }
    }
    Ok(chats)
}

fn ws_url(base: &str) -> String {
    base.replacen("http", "ws", 1)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, cookie: Option<&str>) -> anyhow::Result<Socket> {
    let mut req = url.into_client_request()?;
    if let Some(c) = cookie {
        req.headers_mut().insert("Cookie", c.parse()?);
    }
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// Refuses anything but a loopback address.
fn check_loopback(url: &str) -> anyhow::Result<()> {
    let authority = url.split("//").nth(1).unwrap_or("").split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
        bail!("the load generator only targets loopback addresses, not {host:?}");
    }
    Ok(())
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    check_loopback(&args.url)?;
    if let Some(url) = &args.staff_url {
        check_loopback(url)?;
    }
    if !(args.rate > 0.0 && args.rate <= 1000.0) {
        bail!("--rate must be between 0 and 1000 messages per second");
    }
    let base = args.url.trim_end_matches('/').to_owned();
    let staff_base = args.staff_url.as_deref().unwrap_or(&args.url).trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder().cookie_store(true).build()?;
    if let Some(n) = args.idle {
        return idle(&http, &base, &args, n).await;
    }

    let login = http
        .post(format!("{staff_base}/api/login"))
        .json(&json!({"username": args.username, "password": args.password}))
        .send()
        .await?
        .error_for_status()
        .context("signing in the bench librarian")?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();

    http.post(format!("{staff_base}/api/me/availability"))
        .json(&json!({"availability": "on_duty"}))
        .send()
        .await?
        .error_for_status()
        .context("going on duty")?;
    println!("starting {} chats…", args.chats);
    let chats = start_chats(&http, &base, &args.library, args.chats).await?;
    for c in &chats {
        http.post(format!("{staff_base}/api/sessions/{}/accept", c.session)).send().await?.error_for_status()?;
    }
    let ws = ws_url(&base);
    let staff_ws = ws_url(&staff_base);
    let mut sockets = Vec::with_capacity(chats.len() * 2);
    for c in &chats {
        let mut p = connect(&format!("{ws}/api/ws?token={}", c.token), None).await?;
        p.send(Ws::text(json!({"type": "resume", "after": 1_000_000}).to_string())).await?;
        let mut s = connect(&format!("{staff_ws}/api/ws"), Some(&cookie)).await?;
        s.send(Ws::text(json!({"type": "resume", "session": c.session, "after": 1_000_000}).to_string())).await?;
        sockets.push((c.session, p, "patron"));
        sockets.push((c.session, s, "staff"));
    }
    println!("{} sockets open; sending for {} s at {} msg/s per side", sockets.len(), args.duration, args.rate);

    let before = procs_stat(&args.server_pid)?;
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs(args.duration);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut tasks = Vec::new();
    for (i, (session, socket, role)) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(drive(socket, session, role, t0, stop, period, i)));
    }
    let mut latencies: Vec<u64> = Vec::new();
    let (mut sent, mut errors) = (0u64, 0u64);
    for t in tasks {
        let r = t.await?;
        sent += r.sent;
        errors += r.errors;
        latencies.extend(r.latencies_us);
    }
    let elapsed = t0.elapsed().as_secs_f64().min(args.duration as f64 + 2.0);
    let after = procs_stat(&args.server_pid)?;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let delivered = latencies.len() as u64;
    println!("chats: {}  sent: {sent}  delivered: {delivered}  errors: {errors}", args.chats);
    println!("throughput: {:.0} msg/s delivered", delivered as f64 / args.duration as f64);
    println!(
        "latency (send → delivered): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = a.cpu_seconds - b.cpu_seconds;
        println!(
            "server: RSS {} KiB  CPU {:.2} s over {:.1} s ({:.1}% of one core)  {:.1} µs CPU per delivered message",
            a.rss_kib,
            cpu,
            elapsed,
            100.0 * cpu / elapsed,
            if delivered > 0 { cpu * 1e6 / delivered as f64 } else { 0.0 }
        );
    }
    if delivered < sent {
        println!("note: {} messages sent but not seen delivered before the end of the run", sent - delivered);
    }
    Ok(())
}

struct DriveResult {
    sent: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

async fn drive(
    socket: Socket,
    session: i64,
    role: &'static str,
    t0: Instant,
    stop: Instant,
    period: Duration,
    i: usize,
) -> DriveResult {
    let (mut tx, mut rx) = socket.split();
    // Spread the first sends over one period so the load is even.
    let offset = period.mul_f64((i % 997) as f64 / 997.0);
    let sender = async move {
        let mut sent = 0u64;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if Instant::now() >= stop {
                break;
            }
            let us = t0.elapsed().as_micros();
            let frame = json!({"type": "send", "session": session, "client_id": format!("{role}-{sent}"), "body": format!("t={us}")});
            if tx.send(Ws::text(frame.to_string())).await.is_err() {
                break;
            }
            sent += 1;
        }
        (sent, tx)
    };
    let receiver = async move {
        let mut lat = Vec::new();
        let mut errors = 0u64;
        let deadline = stop + Duration::from_secs(2);
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), rx.next()).await {
            let Ws::Text(text) = msg else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
            match v["type"].as_str() {
                Some("event") if v["author"]["type"].as_str() != Some(role) => {
                    if let Some(us) =
                        v["body"].as_str().and_then(|b| b.strip_prefix("t=")).and_then(|t| t.parse::<u128>().ok())
                    {
                        lat.push((t0.elapsed().as_micros().saturating_sub(us)) as u64);
                    }
                }
                Some("error") => errors += 1,
                _ => {}
            }
        }
        (lat, errors)
    };
    let ((sent, mut tx), (latencies_us, errors)) = tokio::join!(sender, receiver);
    let _ = tx.close().await;
    DriveResult { sent, errors, latencies_us }
}

async fn idle(http: &reqwest::Client, base: &str, args: &BenchArgs, n: usize) -> anyhow::Result<()> {
    let pid = *args.server_pid.first().context("--idle needs --server-pid to read the server's memory")?;
    println!("starting {n} chats…");
    let chats = start_chats(http, base, &args.library, n).await?;
    let before = proc_stat(pid)?;
    let ws = ws_url(base);
    let mut sockets = Vec::with_capacity(n);
    for c in &chats {
        let mut p = connect(&format!("{ws}/api/ws?token={}", c.token), None).await?;
        p.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await?;
        sockets.push(p);
    }
    // Let every connection finish its handshake and resume.
    for s in sockets.iter_mut() {
        while let Some(Ok(m)) = s.next().await {
            if m.to_text().is_ok_and(|t| t.contains("\"synced\"")) {
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = proc_stat(pid)?;
    let per = (after.rss_kib.saturating_sub(before.rss_kib)) as f64 / n as f64;
    println!(
        "{n} idle patron connections: server RSS {} KiB → {} KiB, {per:.1} KiB per connection",
        before.rss_kib, after.rss_kib
    );
    drop(sockets);
    Ok(())
}
