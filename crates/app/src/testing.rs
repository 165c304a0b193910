//! For this crate's own tests: the demo cooperative on a real SQLite file.

use crate::{bus::Bus, demo, App, Clock, Limits, StartChat};
use refdesk_domain::event::Availability;
use refdesk_domain::ids::SessionId;
use refdesk_domain::org::Staff;
use refdesk_store::sqlite::SqliteStore;
use std::sync::Arc;

/// An app on a fresh SQLite file in `dir`, with the demo cooperative.
pub async fn app_on_sqlite(dir: &tempfile::TempDir) -> App {
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store, bus, Limits::default(), Clock::system());
    demo::load(&app).await.unwrap();
    app
}

/// A demo librarian, signed in and on duty.
pub async fn on_duty(app: &App, user: &str) -> Staff {
    let (_, staff) = app.login(user, demo::PASSWORD, true).await.unwrap();
    app.set_availability(&staff, Availability::OnDuty).await.unwrap();
    staff
}

/// A chat waiting at riverside-main.
pub async fn waiting_chat(app: &App) -> SessionId {
    let form = StartChat {
        name: Some("Pat".into()),
        email: None,
        question: "Is the map room open?".into(),
        transcript: false,
        browser: None,
        utc_offset: None,
    };
    app.start_chat("riverside-main", form, None).await.unwrap().session
}
