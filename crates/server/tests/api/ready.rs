//! `/readyz` says whether this node can do its work: a database that
//! answers reads but cannot commit (on SQLite, a writer that is stuck or
//! gone) is not ready, and the node is ready again by itself once it can.

use crate::helpers::spawn_app;
use std::time::{Duration, Instant};

async fn readyz(app: &crate::helpers::TestApp) -> (u16, String) {
    let r = reqwest::get(app.url("/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_database_cannot_commit_and_200_again_after() {
    let app = spawn_app().await;
    assert_eq!(readyz(&app).await, (200, "ready".into()));

    if app.dir.path().join("database_url").exists() {
        // PostgreSQL: `health` is a round trip on a pooled connection; a
        // database that is down is the restart tests' business.
        assert_eq!(readyz(&app).await.0, 200);
    } else {
        // Another process holds SQLite's write lock: reads go on (the old
        // check, a read, said ready), but nothing can commit.
        let other = rusqlite::Connection::open(app.dir.path().join("refdesk.sqlite3")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Until the writer's last commit is no longer fresh (1 s).
        let began = Instant::now();
        loop {
            let (status, body) = readyz(&app).await;
            if status == 503 {
                assert_eq!(body, "database cannot commit");
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(10), "still {status} {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(app.state.app.store().libraries().await.map(|l| !l.is_empty()).ok(), Some(true), "reads work");
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(readyz(&app).await, (200, "ready".into()), "ready again by itself");
    }

    // A store that has closed is not ready either.
    app.state.app.store().close().await;
    assert_eq!(readyz(&app).await.0, 503);
}
