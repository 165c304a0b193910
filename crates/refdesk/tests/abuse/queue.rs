//! The open queue and the patron-triggered mail: a flood of starts from
//! many addresses, transcripts of chats nobody accepted, and a blocked
//! patron — each against the real binary with its default limits.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Ann, signed in and on duty (only staff on duty are offered chats).
async fn ann_on_duty(server: &Server) -> reqwest::Client {
    let ann = sign_in(server, "ann").await;
    let (status, _) = post(&ann, server.url("/api/me/availability"), json!({"availability": "on_duty"})).await;
    assert_eq!(status, 200);
    ann
}

async fn start_from(server: &Server, from: [u8; 4], body: Value) -> (u16, Value) {
    let r = client_from(from).post(server.url("/api/libraries/riverside-main/chats")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The run: 30 addresses × 21 starts at once. With the defaults
/// (20 waiting chats per network, 600 per library queue) exactly 600 wait;
/// the 601st, from a fresh address, is refused; librarians and another
/// library's patrons are served throughout.
#[tokio::test]
async fn a_queue_flood_from_thirty_addresses_stops_at_the_librarys_cap() {
    let server = Server::start("", &[]).await;
    let ann = ann_on_duty(&server).await;
    let flood: Vec<_> = (0..30u8)
        .map(|a| {
            let server_url = server.url("/api/libraries/riverside-main/chats");
            tokio::spawn(async move {
                let client = client_from([127, 0, 1, 10 + a]);
                let mut codes = Vec::new();
                for n in 0..21 {
                    let r = client
                        .post(&server_url)
                        .json(&json!({"question": format!("flood {a}/{n}")}))
                        .send()
                        .await
                        .unwrap();
                    codes.push(r.status().as_u16());
                }
                codes
            })
        })
        .collect();
    // Served while it runs: the librarian's queue, another library's patron.
    let t = Instant::now();
    let r = ann.get(server.url("/api/queue")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = post(
        &client_from([127, 0, 2, 1]),
        server.url("/api/libraries/lakeside-public/chats"),
        json!({"question": "Opening hours?"}),
    )
    .await;
    assert_eq!(status, 201, "another library's patron is served during the flood");
    assert!(t.elapsed() < Duration::from_secs(5), "and promptly ({:?})", t.elapsed());

    let mut created = 0;
    for task in flood {
        let codes = task.await.unwrap();
        assert_eq!(codes.iter().filter(|&&c| c == 201).count(), 20, "20 per address: {codes:?}");
        assert!(codes.iter().all(|&c| c == 201 || c == 429), "{codes:?}");
        created += 20;
    }
    assert_eq!(created, 600);
    let (status, refused) = start_from(&server, [127, 0, 3, 1], json!({"question": "the 601st"})).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "queue_full");
    // The desk's list shows the first 300 in line; the metrics count them all.
    let queue: Vec<Value> = ann.get(server.url("/api/queue")).send().await.unwrap().json().await.unwrap();
    assert_eq!(queue.len(), 300, "the first 300 in line");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let waiting = metrics
        .lines()
        .find(|l| l.starts_with("refdesk_chats{") && l.contains("riverside-main") && l.contains("waiting"))
        .and_then(|l| l.rsplit(' ').next())
        .map(|n| n.parse::<f64>().unwrap());
    assert_eq!(waiting, Some(600.0), "no more than the cap waits");
    assert!(server.healthy_within(Duration::from_secs(2)).await);
}

/// Anyone may ask for a transcript to any address and end at once: nothing
/// is mailed unless a librarian accepted the chat (control: an accepted
/// chat's transcript is).
#[tokio::test]
async fn transcripts_of_chats_nobody_accepted_mail_nothing() {
    let server = Server::start("", &[]).await;
    let mail = server.data_path().join("mail");
    let files = || std::fs::read_dir(&mail).map(|d| d.count()).unwrap_or(0);
    for n in 0..5u8 {
        let (status, v) = start_from(
            &server,
            [127, 0, 4, n],
            json!({"question": "spam", "email": format!("victim{n}@example.org"), "transcript": true}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        let r = reqwest::Client::new()
            .post(server.url("/api/chat/end"))
            .bearer_auth(v["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (status, v) = start_from(
        &server,
        [127, 0, 4, 9],
        json!({"question": "real", "email": "reader@example.org", "transcript": true}),
    )
    .await;
    assert_eq!(status, 201);
    let ann = ann_on_duty(&server).await;
    let session = v["session"].as_i64().unwrap();
    assert_eq!(ann.post(server.url(&format!("/api/sessions/{session}/accept"))).send().await.unwrap().status(), 200);
    assert_eq!(ann.post(server.url(&format!("/api/sessions/{session}/end"))).send().await.unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while files() < 1 {
        assert!(Instant::now() < deadline, "the accepted chat's transcript is mailed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(files(), 1, "only the accepted chat's transcript went out");
    let only = std::fs::read_dir(&mail).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(only).unwrap();
    assert!(text.contains("reader@example.org") && !text.contains("victim"), "{text}");
}

/// A blocked patron cannot start a chat, from another browser on the same
/// network nor with the same browser elsewhere; others are served.
#[tokio::test]
async fn a_blocked_patron_cannot_start_a_chat() {
    let server = Server::start("", &[]).await;
    let browser = "5c2f9a0b7e3d4c1a8f6b2e9d0c7a3f51";
    let (status, v) = start_from(&server, [127, 0, 5, 1], json!({"question": "abuse", "browser": browser})).await;
    assert_eq!(status, 201);
    let ann = ann_on_duty(&server).await;
    let session = v["session"].as_i64().unwrap();
    assert_eq!(ann.post(server.url(&format!("/api/sessions/{session}/accept"))).send().await.unwrap().status(), 200);
    let (status, block) =
        post(&ann, server.url(&format!("/api/sessions/{session}/block")), json!({"reason": "abuse"})).await;
    assert_eq!(status, 201, "{block}");
    for (from, b) in [([127, 0, 5, 1], None), ([127, 0, 5, 2], Some(browser))] {
        let (status, refused) = start_from(&server, from, json!({"question": "again", "browser": b})).await;
        assert_eq!(status, 403, "{refused}");
        assert_eq!(refused["error"]["code"], "blocked");
    }
    assert_eq!(start_from(&server, [127, 0, 5, 3], json!({"question": "someone else"})).await.0, 201);
}

/// A full queue flooded from 300 networks at once (20 starts each, all
/// refused) is the node serving as it should, not a node to take out of
/// rotation: `/readyz`, probed through the flood as a load balancer does
/// (every second, giving up after 5: the probe's connection waits its turn
/// with the flood's), answers 200 every time. It answered
/// 503 `database not answering` for seconds: its check waited behind the
/// flood's reads, then to be polled among the flood's thousands of tasks.
#[tokio::test]
async fn a_flood_of_refused_starts_leaves_the_node_ready() {
    // 6,000 requests at once, each its own socket; the soft limit may be 1,024.
    let files = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(files >= 16_384, "this test opens 6,000 sockets: raise the open-file limit (ulimit -Hn is {files})");
    let server = Server::start("", &[]).await;
    // Fill the library's queue (600) from 30 networks.
    let fill: Vec<_> = (0..30u8)
        .map(|a| {
            let url = server.url("/api/libraries/riverside-main/chats");
            tokio::spawn(async move {
                let client = client_from([127, 0, 4, 10 + a]);
                for n in 0..20 {
                    let r = client.post(&url).json(&json!({"question": format!("fill {a}/{n}")})).send().await;
                    assert_eq!(r.unwrap().status(), 201);
                }
            })
        })
        .collect();
    for task in fill {
        task.await.unwrap();
    }
    let flood: Vec<_> = (0..300u16)
        .flat_map(|a| {
            let client = client_from([127, 0, 5 + (a / 200) as u8, (a % 200) as u8 + 10]);
            (0..20).map(move |n| (client.clone(), format!("flood {a}/{n}")))
        })
        .map(|(client, question)| {
            let url = server.url("/api/libraries/riverside-main/chats");
            tokio::spawn(async move {
                client.post(&url).json(&json!({"question": question})).send().await.map(|r| r.status().as_u16())
            })
        })
        .collect();
    let probe = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let (mut answers, mut flooding) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let r = probe.get(server.url("/readyz")).send().await;
        answers.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
        flooding.push(flood.iter().filter(|t| !t.is_finished()).count());
    }
    assert!(flooding[0] > 0, "the probes ran while the flood did (starts unanswered: {flooding:?})");
    let mut refused = 0;
    for task in flood {
        if let Ok(Ok(code)) = task.await {
            assert_ne!(code, 201, "the queue is full");
            refused += 1;
        }
    }
    assert!(refused > 5_000, "the flood was answered ({refused} of 6,000)");
    assert_eq!(answers, [200, 200, 200, 200], "/readyz through the flood");
}
