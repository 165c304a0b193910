//! Times every report over the generated year: `runs` times each, as the
//! cooperative admin (all 40 libraries, the widest scope) and as a
//! librarian of the busiest library, and prints the median and the
//! slowest run of each as a Markdown table, with a digest of both
//! reports' JSON: two databases loaded with the same flags give the same
//! digests whatever the backend, or the change to the queries, if the
//! figures are the same.
//!
//! A run is what a request costs the server but the HTTP layer:
//! `App::report` (the store's queries and the table built from them) and
//! the JSON the API would send.
//!
//! Then the question list over the same year: the first page (50) of
//! each view, and a search for words found nowhere, for the same two
//! people (`App::question_list`, what the questions page asks on each
//! filter and the desk after accepts, ends and codes).

use super::{ADMIN, LIBRARIAN};
use anyhow::Context;
use clap::Args;
use refdesk_app::reports::{ReportParams, REPORTS};
use refdesk_app::zone::Zone;
use refdesk_app::{App, ListFilter};
use refdesk_domain::actions::View;
use refdesk_domain::org::Staff;
use refdesk_domain::question::Channel;
use refdesk_domain::report as r;
use std::time::{Duration, Instant};

/// Options of `refdesk bench-reports time`.
#[derive(Args, Clone, Debug)]
pub struct TimeArgs {
    /// The calendar year the reports cover (as generated).
    #[arg(long, default_value_t = 2025)]
    pub year: i64,
    /// Runs of each report for each person.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// The reports' time zone (an IANA name, e.g. Europe/Paris; each chat
    /// placed by the offset it had then); UTC when not given.
    #[arg(long)]
    pub tz: Option<String>,
}

/// One report's runs for one person.
struct Timed {
    rows: usize,
    /// FNV-1a of the report's JSON: the same history gives the same digest
    /// on every backend and every version that counts the same.
    digest: u64,
    median: Duration,
    max: Duration,
}

async fn staff(app: &App, username: &str) -> anyhow::Result<Staff> {
    let rec = app
        .store()
        .staff_by_username(username)
        .await?
        .with_context(|| format!("no staff member {username}: run `refdesk bench-reports generate` first"))?;
    Ok(rec.staff)
}

async fn time_one(app: &App, who: &Staff, name: &str, p: &ReportParams, runs: usize) -> anyhow::Result<Timed> {
    let mut took = Vec::with_capacity(runs);
    let (mut rows, mut digest) = (0, 0);
    for _ in 0..runs.max(1) {
        let began = Instant::now();
        let table = app.report(who, name, p).await.map_err(|e| anyhow::anyhow!("report {name}: {e}"))?;
        let json = serde_json::to_vec(&table)?;
        took.push(began.elapsed());
        rows = table.rows.len();
        digest = json.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    }
    took.sort();
    Ok(Timed { rows, digest, median: took[took.len() / 2], max: took[took.len() - 1] })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// `refdesk bench-reports time`.
pub async fn time(app: &App, args: &TimeArgs) -> anyhow::Result<()> {
    let admin = staff(app, ADMIN).await?;
    let librarian = staff(app, LIBRARIAN).await?;
    let (from, to) = (r::days_from_civil(args.year, 1, 1), r::days_from_civil(args.year, 12, 31));
    let zone = match &args.tz {
        Some(name) => Zone::named("tz", name),
        None => Zone::fixed(0),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let zone_name = zone.name().to_owned();
    let p = ReportParams::new(from, to, zone, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let size = app.store().database_size().await?;
    println!(
        "Every report from {} to {} ({zone_name}), {} runs each; database {:.1} MiB.\n",
        r::date_of(from),
        r::date_of(to),
        args.runs,
        size as f64 / 1_048_576.0
    );
    println!("| report | rows | cooperative admin: median | max | librarian ({LIBRARIAN}): median | max | digest |");
    println!("|---|---|---|---|---|---|---|");
    let mut slowest = Duration::ZERO;
    for (name, _) in REPORTS {
        let wide = time_one(app, &admin, name, &p, args.runs).await?;
        let one = time_one(app, &librarian, name, &p, args.runs).await?;
        slowest = slowest.max(wide.max).max(one.max);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:08x} |",
            wide.rows,
            ms(wide.median),
            ms(wide.max),
            ms(one.median),
            ms(one.max),
            (wide.digest ^ one.digest.rotate_left(32)) >> 32
        );
    }
    println!("\nslowest run: {}", ms(slowest));
    println!("\nThe question list's first page (50) of each view, {} runs each.\n", args.runs);
    println!("| view | cooperative admin: rows | median | max | librarian: rows | median | max |");
    println!("|---|---|---|---|---|---|---|");
    let searched = ListFilter { text: Some("words found nowhere".into()), ..ListFilter::default() };
    let views = View::ALL.into_iter().map(|view| (view.as_str(), ListFilter { view, ..ListFilter::default() }));
    // By how they came: forms are one question in eleven, abandoned chats
    // with an address fewer.
    let came = |channel| ListFilter { channel: Some(channel), ..ListFilter::default() };
    let channels = [("all, channel form", came(Channel::Form)), ("all, channel abandoned", came(Channel::Abandoned))];
    for (name, filter) in views.chain(channels).chain([("all, searched for words found nowhere", searched)]) {
        let wide = time_list(app, &admin, &filter, args.runs).await?;
        let one = time_list(app, &librarian, &filter, args.runs).await?;
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            wide.rows,
            ms(wide.median),
            ms(wide.max),
            one.rows,
            ms(one.median),
            ms(one.max)
        );
    }
    Ok(())
}

/// One question-list page's runs for one person (no digest).
async fn time_list(app: &App, who: &Staff, filter: &ListFilter, runs: usize) -> anyhow::Result<Timed> {
    let mut took = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs.max(1) {
        let began = Instant::now();
        let page = app.question_list(who, filter.clone()).await.map_err(|e| anyhow::anyhow!("question list: {e}"))?;
        std::hint::black_box(serde_json::to_vec(&page)?);
        took.push(began.elapsed());
        rows = page.len();
    }
    took.sort();
    Ok(Timed { rows, digest: 0, median: took[took.len() / 2], max: took[took.len() - 1] })
}
