//! `refdesk bench-reports`: the reports' benchmark (issue 15; the figures
//! are in docs/performance.md, `scripts/bench-reports.sh` runs it all).
//!
//! - `generate` loads a year of a large cooperative's history into an
//!   empty database ([`generate`]): 5 institutions × 8 libraries, 300
//!   librarians, chats and offline forms spread over the year in the shape
//!   of a real service's hours and terms, served across libraries, with
//!   codes (practice too), READ levels, ratings and comments, missed and
//!   abandoned chats, conferencing and transfers. It goes through the
//!   store's bulk import ([`refdesk_store::History`]), not the chat
//!   operations: a million questions load in minutes.
//! - `time` times every report over that year ([`time`]), as the
//!   cooperative admin (every library) and as a librarian (one library),
//!   through `App::report` and the JSON the API would send.
//!
//! Both take the database from the global `--data-dir` / `--database-url`
//! flags, like every other command.

pub mod generate;
pub mod time;

use clap::Subcommand;

/// The cooperative admin's sign-in name in the generated cooperative.
pub const ADMIN: &str = "bench.admin";

/// The librarian the reports are timed as: of the busiest library.
pub const LIBRARIAN: &str = "bench.i1l1.1";

/// `refdesk bench-reports …`.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Load a year of a large cooperative's history into an empty database.
    Generate(generate::GenerateArgs),
    /// Time every report over that year, as the cooperative admin and as a librarian.
    Time(time::TimeArgs),
}

/// Runs a `bench-reports` command on the app over the chosen database.
pub async fn run(command: &Command, app: &refdesk_app::App) -> anyhow::Result<()> {
    match command {
        Command::Generate(args) => {
            let done = generate::generate(app.store().as_ref(), args).await?;
            println!("{}", done.describe());
            Ok(())
        }
        Command::Time(args) => time::time(app, args).await,
    }
}
