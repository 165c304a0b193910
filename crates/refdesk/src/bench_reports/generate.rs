//! A year of a large cooperative's history, generated and loaded in bulk.
//!
//! The organisation is created through the store's usual operations; the
//! chats and forms, day by day in time order, through
//! [`History::import_history`], a few thousand per write. Everything comes
//! from one seeded generator: the same flags give the same history.
//!
//! The shape, so that every report has something realistic to count:
//! - libraries of unequal size (the first is the busiest, the 40th has a
//!   fifth of its chats), in four time zones;
//! - days weighted by weekday and by the academic year (busy in term, quiet
//!   in summer and at the end of December), hours by the local time of day;
//! - 8% offline forms; of the chats, 85% accepted (9% missed, 6% abandoned
//!   by the patron; more missed overnight);
//! - a third of the chats served by another library's librarian (coverage);
//! - resolution codes (1% practice, left out of every report), READ levels
//!   on 45% of coded questions, ratings on 22% of accepted chats (a third
//!   with a comment), conferencing on 4% and transfers on 3%;
//! - question texts of 50–200 characters, each also the chat's first message.

use super::ADMIN;
use anyhow::{bail, Context};
use clap::Args;
use refdesk_domain::chat::ConferenceMode;
use refdesk_domain::ids::{LibraryId, StaffId};
use refdesk_domain::org::Role;
use refdesk_domain::question::{apply_code, default_codes, question_on_accept, QuestionState, ResolutionCode, Status};
use refdesk_domain::report::{self as r, DAY};
use refdesk_domain::Millis;
use refdesk_store::prelude::*;
use refdesk_store::{NewStaff, PastEnd, PastSession};
use std::time::Instant;

const HOUR: Millis = 3_600_000;

/// Options of `refdesk bench-reports generate`.
#[derive(Args, Clone, Debug)]
pub struct GenerateArgs {
    /// Questions to generate (chats without a question — abandoned, or
    /// missed without an e-mail address — come on top).
    #[arg(long, default_value_t = 1_000_000)]
    pub questions: u64,
    /// The calendar year the history covers (UTC).
    #[arg(long, default_value_t = 2025, value_parser = clap::value_parser!(i64).range(1970..=9999))]
    pub year: i64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 15)]
    pub seed: u64,
    /// Sessions per write.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
}

/// What was generated, and what the reports over the year must count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Sessions written (chats and forms, practice included).
    pub sessions: u64,
    /// Questions written (practice included).
    pub questions: u64,
    /// Practice chats (their question excluded from statistics).
    pub practice: u64,
    /// What the reports count: sessions not practice.
    pub counted_sessions: u64,
    /// Of them, chats (not forms).
    pub chats: u64,
    /// Accepted chats.
    pub accepted: u64,
    /// Missed chats.
    pub missed: u64,
    /// Abandoned chats.
    pub abandoned: u64,
    /// Offline forms.
    pub forms: u64,
    /// Questions not practice created within the year.
    pub counted_questions: u64,
    /// How long the load took (organisation, history and ANALYZE), seconds.
    pub seconds: f64,
    /// The database's size after it, bytes.
    pub bytes: u64,
}

impl Summary {
    fn add(&mut self, s: &PastSession, year: (Millis, Millis)) {
        self.sessions += 1;
        let practice = s.question.as_ref().is_some_and(|(_, q)| q.exclude_from_stats);
        if let Some((at, _)) = &s.question {
            self.questions += 1;
            if !practice && (year.0..year.1).contains(at) {
                self.counted_questions += 1;
            }
        }
        if practice {
            self.practice += 1;
            return;
        }
        self.counted_sessions += 1;
        match (s.by_form, s.accepted, s.ended_by) {
            (true, _, _) => self.forms += 1,
            (false, Some(_), _) => self.accepted += 1,
            (false, None, Some(PastEnd::Patron)) => self.abandoned += 1,
            (false, None, _) => self.missed += 1,
        }
        if !s.by_form {
            self.chats += 1;
        }
    }

    /// One paragraph for the terminal and docs/performance.md.
    pub fn describe(&self) -> String {
        format!(
            "loaded {} sessions ({} chats: {} accepted, {} missed, {} abandoned; {} offline forms; {} practice) \
             and {} questions in {:.1} s ({:.0} sessions/s); database {:.1} MiB",
            self.sessions,
            self.chats,
            self.accepted,
            self.missed,
            self.abandoned,
            self.forms,
            self.practice,
            self.questions,
            self.seconds,
            self.sessions as f64 / self.seconds.max(1e-9),
            self.bytes as f64 / 1_048_576.0
        )
    }
}

/// A small seeded generator (SplitMix64): fast, and the same every run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// In [0, n).
    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index drawn with the weights whose running sums are `cumulative`.
    fn weighted(&mut self, cumulative: &[f64]) -> usize {
        let x = self.unit() * cumulative.last().copied().unwrap_or(0.0);
        cumulative.partition_point(|&c| c <= x).min(cumulative.len() - 1)
    }

    /// A standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Seconds, log-normally spread around `median`, within [`min`, `max`].
    fn seconds(&mut self, median: f64, spread: f64, min: i64, max: i64) -> Millis {
        let s = (median * (spread * self.normal()).exp()) as i64;
        s.clamp(min, max) * 1000 + self.below(1000) as i64
    }

    fn hex64(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next())).collect()
    }
}

fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    weights
        .into_iter()
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

/// Chats by local hour of the day (0–23): a reference desk's day, with a
/// little overnight from a cooperative that covers the clock.
const HOURS: [f64; 24] = [
    0.10, 0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.20, 0.50, 0.90, 1.20, 1.30, 1.20, 1.30, 1.40, 1.30, 1.10, 0.90, 0.80,
    0.80, 0.75, 0.60, 0.40, 0.20,
];

/// By weekday, Monday first.
const WEEKDAYS: [f64; 7] = [1.0, 1.05, 1.0, 0.95, 0.75, 0.40, 0.55];

/// By month: the academic year.
const MONTHS: [f64; 12] = [0.80, 1.10, 1.15, 1.20, 0.90, 0.55, 0.50, 0.70, 1.10, 1.20, 1.15, 0.70];

/// Each institution's time zone, minutes east of UTC.
const ZONES: [i64; 5] = [-300, -300, -360, -420, -480];

const INSTITUTIONS: [&str; 5] = [
    "Northfield University",
    "Lakeside College",
    "Hillcrest Public Library",
    "Riverbend County Libraries",
    "Westgate Community College",
];

const LIBRARY_NAMES: [&str; 8] = [
    "Main Library",
    "Science Library",
    "Law Library",
    "Health Sciences",
    "Arts Library",
    "Engineering",
    "Business",
    "Branch",
];

/// Libraries per institution.
const LIBRARIES: usize = 8;

/// Librarians in all (40 libraries: 8 in the first 20, 7 in the rest).
const LIBRARIANS: usize = 300;

struct Library {
    id: LibraryId,
    zone: usize,
    librarians: Vec<StaffId>,
}

/// The cooperative as the generator needs it.
struct Org {
    libraries: Vec<Library>,
    /// Running sums of the libraries' sizes.
    sizes: Vec<f64>,
    /// Per time zone, running sums of the 24 UTC hours' weights.
    hours: Vec<Vec<f64>>,
    codes: Vec<ResolutionCode>,
}

/// An account no one can sign in to: the password hash is no hash.
fn staff(library: LibraryId, username: String, display_name: String, role: Role) -> NewStaff {
    NewStaff { library, username, display_name, role, password_hash: "!".into() }
}

/// The cooperative, its 40 libraries and their staff, through the store's
/// usual operations.
async fn create_org(store: &dyn Store) -> anyhow::Result<Org> {
    let codes = default_codes();
    let coop = store.create_cooperative("Bench Cooperative", codes.clone()).await?;
    let mut libraries = Vec::new();
    for (i, name) in INSTITUTIONS.iter().enumerate() {
        let inst = store.create_institution(coop, name).await?;
        for (j, lib) in LIBRARY_NAMES.iter().enumerate() {
            let slug = format!("bench-i{}l{}", i + 1, j + 1);
            let rec = store.create_library(inst, &slug, &format!("{name} {lib}")).await?;
            let id = rec.placement.library;
            if i == 0 && j == 0 {
                store.create_staff(staff(id, ADMIN.into(), "Cooperative Admin".into(), Role::CooperativeAdmin)).await?;
            }
            if j == 0 {
                let user = format!("bench.i{}.admin", i + 1);
                store.create_staff(staff(id, user, format!("{name} Admin"), Role::InstitutionAdmin)).await?;
            }
            let n = if libraries.len() < 20 { 8 } else { 7 };
            let mut librarians = Vec::new();
            for k in 1..=n {
                let user = format!("bench.i{}l{}.{k}", i + 1, j + 1);
                // Named apart within the cooperative, as refdesk requires:
                // the pairs of names repeat, the libraries do not.
                let (first, last) = (FIRST[(libraries.len() * 8 + k) % FIRST.len()], LAST[k % LAST.len()]);
                let display = format!("{first} {last} (i{}l{})", i + 1, j + 1);
                librarians.push(store.create_staff(staff(id, user, display, Role::Librarian)).await?);
            }
            libraries.push(Library { id, zone: i, librarians });
        }
    }
    debug_assert_eq!(libraries.iter().map(|l| l.librarians.len()).sum::<usize>(), LIBRARIANS);
    debug_assert_eq!(libraries.len(), INSTITUTIONS.len() * LIBRARIES);
    let sizes = cumulative((0..libraries.len()).map(|i| 1.0 / (1.0 + 0.1 * i as f64)));
    let hours = ZONES
        .iter()
        .map(|zone| cumulative((0..24).map(|h| HOURS[(h + 24 + zone / 60).rem_euclid(24) as usize])))
        .collect();
    Ok(Org { libraries, sizes, hours, codes })
}

const FIRST: [&str; 16] = [
    "Ann", "Ben", "Chloé", "Dmitri", "Efua", "Farid", "Grace", "Hiro", "Inés", "Jamal", "Kasia", "Liam", "Mei", "Noor",
    "Olu", "Priya",
];
const LAST: [&str; 12] =
    ["Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "García", "Hughes", "Ivanova", "Jones", "Kim", "Lopez"];

const OPENERS: [&str; 6] = ["Hi,", "Hello!", "Good afternoon.", "Hi there -", "Hey,", "Hello, quick question:"];
const ASKS: [&str; 10] = [
    "I need peer-reviewed articles on {} for my paper",
    "where can I find statistics about {}",
    "can you help me find primary sources on {}",
    "is there a good database for {} that I can use from home",
    "my professor wants five scholarly sources about {}, how do I search for them",
    "do you have any books on {} that I can borrow this week",
    "how do I cite a report on {} in APA 7th edition",
    "I can't open the full text of an article about {}, it asks me to log in",
    "I'm looking for newspaper coverage of {} from the 1970s",
    "can I get an interlibrary loan for a thesis on {}",
];
const TOPICS: [&str; 12] = [
    "climate migration",
    "the history of public health in cities",
    "microplastics in rivers",
    "early childhood literacy",
    "renewable energy policy",
    "the Harlem Renaissance",
    "antibiotic resistance",
    "housing affordability",
    "social media and teenagers",
    "medieval trade routes",
    "sleep and memory",
    "water rights in the West",
];
const CLOSERS: [&str; 6] =
    ["Thanks!", "thank you", "Any help appreciated.", "It's due Friday.", "", "Thanks so much :)"];
const COMMENTS: [&str; 8] = [
    "Very helpful, thank you!",
    "Found exactly what I needed.",
    "Quick and friendly.",
    "Took a while to get connected, but the librarian was great.",
    "Patient, and explained the database search step by step - I can do it myself now.",
    "Didn't really answer my question.",
    "Great service, 10/10, would ask again",
    "The link she sent didn't work from off campus, \"access denied\".",
];

/// A question of 50–200 characters.
fn question_text(rng: &mut Rng) -> String {
    let topic = *rng.pick(&TOPICS);
    let ask = rng.pick(&ASKS).replace("{}", topic);
    let mut text = format!("{} {} {}", rng.pick(&OPENERS), ask, rng.pick(&CLOSERS)).trim().to_owned();
    if text.len() < 50 {
        text.push_str(" I've already tried the catalogue.");
    }
    if text.len() > 200 {
        let cut = (0..=200).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
    }
    text
}

/// The resolution codes librarians give, with how often (None: no code).
const CODES: [(Option<&str>, f64); 8] = [
    (Some("answered"), 58.0),
    (Some("follow_up_by_me"), 6.0),
    (Some("follow_up_by_library"), 5.0),
    (Some("referred"), 4.0),
    (Some("lost_call"), 10.0),
    (Some("inappropriate"), 1.0),
    (Some("practice"), 1.0),
    (None, 15.0),
];

/// READ levels 1–6, with how often.
const READ: [f64; 6] = [0.15, 0.35, 0.30, 0.13, 0.05, 0.02];

/// The question of an accepted chat, with the code its librarian gave.
fn coded_question(rng: &mut Rng, org: &Org, by: StaffId) -> QuestionState {
    let weights = cumulative(CODES.iter().map(|c| c.1));
    let Some(key) = CODES[rng.weighted(&weights)].0 else { return question_on_accept() };
    let Some(code) = org.codes.iter().find(|c| c.key == key) else { return question_on_accept() };
    let receiving = Some(rng.pick(&org.libraries).id);
    let mut q = apply_code(&question_on_accept(), code, Some(by), receiving);
    if !q.exclude_from_stats && rng.chance(0.45) {
        q.read_scale = Some(rng.weighted(&cumulative(READ)) as u8 + 1);
    }
    q
}

/// A form's question: new, or later answered or closed from the list.
fn form_question(rng: &mut Rng, org: &Org, library: &Library) -> QuestionState {
    let new = QuestionState { status: Status::New, ..question_on_accept() };
    let x = rng.unit();
    if x < 0.35 {
        return new;
    }
    if x < 0.80 {
        let by = *rng.pick(&library.librarians);
        let answered = org.codes.iter().find(|c| c.key == "answered");
        return answered.map_or(new.clone(), |c| apply_code(&new, c, Some(by), None));
    }
    QuestionState { status: Status::Closed, ..new }
}

/// The patron: a name (70%) and an e-mail address (always for a form).
fn patron(rng: &mut Rng, by_form: bool) -> (Option<String>, Option<String>) {
    let (first, last) = (*rng.pick(&FIRST), *rng.pick(&LAST));
    let n = rng.below(10_000);
    let name = rng.chance(0.7).then(|| format!("{first} {last}"));
    let email = (by_form || rng.chance(0.6)).then(|| match &name {
        Some(_) => format!("{}.{}{n}@example.edu", first.to_lowercase(), last.to_lowercase()),
        None => format!("patron{n}@example.org"),
    });
    (name, email)
}

/// The librarian who serves a patron of `home`: one of its own (two thirds)
/// or of another library (cooperative coverage).
fn server(rng: &mut Rng, org: &Org, home: usize) -> StaffId {
    let mut lib = home;
    if rng.chance(0.34) {
        while lib == home {
            lib = rng.weighted(&org.sizes);
        }
    }
    *rng.pick(&org.libraries[lib].librarians)
}

/// An accepted chat: served, maybe transferred, conferenced, rated.
fn accepted(rng: &mut Rng, org: &Org, home: usize, s: &mut PastSession) {
    let at = s.created_at + rng.seconds(40.0, 1.0, 2, 1800);
    let by = server(rng, org, home);
    s.ended_at = at + rng.seconds(600.0, 0.7, 30, 7200);
    s.accepted = Some((by, at));
    s.ended_by = Some(if rng.chance(0.55) { PastEnd::Patron } else { PastEnd::Staff });
    if rng.chance(0.03) {
        // The first librarian stays in the chat, whispering (as a transfer leaves them).
        s.handovers = 1 + i64::from(rng.chance(0.15));
        s.members.push((server(rng, org, home), ConferenceMode::Whisper, at + 60_000));
    }
    if rng.chance(0.04) {
        let mode = *rng.pick(&[ConferenceMode::Monitor, ConferenceMode::Monitor, ConferenceMode::Join]);
        let other = server(rng, org, home);
        if other != by && s.members.iter().all(|m| m.0 != other) {
            s.members.push((other, mode, at + 30_000));
        }
    }
    if rng.chance(0.22) {
        let rating = rng.weighted(&cumulative([3.0, 4.0, 10.0, 23.0, 60.0])) as u8 + 1;
        s.rating = Some((rating, rng.chance(0.35).then(|| rng.pick(&COMMENTS).to_string())));
    }
    s.question = Some((at, coded_question(rng, org, by)));
}

/// One chat or form of the patrons of library `home`, asked at `at`.
fn session(rng: &mut Rng, org: &Org, home: usize, at: Millis, local_hour: i64) -> PastSession {
    let by_form = rng.chance(0.08);
    let (patron_name, patron_email) = patron(rng, by_form);
    let mut s = PastSession {
        library: org.libraries[home].id,
        token_hash: rng.hex64(),
        patron_name,
        patron_email,
        question_text: question_text(rng),
        by_form,
        created_at: at,
        accepted: None,
        ended_at: at,
        ended_by: None,
        handovers: 0,
        rating: None,
        members: Vec::new(),
        question: None,
    };
    let night = !(7..22).contains(&local_hour);
    let (missed, abandoned) = if night { (0.25, 0.08) } else { (0.08, 0.06) };
    let x = rng.unit();
    if by_form {
        s.question = Some((at, form_question(rng, org, &org.libraries[home])));
    } else if x < missed {
        s.ended_at = at + rng.seconds(420.0, 0.4, 60, 1800);
        s.ended_by = Some(if rng.chance(0.7) { PastEnd::System } else { PastEnd::Staff });
        let left = QuestionState { status: Status::New, follow_up: true, ..question_on_accept() };
        s.question = s.patron_email.is_some().then_some((s.ended_at, left));
    } else if x < missed + abandoned {
        s.ended_at = at + rng.seconds(60.0, 0.8, 5, 900);
        s.ended_by = Some(PastEnd::Patron);
    } else {
        accepted(rng, org, home, &mut s);
    }
    s
}

/// The day's weight: its weekday and month.
fn day_weight(day: i64) -> f64 {
    let (_, month, _) = r::civil_from_days(day);
    WEEKDAYS[r::weekday(day) as usize] * MONTHS[month as usize - 1]
}

/// The sessions of one UTC day, in time order, until `questions` of them
/// have a question.
fn day(rng: &mut Rng, org: &Org, day: i64, questions: u64) -> Vec<PastSession> {
    let mut out = Vec::new();
    let mut made = 0;
    while made < questions {
        let home = rng.weighted(&org.sizes);
        let zone = org.libraries[home].zone;
        let hour = rng.weighted(&org.hours[zone]) as i64;
        let at = day * DAY + hour * HOUR + rng.below(HOUR as usize) as i64;
        let local_hour = (hour + 24 + ZONES[zone] / 60).rem_euclid(24);
        let s = session(rng, org, home, at, local_hour);
        made += u64::from(s.question.is_some());
        out.push(s);
    }
    out.sort_by_key(|s| s.created_at);
    out
}

/// Generates the year into `store`, which must be empty; then refreshes
/// the planner's statistics.
pub async fn generate(store: &dyn Store, args: &GenerateArgs) -> anyhow::Result<Summary> {
    if !store.is_empty().await? {
        bail!("the database already has data; bench-reports generate loads only into an empty one");
    }
    let began = Instant::now();
    let org = create_org(store).await.context("creating the cooperative")?;
    let first = r::days_from_civil(args.year, 1, 1);
    let days: Vec<i64> = (first..r::days_from_civil(args.year + 1, 1, 1)).collect();
    let year = (first * DAY, (first + days.len() as i64) * DAY);
    let total: f64 = days.iter().map(|&d| day_weight(d)).sum();
    let mut rng = Rng::new(args.seed);
    let (mut summary, mut pending, mut owed) = (Summary::default(), Vec::new(), 0.0);
    for (i, &d) in days.iter().enumerate() {
        // The questions owed so far, rounded: the year adds up to exactly `questions`.
        owed += args.questions as f64 * day_weight(d) / total;
        let due = if i + 1 == days.len() { args.questions } else { owed.round() as u64 };
        let due = due.saturating_sub(summary.questions);
        for s in day(&mut rng, &org, d, due) {
            summary.add(&s, year);
            pending.push(s);
        }
        if pending.len() >= args.batch.max(1) || i + 1 == days.len() {
            store.import_history(std::mem::take(&mut pending)).await.context("importing the history")?;
            eprint!("\r{} of {} days, {} questions", i + 1, days.len(), summary.questions);
        }
    }
    eprintln!();
    store.analyze().await.context("refreshing the planner's statistics")?;
    summary.seconds = began.elapsed().as_secs_f64();
    summary.bytes = store.database_size().await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use refdesk_app::reports::ReportParams;
    use refdesk_domain::report::Cell;

    fn int(c: &Cell) -> u64 {
        match c {
            Cell::Int(n) => *n as u64,
            other => panic!("not an int: {other:?}"),
        }
    }

    fn utc() -> refdesk_app::zone::Zone {
        refdesk_app::zone::Zone::fixed(0).expect("UTC is an offset")
    }

    /// Sums column `col` of a report over the whole year, as the cooperative admin.
    async fn total(app: &refdesk_app::App, name: &str, col: usize, year: i64) -> u64 {
        let admin = app.store().staff_by_username(ADMIN).await.expect("read").expect("the admin").staff;
        let p = ReportParams::new(r::days_from_civil(year, 1, 1), r::days_from_civil(year, 12, 31), utc(), None)
            .expect("a valid range");
        let table = app.report(&admin, name, &p).await.expect("the report");
        table.rows.iter().map(|row| int(&row[col])).sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_generated_year_loads_and_the_reports_count_what_was_generated() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = refdesk_server::Config { data_dir: dir.path().to_owned(), ..Default::default() };
        let state = refdesk_server::open(&config, refdesk_app::Clock::system()).await.expect("the store opens");
        let app = &state.app;
        let args = GenerateArgs { questions: 2_000, year: 2025, seed: 7, batch: 300 };

        let done = generate(app.store().as_ref(), &args).await.expect("the history loads");

        assert_eq!(done.questions, 2_000);
        assert!(done.practice > 0 && done.missed > 0 && done.abandoned > 0 && done.forms > 0, "{done:?}");
        assert_eq!(done.counted_sessions, done.accepted + done.missed + done.abandoned + done.forms);
        // by-channel: sessions and questions per channel (nothing is left waiting).
        assert_eq!(total(app, "by-channel", 1, 2025).await, done.counted_sessions);
        assert_eq!(total(app, "by-channel", 2, 2025).await, done.counted_questions);
        // by-day: chats, accepted, missed, abandoned, forms, questions.
        assert_eq!(total(app, "by-day", 1, 2025).await, done.chats);
        assert_eq!(total(app, "by-day", 2, 2025).await, done.accepted);
        assert_eq!(total(app, "by-day", 3, 2025).await, done.missed);
        assert_eq!(total(app, "by-day", 4, 2025).await, done.abandoned);
        assert_eq!(total(app, "by-day", 5, 2025).await, done.forms);
        assert_eq!(total(app, "by-day", 6, 2025).await, done.counted_questions);
        let again = generate(app.store().as_ref(), &args).await;
        assert!(again.is_err(), "a second load into the same database is refused");
        app.store().close().await;
    }
}
