//! The load generator: N concurrent chats, each a patron and a librarian on
//! real WebSockets, sending at a set rate for a set time against a running
//! server. Reports delivered messages per second, end-to-end latency (send →
//! delivered to the other side) and, given the server's pid, its RSS and
//! CPU time per delivered message. `--idle N` instead opens N idle patron
//! connections and reports the server's memory per socket.
//!
//! Every message body carries its send time, so latency is measured on one
//! clock (this process).
//!
//! For a soak, `--sample-seconds N` prints a row every N seconds: that
//! window's throughput, latency and server CPU per message, and the
//! server's RSS, open files and database size (the SQLite file and its WAL
//! with `--data-dir`, PostgreSQL's database and WAL with `--database-url`);
//! `--samples-csv` writes the same rows for a script to check.
//! `--chat-seconds N` ends each chat after N seconds and starts another in
//! its place, so that sessions come and go as at a real desk.

use anyhow::{bail, Context};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
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
    /// With `--staff-url`: each chat's two sides (their sockets, the accept,
    /// and with `--chat-seconds` the end and the next start) on one node,
    /// every other chat on the second (as a load balancer with affinity by
    /// chat would place them), instead of patrons on one node and
    /// librarians on the other. The first chats are all started on `--url`.
    #[arg(long, requires = "staff_url")]
    by_chat: bool,
    /// Concurrent chats.
    #[arg(long, default_value_t = 100)]
    chats: usize,
    /// Seconds of load (a day at most).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=DAY_SECONDS))]
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
    /// Print a row of figures every this many seconds (a soak).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=DAY_SECONDS))]
    sample_seconds: Option<u64>,
    /// Also write the rows to this CSV file.
    #[arg(long, requires = "sample_seconds")]
    samples_csv: Option<std::path::PathBuf>,
    /// End each chat after this many seconds and start a new one in its place.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=DAY_SECONDS))]
    chat_seconds: Option<u64>,
    /// A sweep: one phase of `--duration` seconds at each of these rates
    /// (messages per second per side) in turn, on the same chats, each with
    /// its own figures; it stops after the first phase whose p99 reaches
    /// `--stop-above-ms` or that leaves a message undelivered. Each phase's
    /// `summary:` line has the rate offered and the rate actually sent
    /// (`sent_rate`: lower when the load generator could not keep up).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["chat_seconds", "sample_seconds"])]
    rates: Vec<f64>,
    /// Where a sweep stops: a phase's p99 above this, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    stop_above_ms: f64,
    /// Chats per sign-in of the bench librarian (default: as many as the
    /// default frame budget of a sign-in carries at `--rate`, at most 4).
    #[arg(long)]
    chats_per_sign_in: Option<usize>,
    /// Drive the bare relay (`refdesk bench-relay`) at `--url` instead of
    /// refdesk: the same pairs and frames, no chats to start or accept.
    #[arg(long)]
    relay: bool,
    /// With `--rates`: also write every delivered message to this CSV
    /// (`offered,sent_us,latency_us`: the offered msg/s of the phase it was
    /// delivered in — a late one of a phase counts in the next —, when it was
    /// sent in µs since the sweep began, how long it took), to see when the
    /// slow ones were sent.
    #[arg(long, requires = "rates")]
    latencies_csv: Option<std::path::PathBuf>,
    /// While the load runs, write 4 KiB to a file in this folder and fsync it
    /// every 10 ms, and report how long those fsyncs took in each phase: a
    /// durable server's latency can be no better than its disk's, and a
    /// virtual machine's disk stalls now and then. Put it on the server's
    /// data folder's file system.
    #[arg(long)]
    disk_probe: Option<std::path::PathBuf>,
}

/// Where the server keeps its data, to sample its size (the global
/// `--data-dir` and `--database-url` flags).
#[derive(Clone, Debug, Default)]
pub struct Storage {
    pub data_dir: Option<std::path::PathBuf>,
    pub database_url: Option<String>,
}

impl Storage {
    pub fn of(data_dir: &Option<std::path::PathBuf>, database_url: &Option<String>) -> Storage {
        Storage { data_dir: data_dir.clone(), database_url: database_url.clone() }
    }
}

struct ProcStat {
    rss_kib: u64,
    /// VmRSS's parts: the heap and stacks, mapped files, shared memory
    /// (SQLite's WAL index); 0 where the kernel does not say.
    rss_parts_kib: [u64; 3],
    cpu_seconds: f64,
}

/// The RSS and CPU time of several processes, added up (None without pids).
fn procs_stat(pids: &[u32]) -> anyhow::Result<Option<ProcStat>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut total = ProcStat { rss_kib: 0, rss_parts_kib: [0; 3], cpu_seconds: 0.0 };
    for pid in pids {
        let s = proc_stat(*pid)?;
        total.rss_kib += s.rss_kib;
        for (t, p) in total.rss_parts_kib.iter_mut().zip(s.rss_parts_kib) {
            *t += p;
        }
        total.cpu_seconds += s.cpu_seconds;
    }
    Ok(Some(total))
}

fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the server's /proc status")?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find_map(|l| l.strip_prefix(name))?.split_whitespace().next()?.parse().ok()
    };
    let rss_kib = field("VmRSS:").context("no VmRSS in /proc status")?;
    let rss_parts_kib = ["RssAnon:", "RssFile:", "RssShmem:"].map(|f| field(f).unwrap_or(0));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading the server's /proc stat")?;
    // Fields after the parenthesised command name; utime and stime are 14th and 15th overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ProcStat { rss_kib, rss_parts_kib, cpu_seconds: ticks / 100.0 })
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

/// Connects to `/api/ws` under `base` and authenticates in the first
/// frame: with a patron's chat token, or bare with a staff cookie.
async fn connect(base: &str, cookie: Option<&str>, token: Option<&str>) -> anyhow::Result<Socket> {
    let mut ws = open_socket(&format!("{}/api/ws", ws_url(base)), cookie).await?;
    ws.send(Ws::text(json!({"type": "auth", "token": token}).to_string())).await?;
    Ok(ws)
}

/// Opens a WebSocket to `url`, from the next loopback source address.
async fn open_socket(url: &str, cookie: Option<&str>) -> anyhow::Result<Socket> {
    let mut req = url.into_client_request()?;
    if let Some(c) = cookie {
        req.headers_mut().insert("Cookie", c.parse()?);
    }
    let (ws, _) = match from_address(&req) {
        // Spread over loopback source addresses, as real patrons come from
        // many: the server caps connections and sockets per address.
        Some((from, to)) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::from((from, 0)))?;
            let tcp = socket.connect(to).await.with_context(|| format!("connecting to {url}"))?;
            tcp.set_nodelay(true)?;
            let stream = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
            tokio_tungstenite::client_async_with_config(req, stream, None)
                .await
                .with_context(|| format!("connecting to {url}"))?
        }
        None => tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .with_context(|| format!("connecting to {url}"))?,
    };
    Ok(ws)
}

/// The longest a run, a sample period or a chat may be given (seconds).
const DAY_SECONDS: u64 = 24 * 3600;

/// Sockets opened from each loopback source address (the server allows
/// 128 per address by default).
const SOCKETS_PER_SOURCE: usize = 64;

/// For a target on 127.0.0.1: the next source address in 127.1.0.0/16
/// (all of 127.0.0.0/8 is this machine's) and the target's address.
fn from_address(
    req: &tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Option<([u8; 4], std::net::SocketAddr)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static OPENED: AtomicUsize = AtomicUsize::new(0);
    let uri = req.uri();
    let host: std::net::Ipv4Addr = uri.host()?.parse().ok()?;
    if !host.is_loopback() {
        return None;
    }
    let n = OPENED.fetch_add(1, Ordering::Relaxed) / SOCKETS_PER_SOURCE;
    let from = [127, 1, (n / 250 % 250) as u8, (n % 250 + 1) as u8];
    Some((from, std::net::SocketAddr::from((host, uri.port_u16()?))))
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
pub async fn run(args: BenchArgs, storage: Storage) -> anyhow::Result<()> {
    check_args(&args)?;
    let base = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder().cookie_store(true).build()?;
    if let Some(n) = args.idle {
        return match args.relay {
            true => idle_relay(&base, &args, n).await,
            false => idle(&http, &base, &args, n).await,
        };
    }
    let sizes = Sizes::open(&storage).await?;
    let (pairs, desk) = match args.relay {
        true => (relay_pairs(&base, args.chats).await?, None),
        false => {
            let (pairs, desk) = chat_pairs(&http, &base, &args).await?;
            (pairs, Some(desk))
        }
    };
    measure(&args, pairs, desk, sizes).await
}

/// Starts and accepts `--chats` chats and opens both sides' sockets on each.
async fn chat_pairs(http: &reqwest::Client, base: &str, args: &BenchArgs) -> anyhow::Result<(Vec<Pair>, Desk)> {
    let staff_base = args.staff_url.as_deref().unwrap_or(&args.url).trim_end_matches('/').to_owned();
    // The server holds each sign-in to a few sockets and one frame budget
    // (a person at a desk): the bench librarian signs in once for every
    // few chats, as many librarians would be. A staff member's sockets
    // together have five sign-ins' worth: past a few chats the server must
    // run with `frames_per_second` lifted, as scripts/bench-*.sh do.
    let fastest = args.rates.iter().copied().fold(args.rate, f64::max);
    let per_sign_in = args.chats_per_sign_in.unwrap_or(((15.0 / fastest).floor() as usize).clamp(1, 4)).max(1);
    let mut cookies = Vec::new();
    for _ in 0..args.chats.div_ceil(per_sign_in) {
        cookies.push(sign_in(http, &staff_base, &args.username, &args.password).await?);
    }

    on_duty(http, &staff_base).await?;
    println!("starting {} chats…", args.chats);
    let chats = start_chats(http, base, &args.library, args.chats).await?;
    let desk = Desk {
        http: http.clone(),
        base: base.to_owned(),
        staff_base,
        cookies: Arc::new(cookies),
        per_sign_in,
        library: args.library.clone(),
        by_chat: args.by_chat,
    };
    let mut pairs = Vec::with_capacity(chats.len());
    for (i, c) in chats.into_iter().enumerate() {
        pairs.push(desk.open(c, i).await?);
    }
    Ok((pairs, desk))
}

/// Opens `n` pairs of sockets on the bare relay.
async fn relay_pairs(base: &str, n: usize) -> anyhow::Result<Vec<Pair>> {
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let patron = open_socket(&format!("{}/relay/{i}/patron", ws_url(base)), None).await?;
        let staff = open_socket(&format!("{}/relay/{i}/staff", ws_url(base)), None).await?;
        pairs.push(Pair { session: i as i64, patron, staff });
    }
    Ok(pairs)
}

/// Sends on every pair for `--duration` and reports what arrived.
async fn measure(args: &BenchArgs, pairs: Vec<Pair>, desk: Option<Desk>, sizes: Sizes) -> anyhow::Result<()> {
    if !args.rates.is_empty() {
        return sweep(args, pairs).await;
    }
    println!("{} sockets open; sending for {} s at {} msg/s per side", pairs.len() * 2, args.duration, args.rate);

    let probe = args.disk_probe.as_deref().map(DiskProbe::start).transpose()?;
    let before = procs_stat(&args.server_pid)?;
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs(args.duration);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let window = Arc::new(Mutex::new(Window::default()));
    let sampler = args.sample_seconds.map(|every| {
        let sampler = Sampler {
            every: Duration::from_secs(every),
            pids: args.server_pid.clone(),
            sizes,
            window: window.clone(),
            csv: args.samples_csv.clone(),
        };
        tokio::spawn(sampler.run(t0, stop))
    });
    let n = pairs.len();
    let mut tasks = Vec::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        let slot = Slot { desk: desk.clone(), window: window.clone(), t0, stop, period, i };
        // Chats end one after another, not all at once: the first ends
        // after a share of --chat-seconds that grows with its place.
        let first = args.chat_seconds.map(|s| Duration::from_secs(s).mul_f64((i + 1) as f64 / n as f64));
        tasks.push(tokio::spawn(slot.run(pair, first, args.chat_seconds.map(Duration::from_secs))));
    }
    let (mut sent, mut errors, mut chats_run) = (0u64, 0u64, 0u64);
    for t in tasks {
        let r = t.await??;
        sent += r.sent;
        errors += r.errors;
        chats_run += r.chats;
    }
    let elapsed = t0.elapsed().as_secs_f64().min(args.duration as f64 + 2.0);
    let after = procs_stat(&args.server_pid)?;
    let mut latencies = match sampler {
        Some(task) => task.await??,
        None => std::mem::take(&mut window.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.latencies_us),
    };
    latencies.sort_unstable();
    let totals = Totals { sent, errors, chats: chats_run, offered: 2.0 * args.chats as f64 * args.rate };
    let disk = probe.map(|p| p.take());
    report(&latencies, totals, args.duration, elapsed, (before, after), disk.as_deref());
    Ok(())
}

/// `--rates`: a phase at each rate in turn on the same sockets, each
/// reported on its own; stops after the first phase that is too slow.
async fn sweep(args: &BenchArgs, mut pairs: Vec<Pair>) -> anyhow::Result<()> {
    // One clock for every phase: a message of one phase delivered in the
    // next is counted there with its true latency.
    let epoch = Instant::now();
    let probe = args.disk_probe.as_deref().map(DiskProbe::start).transpose()?;
    let mut csv = match &args.latencies_csv {
        Some(path) => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
            writeln!(f, "offered,sent_us,latency_us")?;
            Some(f)
        }
        None => None,
    };
    for &rate in &args.rates {
        let offered = 2.0 * pairs.len() as f64 * rate;
        println!("=== phase: {rate} msg/s per side, {offered:.0} msg/s offered, {} s", args.duration);
        let window = Arc::new(Mutex::new(Window { sent_us: csv.is_some().then(Vec::new), ..Window::default() }));
        if let Some(p) = &probe {
            p.take(); // what the phase before it left
        }
        let before = procs_stat(&args.server_pid)?;
        let start = Instant::now();
        let stop = start + Duration::from_secs(args.duration);
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut tasks = Vec::new();
        for (i, Pair { session, patron, staff }) in pairs.drain(..).enumerate() {
            let w = window.clone();
            tasks.push(tokio::spawn(async move {
                let (p, s) = tokio::join!(
                    drive(patron, session, "patron", epoch, stop, stop, period, i, w.clone()),
                    drive(staff, session, "staff", epoch, stop, stop, period, i, w),
                );
                (session, p, s)
            }));
        }
        let (mut sent, mut errors) = (0, 0);
        for t in tasks {
            let (session, p, s) = t.await?;
            (sent, errors) = (sent + p.sent + s.sent, errors + p.errors + s.errors);
            let (Some(patron), Some(staff)) = (p.socket, s.socket) else { bail!("a socket broke during the sweep") };
            pairs.push(Pair { session, patron, staff });
        }
        let elapsed = start.elapsed().as_secs_f64().min(args.duration as f64 + 2.0);
        let after = procs_stat(&args.server_pid)?;
        let (mut latencies, sent_at) = {
            let mut w = window.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            (std::mem::take(&mut w.latencies_us), w.sent_us.take().unwrap_or_default())
        };
        if let Some(csv) = &mut csv {
            for (at, latency) in sent_at.iter().zip(&latencies) {
                writeln!(csv, "{offered:.0},{at},{latency}")?;
            }
        }
        latencies.sort_unstable();
        let p99_ms = percentile(&latencies, 0.99) as f64 / 1000.0;
        let undelivered = sent.saturating_sub(latencies.len() as u64);
        let disk = probe.as_ref().map(|p| p.take());
        report(
            &latencies,
            Totals { sent, errors, chats: pairs.len() as u64, offered },
            args.duration,
            elapsed,
            (before, after),
            disk.as_deref(),
        );
        if p99_ms >= args.stop_above_ms || undelivered > 0 {
            println!("the sweep stops: p99 {p99_ms:.2} ms, {undelivered} undelivered");
            break;
        }
    }
    if let Some(mut csv) = csv {
        csv.flush()?;
    }
    for p in pairs {
        for mut socket in [p.patron, p.staff] {
            let _ = socket.close(None).await;
        }
    }
    Ok(())
}

/// Puts the bench librarian on duty, so chats are offered to them.
async fn on_duty(http: &reqwest::Client, staff_base: &str) -> anyhow::Result<()> {
    http.post(format!("{staff_base}/api/me/availability"))
        .json(&json!({"availability": "on_duty"}))
        .send()
        .await?
        .error_for_status()
        .context("going on duty")?;
    Ok(())
}

/// What the load generator sent, in total.
struct Totals {
    sent: u64,
    errors: u64,
    chats: u64,
    /// Messages per second offered (both sides of every chat).
    offered: f64,
}

/// Refuses arguments the load generator cannot honour.
fn check_args(args: &BenchArgs) -> anyhow::Result<()> {
    check_loopback(&args.url)?;
    if let Some(url) = &args.staff_url {
        check_loopback(url)?;
    }
    if args.rates.iter().chain([&args.rate]).any(|r| !(*r > 0.0 && *r <= 1000.0)) {
        bail!("--rate must be between 0 and 1000 messages per second");
    }
    if args.relay && (args.chat_seconds.is_some() || args.staff_url.is_some()) {
        bail!("--relay drives the bare relay: it has no chats to end and no second node");
    }
    Ok(())
}

/// Prints a run's figures.
fn report(
    latencies: &[u64],
    t: Totals,
    duration: u64,
    elapsed: f64,
    (before, after): (Option<ProcStat>, Option<ProcStat>),
    disk: Option<&[u64]>,
) {
    let delivered = latencies.len() as u64;
    println!("chats: {}  sent: {}  delivered: {delivered}  errors: {}", t.chats, t.sent, t.errors);
    println!("throughput: {:.0} msg/s delivered", delivered as f64 / duration as f64);
    println!(
        "latency (send → delivered): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(latencies, 0.50) as f64 / 1000.0,
        percentile(latencies, 0.99) as f64 / 1000.0,
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    let mut cpu_per_message = None;
    if let (Some(b), Some(a)) = (before.as_ref(), after.as_ref()) {
        let cpu = a.cpu_seconds - b.cpu_seconds;
        cpu_per_message = (delivered > 0).then(|| cpu * 1e6 / delivered as f64);
        println!(
            "server: RSS {} KiB  CPU {:.2} s over {:.1} s ({:.1}% of one core)  {:.1} µs CPU per delivered message",
            a.rss_kib,
            cpu,
            elapsed,
            100.0 * cpu / elapsed,
            if delivered > 0 { cpu * 1e6 / delivered as f64 } else { 0.0 }
        );
    }
    if delivered < t.sent {
        println!("note: {} messages sent but not seen delivered before the end of the run", t.sent - delivered);
    }
    let mut disk_figures = String::new();
    if let Some(fsyncs) = disk {
        let (p99, max) = (percentile(fsyncs, 0.99), fsyncs.last().copied().unwrap_or(0));
        let slow = fsyncs.iter().filter(|us| **us >= 5_000).count();
        // The share of the phase the disk spent stalled beyond a limit: a
        // line sent then waits longer than the limit, so a share of 1 % or
        // more takes the phase's p99 past it, whatever the server does.
        let beyond = |limit_us: u64| {
            fsyncs.iter().map(|us| us.saturating_sub(limit_us)).sum::<u64>() as f64 / (duration as f64 * 1e6)
        };
        let (beyond_5, beyond_50) = (beyond(5_000), beyond(50_000));
        println!(
            "disk (the probe's fsyncs of 4 KiB, every 10 ms): {} fsyncs, p99 {:.2} ms, max {:.2} ms, {slow} of 5 ms or more; \
             stalled beyond 5 ms for {:.2} % of the phase, beyond 50 ms for {:.2} %",
            fsyncs.len(),
            p99 as f64 / 1000.0,
            max as f64 / 1000.0,
            100.0 * beyond_5,
            100.0 * beyond_50
        );
        if fsyncs.is_empty() {
            println!("note: the disk probe took no reading in this phase");
        }
        disk_figures = format!(
            " disk_p99_us={p99} disk_max_us={max} disk_slow={slow} disk_beyond_5ms={beyond_5:.5} disk_beyond_50ms={beyond_50:.5}"
        );
    }
    // One line for scripts (scripts/bench-pinned.sh).
    println!(
        "summary: offered={:.0} sent_rate={:.0} sent={} delivered={delivered} undelivered={} errors={} p50_us={} p99_us={} max_us={} cpu_us_per_msg={:.1} rss_kib={}{disk_figures}",
        t.offered,
        t.sent as f64 / duration as f64,
        t.sent,
        t.sent.saturating_sub(delivered),
        t.errors,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
        cpu_per_message.unwrap_or(0.0),
        after.map_or(0, |a| a.rss_kib),
    );
}

/// `--disk-probe`: a thread that writes 4 KiB to a file and fsyncs it every
/// 10 ms until dropped, keeping how long each fsync took.
struct DiskProbe {
    fsyncs_us: Arc<Mutex<Vec<u64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiskProbe {
    fn start(dir: &std::path::Path) -> anyhow::Result<DiskProbe> {
        let path = dir.join("refdesk-bench-disk-probe");
        let mut file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let (fsyncs_us, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let (kept, stopped) = (fsyncs_us.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("disk-probe".into()).spawn(move || {
            use std::io::Seek as _;
            let block = [0x2e_u8; 4096];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                // The same block again and again: the file never grows, as
                // SQLite's write-ahead log does not once it has its size.
                let wrote = file.rewind().and_then(|()| file.write_all(&block));
                let began = Instant::now();
                if let Err(e) = wrote.and_then(|()| file.sync_all()) {
                    eprintln!("the disk probe stops: {e}");
                    break;
                }
                if let Ok(mut k) = kept.lock() {
                    k.push(began.elapsed().as_micros() as u64);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::remove_file(&path);
        })?;
        Ok(DiskProbe { fsyncs_us, stop, thread: Some(thread) })
    }

    /// The fsyncs' times (µs, sorted) since the last call.
    fn take(&self) -> Vec<u64> {
        let mut all = self.fsyncs_us.lock().map(|mut k| std::mem::take(&mut *k)).unwrap_or_default();
        all.sort_unstable();
        all
    }
}

impl Drop for DiskProbe {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Within one fsync and 10 ms: the probe's file is then removed.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The value at `p` (0–1) of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// What the receivers collect between two samples.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    /// When each of `latencies_us` was sent (µs since the run began), kept
    /// only for `--latencies-csv`.
    sent_us: Option<Vec<u64>>,
}

/// How to start, accept, open and end chats: the patrons' node and the
/// signed-in librarian's.
#[derive(Clone)]
struct Desk {
    http: reqwest::Client,
    base: String,
    staff_base: String,
    /// The bench librarian's sign-ins, one for every `per_sign_in` chats.
    cookies: Arc<Vec<String>>,
    per_sign_in: usize,
    library: String,
    /// `--by-chat`: both sides of chat `i` on the `i % 2`nd node.
    by_chat: bool,
}

/// Signs the bench librarian in; the sign-in cookie.
async fn sign_in(http: &reqwest::Client, staff_base: &str, username: &str, password: &str) -> anyhow::Result<String> {
    let login = http
        .post(format!("{staff_base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await?
        .error_for_status()
        .context("signing in the bench librarian")?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?;
    Ok(cookie.to_owned())
}

/// A chat being driven: its session and both sides' sockets.
struct Pair {
    session: i64,
    patron: Socket,
    staff: Socket,
}

impl Desk {
    /// Accepts a started chat and opens both sides' sockets on it; `slot`
    /// chooses the sign-in the librarian's socket uses.
    async fn open(&self, chat: Chat, slot: usize) -> anyhow::Result<Pair> {
        let (patron_node, staff_node) = self.nodes(slot);
        self.http
            .post(format!("{staff_node}/api/sessions/{}/accept", chat.session))
            .send()
            .await?
            .error_for_status()
            .context("accepting a chat")?;
        let mut patron = connect(patron_node, None, Some(&chat.token)).await?;
        patron.send(Ws::text(json!({"type": "resume", "after": 1_000_000}).to_string())).await?;
        let cookie = &self.cookies[(slot / self.per_sign_in) % self.cookies.len()];
        let mut staff = connect(staff_node, Some(cookie), None).await?;
        staff
            .send(Ws::text(json!({"type": "resume", "session": chat.session, "after": 1_000_000}).to_string()))
            .await?;
        Ok(Pair { session: chat.session, patron, staff })
    }

    /// The nodes of slot `slot`'s patron and librarian.
    fn nodes(&self, slot: usize) -> (&str, &str) {
        match (self.by_chat, slot % 2) {
            (false, _) => (&self.base, &self.staff_base),
            (true, 0) => (&self.base, &self.base),
            (true, _) => (&self.staff_base, &self.staff_base),
        }
    }

    /// Ends slot `slot`'s chat as its librarian.
    async fn end(&self, session: i64, slot: usize) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/api/sessions/{session}/end", self.nodes(slot).1))
            .send()
            .await?
            .error_for_status()
            .context("ending a chat")?;
        Ok(())
    }

    /// Starts one more chat, for slot `slot`.
    async fn start(&self, slot: usize) -> anyhow::Result<Chat> {
        let mut chats = start_chats(&self.http, self.nodes(slot).0, &self.library, 1).await?;
        chats.pop().context("no chat started")
    }
}

/// One chat's place in the load: its chat, then (with --chat-seconds) the
/// chats that replace it.
struct Slot {
    /// None on the bare relay (no chats to end and start).
    desk: Option<Desk>,
    window: Arc<Mutex<Window>>,
    t0: Instant,
    stop: Instant,
    period: Duration,
    i: usize,
}

struct SlotResult {
    sent: u64,
    errors: u64,
    chats: u64,
}

impl Slot {
    async fn run(self, mut pair: Pair, first: Option<Duration>, every: Option<Duration>) -> anyhow::Result<SlotResult> {
        let mut total = SlotResult { sent: 0, errors: 0, chats: 0 };
        let mut life = first;
        loop {
            let until = life.map_or(self.stop, |l| (Instant::now() + l).min(self.stop));
            let Pair { session, patron, staff } = pair;
            let (p, s) = tokio::join!(
                drive(patron, session, "patron", self.t0, until, self.stop, self.period, self.i, self.window.clone()),
                drive(staff, session, "staff", self.t0, until, self.stop, self.period, self.i, self.window.clone()),
            );
            total.sent += p.sent + s.sent;
            total.errors += p.errors + s.errors;
            total.chats += 1;
            for mut socket in [p.socket, s.socket].into_iter().flatten() {
                let _ = socket.close(None).await;
            }
            if until >= self.stop {
                return Ok(total);
            }
            let desk = self.desk.as_ref().context("chats end and start only on refdesk")?;
            desk.end(session, self.i).await?;
            pair = desk.open(desk.start(self.i).await?, self.i).await?;
            life = every;
        }
    }
}

struct DriveResult {
    sent: u64,
    errors: u64,
    /// The socket, for the next phase of a sweep (None if it broke).
    socket: Option<Socket>,
}

/// Sends on one side of a chat until `until`, and records the latency of
/// what the other side sent. Messages still in flight at `until` are waited
/// for a moment (2 s after the end of the whole run).
#[allow(clippy::too_many_arguments)]
async fn drive(
    socket: Socket,
    session: i64,
    role: &'static str,
    t0: Instant,
    until: Instant,
    stop: Instant,
    period: Duration,
    i: usize,
    window: Arc<Mutex<Window>>,
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
            if Instant::now() >= until {
                break;
            }
            let us = t0.elapsed().as_micros();
            // Unique across a sweep's phases too: a re-used id is a re-send (I4).
            let cid = format!("{role}-{us}-{sent}");
            let frame = json!({"type": "send", "session": session, "client_id": cid, "body": format!("t={us}")});
            if tx.send(Ws::text(frame.to_string())).await.is_err() {
                break;
            }
            sent += 1;
        }
        (sent, tx)
    };
    let receiver = async move {
        let mut errors = 0u64;
        let deadline = if until >= stop { stop + Duration::from_secs(2) } else { until + Duration::from_millis(500) };
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), rx.next()).await {
            let Ws::Text(text) = msg else { continue };
            let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
            // refdesk delivers an `event`; the bare relay forwards the other
            // side's `send` frame as it is.
            let theirs = match &*f.kind {
                "event" => f.author.as_ref().is_none_or(|a| a.kind != role),
                "send" => true,
                _ => false,
            };
            match &*f.kind {
                "event" | "send" if theirs => {
                    if let Some(us) =
                        f.body.as_deref().and_then(|b| b.strip_prefix("t=")).and_then(|t| t.parse::<u128>().ok())
                    {
                        let latency = (t0.elapsed().as_micros().saturating_sub(us)) as u64;
                        if let Ok(mut w) = window.lock() {
                            w.latencies_us.push(latency);
                            if let Some(sent) = &mut w.sent_us {
                                sent.push(us as u64);
                            }
                        }
                    }
                }
                "error" => errors += 1,
                _ => {}
            }
        }
        (errors, rx)
    };
    let ((sent, tx), (errors, rx)) = tokio::join!(sender, receiver);
    DriveResult { sent, errors, socket: tx.reunite(rx).ok() }
}

/// What the receivers read of a frame: typed and borrowed, so that the load
/// generator, on one core, keeps up with the server it measures.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    author: Option<FrameAuthor<'a>>,
    #[serde(default, borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct FrameAuthor<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Reads how big the server's data is.
enum Sizes {
    None,
    /// The SQLite database file (its `-wal` and `-shm` beside it).
    Sqlite(std::path::PathBuf),
    Postgres(sqlx::PgPool),
}

/// One reading of the data's size, in bytes.
#[derive(Clone, Copy, Default)]
struct Size {
    db: u64,
    wal: u64,
    shm: u64,
}

impl Sizes {
    async fn open(storage: &Storage) -> anyhow::Result<Sizes> {
        if let Some(url) = &storage.database_url {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .context("connecting to PostgreSQL to read the database's size")?;
            return Ok(Sizes::Postgres(pool));
        }
        Ok(match &storage.data_dir {
            Some(dir) => Sizes::Sqlite(dir.join("refdesk.sqlite3")),
            None => Sizes::None,
        })
    }

    async fn read(&self) -> Option<Size> {
        match self {
            Sizes::None => None,
            Sizes::Sqlite(db) => {
                let len = |suffix: &str| {
                    let mut p = db.clone().into_os_string();
                    p.push(suffix);
                    std::fs::metadata(p).map_or(0, |m| m.len())
                };
                Some(Size { db: len(""), wal: len("-wal"), shm: len("-shm") })
            }
            Sizes::Postgres(pool) => {
                let (db, wal): (i64, i64) = sqlx::query_as(
                    "SELECT pg_database_size(current_database()), (SELECT coalesce(sum(size), 0)::bigint FROM pg_ls_waldir())",
                )
                .fetch_one(pool)
                .await
                .ok()?;
                Some(Size { db: db as u64, wal: wal as u64, shm: 0 })
            }
        }
    }
}

/// Prints a row of figures every `every` while the load runs.
struct Sampler {
    every: Duration,
    pids: Vec<u32>,
    sizes: Sizes,
    window: Arc<Mutex<Window>>,
    csv: Option<std::path::PathBuf>,
}

impl Sampler {
    /// Samples until the load stops; returns every latency seen.
    async fn run(self, t0: Instant, stop: Instant) -> anyhow::Result<Vec<u64>> {
        let mut csv = match &self.csv {
            Some(path) => {
                let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                writeln!(f, "seconds,delivered_per_s,p50_us,p99_us,cpu_us_per_msg,rss_kib,open_files,db_bytes,wal_bytes_max,shm_bytes")?;
                Some(f)
            }
            None => None,
        };
        println!();
        println!("| time | delivered msg/s | p50 | p99 | server CPU per msg | RSS | open files | database | WAL (max) | -shm |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let mut all = Vec::new();
        let mut last_cpu = procs_stat(&self.pids)?.map(|s| s.cpu_seconds);
        let mut row_began = Instant::now();
        let mut next_row = t0 + self.every;
        let mut max = Size::default();
        // Sizes are read every second, so the row's WAL is the largest seen.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            if let Some(size) = self.sizes.read().await {
                max = Size { db: size.db, wal: max.wal.max(size.wal), shm: size.shm };
            }
            // The last row closes at the end of the load (a shorter window).
            if now < next_row && now < stop {
                continue;
            }
            let mut lat = {
                let mut w = self.window.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                w.sent_us = None;
                std::mem::take(&mut w.latencies_us)
            };
            lat.sort_unstable();
            let secs = now.duration_since(row_began).as_secs_f64();
            let stat = procs_stat(&self.pids)?;
            let cpu = match (stat.as_ref(), last_cpu) {
                (Some(s), Some(l)) if !lat.is_empty() => Some((s.cpu_seconds - l) * 1e6 / lat.len() as f64),
                _ => None,
            };
            last_cpu = stat.as_ref().map(|s| s.cpu_seconds);
            let row = Row {
                at: now.duration_since(t0).as_secs(),
                rate: lat.len() as f64 / secs,
                p50: percentile(&lat, 0.50),
                p99: percentile(&lat, 0.99),
                cpu,
                rss_kib: stat.as_ref().map(|s| s.rss_kib),
                files: (!self.pids.is_empty()).then(|| self.pids.iter().map(|p| open_files(*p)).sum::<usize>()),
                size: self.sizes.read().await.map(|s| Size { wal: max.wal.max(s.wal), ..s }),
            };
            row.print();
            if let Some(f) = csv.as_mut() {
                row.write_csv(f)?;
            }
            all.extend(lat);
            max = Size::default();
            row_began = now;
            next_row += self.every;
            if now >= stop {
                // What arrives in the last 2 s of grace goes to the total.
                tokio::time::sleep(Duration::from_secs(2)).await;
                all.extend(std::mem::take(
                    &mut self.window.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.latencies_us,
                ));
                return Ok(all);
            }
        }
    }
}

/// One row of the sampler's table.
struct Row {
    /// Seconds since the load began.
    at: u64,
    /// Delivered messages per second.
    rate: f64,
    p50: u64,
    p99: u64,
    /// Server CPU per delivered message, µs.
    cpu: Option<f64>,
    rss_kib: Option<u64>,
    files: Option<usize>,
    size: Option<Size>,
}

impl Row {
    fn print(&self) {
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
        println!(
            "| {}:{:02} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {} | {} |",
            self.at / 60,
            self.at % 60,
            self.rate,
            self.p50 as f64 / 1000.0,
            self.p99 as f64 / 1000.0,
            self.cpu.map_or("–".into(), |c| format!("{c:.0} µs")),
            self.rss_kib.map_or("–".into(), |k| mib(k * 1024)),
            self.files.map_or("–".into(), |n| n.to_string()),
            self.size.map_or("–".into(), |s| mib(s.db)),
            self.size.map_or("–".into(), |s| mib(s.wal)),
            self.size.map_or("–".into(), |s| mib(s.shm)),
        );
    }

    fn write_csv(&self, f: &mut std::fs::File) -> std::io::Result<()> {
        let s = self.size.unwrap_or_default();
        writeln!(
            f,
            "{},{:.0},{},{},{:.1},{},{},{},{},{}",
            self.at,
            self.rate,
            self.p50,
            self.p99,
            self.cpu.unwrap_or(0.0),
            self.rss_kib.unwrap_or(0),
            self.files.unwrap_or(0),
            s.db,
            s.wal,
            s.shm
        )
    }
}

/// How many files a process has open (0 if it cannot be read).
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn idle(http: &reqwest::Client, base: &str, args: &BenchArgs, n: usize) -> anyhow::Result<()> {
    let pid = *args.server_pid.first().context("--idle needs --server-pid to read the server's memory")?;
    println!("starting {n} chats…");
    let chats = start_chats(http, base, &args.library, n).await?;
    let before = proc_stat(pid)?;
    let mut sockets = Vec::with_capacity(n);
    let mut marks = Vec::with_capacity(2);
    for part in [&chats[..n / 2], &chats[n / 2..]] {
        let first = sockets.len();
        for c in part {
            let mut p = connect(base, None, Some(&c.token)).await?;
            p.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await?;
            sockets.push(p);
        }
        // Let every connection finish its handshake and resume.
        for s in sockets[first..].iter_mut() {
            while let Some(Ok(m)) = s.next().await {
                if m.to_text().is_ok_and(|t| t.contains("\"synced\"")) {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        marks.push(proc_stat(pid)?);
    }
    report_idle("patron", n, &before, &marks[0], &marks[1]);
    drop(sockets);
    Ok(())
}

/// `--idle N --relay`: N sockets open on the bare relay, each without its
/// peer (the least a server holds per waiting patron), and its memory.
async fn idle_relay(base: &str, args: &BenchArgs, n: usize) -> anyhow::Result<()> {
    let pid = *args.server_pid.first().context("--idle needs --server-pid to read the server's memory")?;
    let before = proc_stat(pid)?;
    let mut sockets = Vec::with_capacity(n);
    let mut marks = Vec::with_capacity(2);
    for part in [0..n / 2, n / 2..n] {
        for i in part {
            sockets.push(open_socket(&format!("{}/relay/{i}/patron", ws_url(base)), None).await?);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        marks.push(proc_stat(pid)?);
    }
    report_idle("relay", n, &before, &marks[0], &marks[1]);
    drop(sockets);
    Ok(())
}

/// Prints what `n` idle connections cost the server, for people and scripts:
/// per connection over all `n` (from `before`, when none was open), and over
/// the second half alone (from `half`, when the first `n / 2` were open), which
/// leaves out what the server sets up once whatever the number of connections
/// (caches filled by the first reads, a thread's allocator) and so is what
/// each further connection costs.
fn report_idle(what: &str, n: usize, before: &ProcStat, half: &ProcStat, after: &ProcStat) {
    let per = (after.rss_kib.saturating_sub(before.rss_kib)) as f64 / n as f64;
    println!(
        "{n} idle {what} connections: server RSS {} KiB → {} KiB, {per:.1} KiB per connection",
        before.rss_kib, after.rss_kib
    );
    let part = |i: usize| after.rss_parts_kib[i].saturating_sub(before.rss_parts_kib[i]) as f64 / n as f64;
    println!(
        "  of which, per connection: heap {:.1} KiB, mapped files {:.1} KiB, shared memory {:.1} KiB",
        part(0),
        part(1),
        part(2)
    );
    let second = after.rss_kib.saturating_sub(half.rss_kib) as f64 / (n - n / 2).max(1) as f64;
    println!(
        "  the second half alone: server RSS {} KiB → {} KiB, {second:.1} KiB per connection",
        half.rss_kib, after.rss_kib
    );
    // What opening them cost: for a patron, the sign-in by token, the place
    // in line and the resume.
    let cpu_us = (after.cpu_seconds - before.cpu_seconds).max(0.0) * 1e6 / n.max(1) as f64;
    println!("  server CPU to open them: {cpu_us:.0} µs per connection");
    println!(
        "summary: idle={n} rss_before_kib={} rss_after_kib={} kib_per_connection={per:.1} \
         kib_per_connection_second_half={second:.1} cpu_us_per_connection={cpu_us:.0}",
        before.rss_kib, after.rss_kib
    );
}
