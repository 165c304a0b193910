//! The admin log: each change admins make to accounts and settings is
//! there, with who made it and the library it concerns, for the admins
//! whose role covers it; never a password; librarians read none of it.

use crate::helpers::spawn_app;
use serde_json::{json, Value};

/// The entries' (action, detail, by, library), newest first.
fn lines(log: &Value) -> Vec<(String, String, Option<String>, Option<String>)> {
    log.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().map(str::to_owned);
            (text("action").unwrap(), text("detail").unwrap(), text("by"), text("library"))
        })
        .collect()
}

#[tokio::test]
async fn each_admin_change_is_logged_for_the_admins_whose_role_covers_it() {
    let app = spawn_app().await;
    let (ann, carla, dev, erin) =
        (app.staff("ann").await, app.staff("carla").await, app.staff("dev").await, app.staff("erin").await);
    let main = Some("Riverside University Main Library".to_owned());
    let carla_by = Some("Carla Catalog (carla)".to_owned());
    let (_, before) = erin.get("/api/admin-log").await;
    let before = before.as_array().unwrap().len();

    // Carla, a library admin: a new colleague, a reset, a rename, her
    // library's sites and form; Erin changes a code, cooperative-wide.
    let secret = "a new passphrase 2026";
    // Refused changes are not logged.
    assert_eq!(ann.put("/api/libraries/riverside-main/embedding", json!({"sites": []})).await.0, 403);
    let (status, made) = carla
        .post(
            "/api/staff",
            json!({"username": "fay", "display_name": "Fay Folio", "library": "riverside-main", "role": "librarian", "password": "quill and lantern 2026"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(carla.post(&format!("/api/staff/{}", ann.id), json!({"password": secret})).await.0, 200);
    assert_eq!(
        carla
            .post(&format!("/api/staff/{}", made["id"]), json!({"display_name": "Fay Folio-Reed", "disabled": true}))
            .await
            .0,
        200
    );
    let sites = json!({"sites": ["https://www.riverside.example.org"]});
    assert_eq!(carla.put("/api/libraries/riverside-main/embedding", sites).await.0, 200);
    assert_eq!(carla.put("/api/libraries/riverside-main/blocked-patrons", json!({"may_use_form": false})).await.0, 200);
    let (_, codes) = erin.get("/api/codes").await;
    let mut lost = codes.as_array().unwrap().iter().find(|k| k["key"] == "lost_call").unwrap().clone();
    lost["label"] = json!("Lost connection");
    assert_eq!(erin.put("/api/codes/lost_call", lost).await.0, 200);
    assert_eq!(carla.put("/api/libraries/riverside-main/embedding", json!({"sites": ["nope"]})).await.0, 422);

    // Carla reads her library's changes, newest first, and not the code.
    let (status, log) = carla.get("/api/admin-log").await;
    assert_eq!(status, 200, "{log}");
    let got = lines(&log);
    let expected = vec![
        ("blocked_patrons", "a blocked patron may not send the offline question form", &carla_by, &main),
        ("embedding", "only these sites may show the chat: https://www.riverside.example.org", &carla_by, &main),
        ("staff", "Fay Folio (fay): disabled; name “Fay Folio” → “Fay Folio-Reed”", &carla_by, &main),
        ("staff", "Ann Archer (ann): password reset", &carla_by, &main),
        ("staff", "Fay Folio (fay) added, librarian", &carla_by, &main),
    ];
    let expected: Vec<_> =
        expected.into_iter().map(|(a, d, b, l)| (a.to_owned(), d.to_owned(), b.clone(), l.clone())).collect();
    assert_eq!(got[..5], expected[..], "{log}");
    assert!(got.iter().all(|(_, _, _, library)| *library == main), "her library's only: {got:?}");
    assert!(!log.to_string().contains(secret) && !log.to_string().contains("quill and lantern"), "never a password");
    // Dev, an admin of the institution, reads them too; Erin, the
    // cooperative's admin, the code besides.
    assert_eq!(lines(&dev.get("/api/admin-log").await.1)[..5], expected[..]);
    let (_, all) = erin.get("/api/admin-log").await;
    let all = lines(&all);
    assert_eq!(all.len(), before + 6, "six changes made, each logged once: {all:?}");
    assert_eq!(all[0].0, "code");
    assert_eq!(all[0].1, "code lost_call “Lost connection” changed: status closed");
    assert_eq!((all[0].2.as_deref(), all[0].3.as_deref()), (Some("Erin Index (erin)"), None));
    // Setting what is set already changes nothing, and logs nothing.
    let again = json!({"sites": ["https://WWW.riverside.example.org:443/"]});
    assert_eq!(carla.put("/api/libraries/riverside-main/embedding", again).await.0, 200);
    assert_eq!(carla.post(&format!("/api/staff/{}", made["id"]), json!({"disabled": true})).await.0, 200);
    assert_eq!(lines(&carla.get("/api/admin-log").await.1)[..5], expected[..]);
    // A librarian reads none of it; a bad limit is refused.
    assert_eq!(ann.get("/api/admin-log").await.0, 401, "her sign-ins ended with the reset");
    let ann = app.staff_with_password("ann", secret).await;
    assert_eq!(ann.get("/api/admin-log").await.0, 403);
    assert_eq!(carla.get("/api/admin-log?limit=0").await.0, 422);
    assert_eq!(carla.get("/api/admin-log?limit=501").await.0, 422);
    assert_eq!(lines(&carla.get("/api/admin-log?limit=2").await.1)[..], expected[..2]);
    // Her own password, changed by herself, is an entry too.
    let own = json!({"current": secret, "password": "harbour lights 2027 again"});
    let (status, why) = ann.post("/api/me/password", own).await;
    assert_eq!(status, 200, "{why}");
    let first = &lines(&carla.get("/api/admin-log?limit=1").await.1)[0];
    assert_eq!(
        (first.1.as_str(), first.2.as_deref()),
        ("Ann Archer (ann): own password changed", Some("Ann Archer (ann)"))
    );
}

/// A change to what an account has already (an admin's page out of date:
/// "Enable" on an account enabled meanwhile) changes nothing: the account
/// stays signed in, and nothing is logged. A real change still ends its
/// sign-ins and is logged.
#[tokio::test]
async fn a_change_to_what_an_account_has_already_signs_nobody_out_and_logs_nothing() {
    let app = spawn_app().await;
    let (ann, carla) = (app.staff("ann").await, app.staff("carla").await);
    let (_, before) = carla.get("/api/admin-log").await;
    let path = format!("/api/staff/{}", ann.id);
    let same = [json!({"disabled": false}), json!({"role": "librarian"}), json!({"display_name": "Ann Archer"})];
    for body in same {
        assert_eq!(carla.post(&path, body.clone()).await.0, 200, "{body}");
        assert_eq!(ann.get("/api/me").await.0, 200, "still signed in after {body}");
    }
    let (_, after) = carla.get("/api/admin-log").await;
    assert_eq!(lines(&after), lines(&before), "nothing logged");
    // An empty change is still refused as before.
    assert_eq!(carla.post(&path, json!({})).await.0, 422);
    // A rename with the same role: only the rename is done and logged.
    let (status, body) = carla.post(&path, json!({"role": "librarian", "display_name": "Ann Archer-Ames"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ann.get("/api/me").await.0, 401, "a real change ends the account's sign-ins");
    let (_, log) = carla.get("/api/admin-log").await;
    assert_eq!(lines(&log)[0].1, "Ann Archer (ann): name “Ann Archer” → “Ann Archer-Ames”");
}

/// An entry names who made the change as they were named then: a rename
/// later does not rewrite who did what.
#[tokio::test]
async fn an_entry_names_its_maker_as_they_were_named_when_they_made_it() {
    let app = spawn_app().await;
    let (ann, carla, dev) = (app.staff("ann").await, app.staff("carla").await, app.staff("dev").await);
    assert_eq!(carla.post(&format!("/api/staff/{}", ann.id), json!({"display_name": "Ann Ames"})).await.0, 200);
    assert_eq!(carla.post(&format!("/api/staff/{}", carla.id), json!({"display_name": "Carla Cole"})).await.0, 200);
    let carla = app.staff("carla").await;
    assert_eq!(carla.post(&format!("/api/staff/{}", ann.id), json!({"display_name": "Ann Archer"})).await.0, 200);
    let (_, log) = dev.get("/api/admin-log").await;
    let got: Vec<_> = lines(&log).into_iter().take(3).map(|(_, detail, by, _)| (detail, by.unwrap())).collect();
    let expected = [
        ("Ann Ames (ann): name “Ann Ames” → “Ann Archer”", "Carla Cole (carla)"),
        ("Carla Catalog (carla): name “Carla Catalog” → “Carla Cole”", "Carla Catalog (carla)"),
        ("Ann Archer (ann): name “Ann Archer” → “Ann Ames”", "Carla Catalog (carla)"),
    ];
    let expected: Vec<_> = expected.iter().map(|(d, b)| (d.to_string(), b.to_string())).collect();
    assert_eq!(got, expected, "{log}");
}
