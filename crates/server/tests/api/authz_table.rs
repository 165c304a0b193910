//! The authorization table (I5): every operation × every role × where the
//! staff member's library lies relative to the patron's (the same library,
//! another library of the institution, another institution of the
//! cooperative, another cooperative) → allowed or refused. A refused call
//! changes nothing.

use crate::helpers::{spawn_app, TestApp};
use refdesk_domain::ids::{QuestionId, SessionId};
use refdesk_domain::org::Role;
use refdesk_domain::question::default_codes;
use serde_json::{json, Value};

#[derive(Copy, Clone, Debug, PartialEq)]
enum Where {
    SameLibrary,
    SameInstitution,
    SameCooperative,
    OtherCooperative,
}

const WHERE: [Where; 4] = [Where::SameLibrary, Where::SameInstitution, Where::SameCooperative, Where::OtherCooperative];

fn library(w: Where) -> &'static str {
    match w {
        Where::SameLibrary => "riverside-main",
        Where::SameInstitution => "riverside-law",
        Where::SameCooperative => "lakeside-public",
        Where::OtherCooperative => "faraway-city",
    }
}

/// A question's page or action: `200` in scope; outside it `403` within
/// the cooperative, `404` in another (question numbers count over the
/// whole service: a `403` told another cooperative's which exist).
fn question_refused(cov: bool, w: Where) -> u16 {
    match (cov, w) {
        (true, _) => 200,
        (false, Where::OtherCooperative) => 404,
        (false, _) => 403,
    }
}

/// The specification, written out independently of the code: whether a
/// role's scope covers the patron's library.
fn covers(role: Role, w: Where) -> bool {
    match role {
        Role::Librarian | Role::LibraryAdmin => w == Where::SameLibrary,
        Role::InstitutionAdmin => matches!(w, Where::SameLibrary | Where::SameInstitution),
        Role::CooperativeAdmin => w != Where::OtherCooperative,
    }
}

/// Everything a refused call must leave untouched.
async fn snapshot(app: &TestApp, session: i64, question: i64) -> Value {
    let s = &app.state.app.store();
    let messages = s.messages_after(SessionId(session), 0, u32::MAX).await.unwrap();
    let timeline = s.timeline(QuestionId(question)).await.unwrap();
    let q = s.question(QuestionId(question)).await.unwrap().unwrap();
    let rec = s.session(SessionId(session)).await.unwrap().unwrap();
    let staff = s.staff_of(refdesk_domain::ids::CooperativeId(1)).await.unwrap().len();
    json!({"messages": messages, "timeline": timeline, "question": q, "session": rec, "staff": staff})
}

async fn setup(app: &TestApp) {
    // A second cooperative, for "another cooperative".
    let s = &app.state.app.store();
    let coop = s.create_cooperative("Faraway Cooperative", default_codes()).await.unwrap();
    let inst = s.create_institution(coop, "Faraway City").await.unwrap();
    s.create_library(inst, "faraway-city", "Faraway City Library").await.unwrap();
    for role in Role::ALL {
        for w in WHERE {
            let name = format!("{}-{}", role.as_str().replace('_', "-"), library(w));
            app.state.app.add_staff(None, library(w), &name, &name, role, "table passphrase 2026").await.unwrap();
        }
    }
}

#[tokio::test]
async fn every_operation_by_every_role_in_and_out_of_scope_is_allowed_or_refused_as_designed() {
    let app = spawn_app().await;
    setup(&app).await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "the table's chat").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let s = patron.session;
    let q = ann.question_of(s).await["id"].as_i64().unwrap();

    let mut checked = 0;
    for role in Role::ALL {
        for w in WHERE {
            let who = format!("{}-{}", role.as_str().replace('_', "-"), library(w));
            let actor = app.staff_with_password(&who, "table passphrase 2026").await;
            let cov = covers(role, w);
            let admin = role >= Role::LibraryAdmin;
            let conf = role >= Role::InstitutionAdmin;
            // Only the chatting librarian (Ann) writes, ends or transfers:
            // forbidden in scope, not found outside it.
            let not_theirs = if cov { 403 } else { 404 };
            let waiting = app.start_chat("riverside-main", "a waiting chat").await;
            // (operation, method, path, body, expected status)
            let table: Vec<(&str, &str, String, Value, u16)> = vec![
                ("view the session", "GET", format!("/api/sessions/{s}"), json!(null), if cov { 200 } else { 404 }),
                ("read the question", "GET", format!("/api/questions/{q}"), json!(null), question_refused(cov, w)),
                (
                    "add a note from the question list",
                    "POST",
                    format!("/api/questions/{q}/note"),
                    json!({"body": "table note", "confirm_live": true}),
                    question_refused(cov, w),
                ),
                (
                    "write in someone else's chat",
                    "POST",
                    format!("/api/sessions/{s}/messages"),
                    json!({"body": "x"}),
                    not_theirs,
                ),
                ("end someone else's chat", "POST", format!("/api/sessions/{s}/end"), json!(null), not_theirs),
                (
                    "transfer someone else's chat",
                    "POST",
                    format!("/api/sessions/{s}/transfer"),
                    json!({"cooperative": true}),
                    not_theirs,
                ),
                (
                    "set the resolution code",
                    "POST",
                    format!("/api/sessions/{s}/code"),
                    json!({"code": "answered"}),
                    if cov && admin {
                        200
                    } else if cov {
                        403
                    } else {
                        404
                    },
                ),
                (
                    "conference in (monitor)",
                    "POST",
                    format!("/api/sessions/{s}/conference"),
                    json!({"mode": "monitor"}),
                    if cov && conf {
                        200
                    } else if cov {
                        403
                    } else {
                        404
                    },
                ),
                (
                    "accept a waiting chat before roll-up",
                    "POST",
                    format!("/api/sessions/{}/accept", waiting.session),
                    json!(null),
                    if w == Where::SameLibrary { 200 } else { 404 },
                ),
                (
                    "create a librarian at the patron's library",
                    "POST",
                    "/api/staff".into(),
                    json!({"username": format!("new-{who}"), "display_name": format!("N {who}"), "library": "riverside-main", "role": "librarian", "password": "long-enough-1"}),
                    if cov && admin { 201 } else { 403 },
                ),
            ];
            // Ann's account, as the staff page changes one (to what it is:
            // nothing changes when allowed); another cooperative's staff
            // is no one there. The patron's library's policy notes, which
            // its admins write.
            let ann_id = ann.id;
            let riverside = app.state.app.library("riverside-main").await.unwrap().placement.library.0;
            let table = table.into_iter().chain([
                (
                    "manage a librarian of the patron's library",
                    "POST",
                    format!("/api/staff/{ann_id}"),
                    json!({"disabled": false}),
                    match (cov && admin, w) {
                        (true, _) => 200,
                        (false, Where::OtherCooperative) => 404,
                        (false, _) => 403,
                    },
                ),
                (
                    "write the patron's library's policy notes",
                    "PUT",
                    format!("/api/policies/{riverside}"),
                    json!({"body": "Table policy"}),
                    match (cov && admin, w) {
                        (true, _) => 200,
                        (false, Where::OtherCooperative) => 404,
                        (false, _) => 403,
                    },
                ),
            ]);
            for (what, method, path, body, expected) in table {
                let before = snapshot(&app, s, q).await;
                let (status, out) = match method {
                    "GET" => actor.get(&path).await,
                    "PUT" => actor.put(&path, body).await,
                    _ => actor.post(&path, body).await,
                };
                assert_eq!(status, expected, "{who}: {what} → {out}");
                if status >= 400 {
                    assert_eq!(snapshot(&app, s, q).await, before, "{who}: a refused '{what}' changed something");
                    assert!(
                        out["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{who}: {what}: a clear error"
                    );
                }
                checked += 1;
            }
            // Leave again after a successful conference, so the next actor starts clean.
            if cov && conf {
                assert_eq!(actor.post(&format!("/api/sessions/{s}/leave"), json!(null)).await.0, 200);
            }
            // The ALL tab lists the session exactly for admins in scope.
            let (_, monitor) = actor.get("/api/monitor").await;
            let listed = monitor["all"].as_array().unwrap().iter().any(|x| x["ctx"]["id"] == s);
            assert_eq!(listed, cov && admin, "{who}: ALL tab");
            // The question list holds the question exactly for staff in scope.
            let (_, list) = actor.get("/api/questions?limit=200").await;
            let listed = list.as_array().unwrap().iter().any(|x| x["id"] == q);
            assert_eq!(listed, cov, "{who}: question list");
            checked += 2;
        }
    }
    assert_eq!(checked, 16 * 14);
}
