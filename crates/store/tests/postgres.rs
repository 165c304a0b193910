//! The PostgreSQL store as two nodes use it: two stores on one database.
//! Each keeps copies of sessions for one-statement appends; a change made
//! through the other must never be acted on with a stale copy.

use refdesk_domain::chat::{Author, MessageKind};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::question::default_codes;
use refdesk_domain::DomainError;
use refdesk_store::postgres::{create_database, PgOptions, PgStore};
use refdesk_store::prelude::*;
use refdesk_store::{Ending, Guard, Handover, NewMessage, NewSession, NewStaff, NoSink, StoreError, TransferTo};
use std::sync::Arc;

async fn fresh_postgres() -> String {
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_twostores_{}_{nanos}", std::process::id());
    create_database(&server, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"))
}

fn said(by: &Staff, body: &str) -> NewMessage {
    NewMessage {
        author: Author::Staff { id: by.id, name: by.display_name.clone() },
        kind: MessageKind::Message,
        audience: MessageKind::Message.audience(),
        body: body.into(),
        client_id: None,
        system: None,
    }
}

/// The guard the app uses for a staff line: only the chatting librarian.
fn chatting(by: &Staff) -> Guard {
    let id = by.id;
    Box::new(
        move |rec| {
            if rec.ctx.librarian == Some(id) {
                Ok(())
            } else {
                Err(DomainError::Forbidden("not your chat"))
            }
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_on_one_node_is_never_missed_by_the_other_nodes_appends() {
    let url = fresh_postgres().await;
    let one = Arc::new(PgStore::open(&url, PgOptions::default(), Arc::new(NoSink)).await.unwrap());
    let two = Arc::new(PgStore::open(&url, PgOptions::default(), Arc::new(NoSink)).await.unwrap());
    let coop = one.create_cooperative("c", default_codes()).await.unwrap();
    let inst = one.create_institution(coop, "i").await.unwrap();
    let lib = one.create_library(inst, "lib", "Library").await.unwrap();
    let mut staff = Vec::new();
    for name in ["ann", "ben"] {
        let new = NewStaff {
            library: lib.placement.library,
            username: name.into(),
            display_name: name.into(),
            role: Role::Librarian,
            password_hash: "x".into(),
        };
        let id = one.create_staff(new).await.unwrap();
        staff.push(one.staff_by_id(id).await.unwrap().unwrap());
    }
    let (ann, ben) = (staff[0].clone(), staff[1].clone());
    let new = NewSession {
        library: lib.placement.library,
        patron_name: None,
        patron_email: None,
        question: "q".into(),
        token_hash: "t".into(),
        transcript_to: None,
        keys: Default::default(),
        max_waiting: u32::MAX,
        max_waiting_per_net: u32::MAX,
        now: 1,
    };
    let id = one.start_session(new).await.unwrap().0.ctx.id;
    one.accept(id, ann.clone(), Box::new(|_| Ok(())), 2).await.unwrap();

    // Node one appends twice (the second on its copy).
    one.append(id, said(&ann, "a"), chatting(&ann), 3).await.unwrap();
    one.append(id, said(&ann, "b"), chatting(&ann), 4).await.unwrap();

    // Node two hands the chat to Ben: node one's copy of it is now stale.
    let line = said(&ben, "Ben takes over");
    let handover = Handover { to: TransferTo::Staff(ben.clone()), stay: false, line };
    two.transfer(id, ben.clone(), handover, Box::new(|_| Ok(())), 5).await.unwrap();
    let refused = one.append(id, said(&ann, "still mine?"), chatting(&ann), 6).await;
    assert!(matches!(refused, Err(StoreError::Domain(DomainError::Forbidden(_)))), "{refused:?}");
    // …and Ben, through node one, may write: the copy was read again.
    let ok = one.append(id, said(&ben, "hello from Ben"), chatting(&ben), 7).await.unwrap();
    assert!(!ok.duplicate);

    // Node two ends the chat; node one's next append is refused.
    let end = two.end(id, Author::System, Box::new(|_| Ok(())), Box::new(|_, _| None), Ending::default(), 8).await;
    end.unwrap();
    let after_end = one.append(id, said(&ben, "too late"), chatting(&ben), 9).await;
    assert!(matches!(after_end, Err(StoreError::Domain(DomainError::Conflict(_)))), "{after_end:?}");

    // Sequence numbers from both stores: one order, no gap.
    let seqs: Vec<u64> = two.messages_after(id, 0, 100).await.unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let bodies: Vec<String> = two.messages_after(id, 0, 100).await.unwrap().into_iter().map(|m| m.body).collect();
    assert!(!bodies.iter().any(|b| b == "still mine?" || b == "too late"), "{bodies:?}");
}
