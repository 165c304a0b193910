//! The pinned benchmark's parts on the real binary (scripts/bench-pinned.sh
//! drives them): `refdesk bench-relay` relays every frame of a pair to the
//! other side, and `refdesk bench --rates` runs one phase per rate on the
//! same sockets — against the relay and against refdesk — each phase with a
//! `summary:` line in which every message sent was delivered (a phase that
//! re-used the previous phase's client ids would see them taken for
//! re-sends, I4, and never delivered).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_refdesk");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `refdesk` with `args` (`{port}` in them: a free port) and waits
/// until it listens: `(the process, its port)`. Another test's server may
/// take the port between its choice and the bind (tests run at once): a
/// process that exits at its start is started again on another port, and
/// one that answered the connect check must still be running after it (the
/// check may have reached the other one).
fn start(args: &[&str], data: &Path) -> (Running, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(data)
            .args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.env("REFDESK_LOG", "warn").env("REFDESK_DRAIN_SECONDS", "0");
        // The load generator starts its chats and signs in from one address.
        cmd.env("REFDESK_STARTS_PER_MINUTE", "1000")
            .env("REFDESK_CHATS_PER_ADDRESS_PER_DAY", "100000")
            .env("REFDESK_STARTS_PER_LIBRARY_PER_DAY", "100000000")
            .env("REFDESK_PATRON_FRAMES_PER_SECOND_PER_ADDRESS", "1000000")
            .env("REFDESK_LOGINS_PER_MINUTE", "1000");
        cmd.env("REFDESK_MAX_WAITING_PER_ADDRESS", "1000");
        cmd.env("REFDESK_MAX_CHAT_LINES", "1000000").env("REFDESK_PATRON_CHARS_PER_CHAT", "100000000");
        // Its desk accepts every chat at once from one sign-in (a staff write each).
        cmd.env("REFDESK_FRAMES_PER_SECOND", "100000")
            .env("REFDESK_FRAME_BURST", "10000")
            .env("REFDESK_STAFF_LINES_PER_DAY", "10000000");
        cmd.env("REFDESK_STAFF_READS_PER_SECOND", "100000").env("REFDESK_SIGN_INS_PER_ACCOUNT", "1000");
        let mut child = Running(cmd.spawn().expect("the server starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let exited = |c: &mut Running| c.0.try_wait().expect("the server's state").is_some();
        loop {
            if exited(&mut child) {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                std::thread::sleep(Duration::from_millis(200));
                if exited(&mut child) {
                    break;
                }
                return (child, port);
            }
            assert!(Instant::now() < deadline, "nothing listens on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("the server exited at its start five times (its port taken each time?)");
}

/// Runs the load generator; its `summary:` lines, as maps. What is tested
/// is that every phase runs and delivers everything, not how fast: a sweep
/// stops on latency only past 10 s (a busy CI machine may hold a message
/// of a short phase beyond the default 50 ms).
fn bench(args: &[&str]) -> Vec<HashMap<String, f64>> {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--stop-above-ms", "10000"])
        .output()
        .expect("the load generator runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("summary: "))
        .map(|l| {
            l.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("key=value");
                    (k.to_owned(), v.parse().expect("a number"))
                })
                .collect()
        })
        .collect()
}

fn assert_phases(phases: &[HashMap<String, f64>], offered: &[f64]) {
    assert_eq!(phases.len(), offered.len(), "one summary per phase: {phases:?}");
    for (p, want) in phases.iter().zip(offered) {
        assert_eq!(p["offered"], *want);
        assert!(p["sent"] > 0.0, "{p:?}");
        assert_eq!(p["delivered"], p["sent"], "every message sent is delivered: {p:?}");
        assert_eq!(p["undelivered"], 0.0);
        assert_eq!(p["errors"], 0.0);
        // (Its CPU time too, in ticks of 10 ms: a short phase may show none.)
        assert!(p["rss_kib"] > 0.0, "the server's /proc figures are read: {p:?}");
    }
}

#[test]
fn the_bare_relay_carries_every_frame_of_a_sweep_to_the_other_side() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, port) = start(&["bench-relay", "--listen", "127.0.0.1:{port}"], dir.path());
    let url = format!("http://127.0.0.1:{port}");
    let pid = relay.0.id().to_string();
    let phases =
        bench(&["--relay", "--url", &url, "--chats", "20", "--duration", "1", "--rates", "2,4", "--server-pid", &pid]);
    assert_phases(&phases, &[80.0, 160.0]);
}

#[test]
fn a_sweep_on_refdesk_delivers_every_message_of_every_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = start(&["serve", "--demo", "--listen", "127.0.0.1:{port}"], dir.path());
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let pid = server.0.id().to_string();
    let (probe, csv) = (tempfile::tempdir().unwrap(), dir.path().join("latencies.csv"));
    let phases = bench(&[
        "--url",
        &url,
        "--chats",
        "10",
        "--duration",
        "1",
        "--rates",
        "2,4",
        "--server-pid",
        &pid,
        "--disk-probe",
        probe.path().to_str().unwrap(),
        "--latencies-csv",
        csv.to_str().unwrap(),
    ]);
    assert_phases(&phases, &[40.0, 80.0]);
    // The disk probe fsynced through each phase (every 10 ms: dozens in a
    // second), and its file is gone.
    for p in &phases {
        assert!(p["disk_max_us"] >= p["disk_p99_us"] && p["disk_max_us"] > 0.0, "{p:?}");
        assert!((0.0..=1.0).contains(&p["disk_beyond_5ms"]) && p["disk_beyond_50ms"] <= p["disk_beyond_5ms"], "{p:?}");
    }
    assert_eq!(std::fs::read_dir(probe.path()).unwrap().count(), 0, "the probe's file is removed");
    // One row per delivered message, in its phase.
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<u64>> =
        text.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().expect("a number")).collect()).collect();
    assert_eq!(text.lines().next(), Some("offered,sent_us,latency_us"));
    for (offered, phase) in [(40, &phases[0]), (80, &phases[1])] {
        let n = rows.iter().filter(|r| r[0] == offered).count();
        assert_eq!(n as f64, phase["delivered"], "each delivered message of the {offered} msg/s phase has its row");
    }
}

/// `--idle N`: N waiting patrons open, each signed in and resumed, and what
/// they cost the server — per connection over all N and over the second half
/// alone, and the CPU to open them — on refdesk and on the relay alike.
#[test]
fn idle_connections_are_measured_over_all_and_over_the_second_half() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = start(&["serve", "--demo", "--listen", "127.0.0.1:{port}"], dir.path());
    let listen = format!("127.0.0.1:{port}");
    let pid = server.0.id().to_string();
    let patrons = bench(&["--url", &format!("http://{listen}"), "--idle", "40", "--server-pid", &pid]);
    let (relay, relay_port) = start(&["bench-relay", "--listen", "127.0.0.1:{port}"], dir.path());
    let relay_pid = relay.0.id().to_string();
    let sockets = bench(&[
        "--relay",
        "--url",
        &format!("http://127.0.0.1:{relay_port}"),
        "--idle",
        "40",
        "--server-pid",
        &relay_pid,
    ]);
    for summary in [&patrons, &sockets] {
        assert_eq!(summary.len(), 1, "one summary line: {summary:?}");
        let s = &summary[0];
        assert_eq!(s["idle"], 40.0);
        assert!(s["rss_after_kib"] > 0.0 && s["rss_before_kib"] > 0.0, "{s:?}");
        for key in ["kib_per_connection", "kib_per_connection_second_half", "cpu_us_per_connection"] {
            assert!(s[key] >= 0.0, "{key} in {s:?}");
        }
    }
}

#[test]
fn lengths_past_a_day_or_of_nothing_are_refused_before_anything_runs() {
    for (flag, value) in [
        ("--duration", "18446744073709551615"),
        ("--duration", "0"),
        ("--chat-seconds", "86401"),
        ("--sample-seconds", "0"),
    ] {
        let out = Command::new(BIN).args(["bench", flag, value]).output().expect("the load generator runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(flag) && err.contains("1..=86400"), "{flag} {value}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = Command::new(BIN).args(["bench-reports", "generate", "--year", "300000000000000"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("1970..=9999"), "{err}");
}
