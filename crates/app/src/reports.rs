//! Statistics (issue 15): each report is a [`Table`] built from the
//! figures the store counts, for the libraries the caller's role covers —
//! like the question list: a librarian and a library admin their library,
//! an institution admin its libraries, a cooperative admin all of them.
//!
//! The store groups by local hour, library and staff ids; days, weeks,
//! the hour-of-week heat map, names and percentiles are made here.
//!
//! A report that needs several of the store's counts asks for them at
//! once (`try_join!`): each is a scan of the range, and on a year of a
//! large cooperative they take a few hundred milliseconds each, and side
//! by side, on connections of their own, they share the wait. The store
//! runs at most two such scans at once on a node (its long reads), whoever
//! asks, so that reports never take the connections the chats need
//! (docs/performance.md).

use crate::zone::{Grouping, Zone};
use crate::{App, AppResult};
use refdesk_domain::ids::LibraryId;
use refdesk_domain::org::Staff;
use refdesk_domain::question::Status;
use refdesk_domain::report::{self as r, Cell, Column, Kind, Table};
use refdesk_domain::DomainError;
use refdesk_store::{QuestionGroup, ReportRange, SessionCounts, SessionGroup, Span};
use std::collections::{BTreeMap, HashMap};

/// Every report: its name and title, in the order the page shows them.
pub const REPORTS: [(&str, &str); 13] = [
    ("by-day", "Chats and questions by day"),
    ("by-week", "Chats and questions by week"),
    ("by-hour", "Chats by hour of the week"),
    ("by-library", "By the patron's library"),
    ("coverage", "Cooperative coverage: who served whose patrons"),
    ("by-librarian", "By librarian"),
    ("by-code", "Questions by resolution code"),
    ("by-status", "Questions by status"),
    ("by-channel", "By channel"),
    ("service", "Service: waits, durations, conferencing, ratings"),
    ("ratings", "Ratings"),
    ("rating-comments", "Rating comments"),
    ("read-scale", "READ scale (effort)"),
];

/// The longest range a report covers, in days (three years).
pub const MAX_DAYS: i64 = 1100;

/// What a report is asked for: local dates, both counted.
#[derive(Clone, Debug)]
pub struct ReportParams {
    /// The first day (days since 1970-01-01, local).
    pub from: i64,
    /// The last day.
    pub to: i64,
    /// Local time: a time zone, or a fixed offset.
    pub zone: Zone,
    /// Only this library (a slug in scope).
    pub library: Option<String>,
}

impl ReportParams {
    /// Checks the range.
    pub fn new(from: i64, to: i64, zone: Zone, library: Option<String>) -> Result<Self, DomainError> {
        if to < from {
            return Err(DomainError::invalid("to", "the range ends before it starts"));
        }
        if to - from >= MAX_DAYS {
            return Err(DomainError::invalid("to", format!("a report covers at most {MAX_DAYS} days")));
        }
        Ok(ReportParams { from, to, zone, library })
    }
}

const SESSION_COLUMNS: [Column; 6] = [
    Column::new("chats", "Chats", Kind::Int),
    Column::new("accepted", "Accepted", Kind::Int),
    Column::new("missed", "Missed", Kind::Int),
    Column::new("abandoned", "Abandoned", Kind::Int),
    Column::new("forms", "Offline forms", Kind::Int),
    Column::new("questions", "Questions", Kind::Int),
];

fn add(total: &mut SessionCounts, c: &SessionCounts) {
    total.sessions += c.sessions;
    total.chats += c.chats;
    total.accepted += c.accepted;
    total.missed += c.missed;
    total.abandoned += c.abandoned;
    total.waiting += c.waiting;
    total.forms += c.forms;
    total.handovers += c.handovers;
    total.ratings += c.ratings;
    total.rating_sum += c.rating_sum;
    total.timed += c.timed;
    total.duration_sum += c.duration_sum;
}

/// The store's counts by [`Zone::grouping`]'s buckets (UTC hours or
/// quarter hours, for a zone whose clocks change), added up by the local
/// hour each lies in.
fn local_hours(s: &Scope, buckets: &[SessionCounts]) -> Vec<SessionCounts> {
    let mut hours: BTreeMap<i64, SessionCounts> = BTreeMap::new();
    for c in buckets {
        if let Some(key) = c.keys[0] {
            let hour = s.zone.local_hour(key, s.grouping);
            let total =
                hours.entry(hour).or_insert_with(|| SessionCounts { keys: [Some(hour), None], ..Default::default() });
            add(total, c);
        }
    }
    hours.into_values().collect()
}

fn counted(c: &SessionCounts, questions: i64) -> [Cell; 6] {
    [c.chats, c.accepted, c.missed, c.abandoned, c.forms, questions].map(Cell::Int)
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

/// Everything a report is built from, read once per request.
struct Scope {
    range: ReportRange,
    names: HashMap<i64, String>,
    zone: Zone,
    /// How the store grouped the range's hours.
    grouping: Grouping,
}

impl Scope {
    fn library(&self, id: Option<i64>) -> Cell {
        text(id.and_then(|id| self.names.get(&id).cloned()).unwrap_or_default())
    }
}

impl App {
    /// One report, for the libraries `staff`'s role covers (or the one
    /// library asked for, if it is among them).
    pub async fn report(&self, staff: &Staff, name: &str, p: &ReportParams) -> AppResult<Table> {
        let (name, title) = REPORTS.iter().find(|(n, _)| *n == name).ok_or(DomainError::NotFound("report"))?;
        // In this staff member's own line (`crate::turns`).
        let _turn = self.long_reads.turn(staff.id).await;
        let scope = self.report_scope(staff, p).await?;
        let (columns, rows) = match *name {
            "by-day" => self.by_days(&scope, p, 1).await?,
            "by-week" => self.by_days(&scope, p, 7).await?,
            "by-hour" => self.by_hour(&scope).await?,
            "by-library" => self.by_library(&scope).await?,
            "coverage" => self.coverage(&scope).await?,
            "by-librarian" => self.by_librarian(staff, &scope).await?,
            "by-code" => self.by_code(staff, &scope).await?,
            "by-status" => self.by_status(&scope).await?,
            "by-channel" => self.by_channel(&scope).await?,
            "service" => self.service(&scope).await?,
            "ratings" => self.ratings(&scope).await?,
            "rating-comments" => self.rating_comments(&scope).await?,
            _ => self.read_scale(&scope).await?,
        };
        Ok(Table {
            name: (*name).into(),
            title: (*title).into(),
            from: r::date_of(p.from),
            to: r::date_of(p.to),
            utc_offset: (p.zone.offset_at(scope.range.from) / 60_000) as i32,
            time_zone: p.zone.name().to_owned(),
            columns: columns.to_vec(),
            rows,
        })
    }

    async fn report_scope(&self, staff: &Staff, p: &ReportParams) -> AppResult<Scope> {
        let all = self.store.libraries().await?;
        let mut libraries: Vec<LibraryId> =
            all.iter().filter(|l| staff.role_covers(&l.placement)).map(|l| l.placement.library).collect();
        if let Some(slug) = &p.library {
            let lib = all
                .iter()
                .find(|l| &l.slug == slug && staff.role_covers(&l.placement))
                .ok_or_else(|| DomainError::invalid("library", format!("no library {slug:?} in your scope")))?;
            libraries = vec![lib.placement.library];
        }
        let (from, to) = (p.zone.start_of("from", p.from)?, p.zone.start_of("to", p.to + 1)?);
        let grouping = p.zone.grouping(from, to);
        let range = ReportRange { libraries, from, to, offset: grouping.offset, bucket: grouping.bucket };
        let names = all.into_iter().map(|l| (l.placement.library.0, l.name)).collect();
        Ok(Scope { range, names, zone: p.zone.clone(), grouping })
    }

    /// Sessions and questions per local hour since the epoch.
    async fn hourly(&self, s: &Scope) -> AppResult<(Vec<SessionCounts>, BTreeMap<i64, i64>)> {
        let (sessions, questions) = tokio::try_join!(
            self.store.session_counts(s.range.clone(), SessionGroup::Hour),
            self.store.question_counts(s.range.clone(), QuestionGroup::Hour)
        )?;
        let mut per_hour = BTreeMap::new();
        for (k, n) in questions {
            if let Some(key) = k.and_then(|k| k.parse::<i64>().ok()) {
                *per_hour.entry(s.zone.local_hour(key, s.grouping)).or_insert(0) += n;
            }
        }
        Ok((local_hours(s, &sessions), per_hour))
    }

    /// By day (`days` = 1) or by week starting on Monday (`days` = 7):
    /// every bucket of the range, zeros included.
    async fn by_days(&self, s: &Scope, p: &ReportParams, days: i64) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let bucket = |day: i64| if days == 7 { day - r::weekday(day) } else { day };
        let (sessions, questions) = self.hourly(s).await?;
        let mut buckets: BTreeMap<i64, (SessionCounts, i64)> = BTreeMap::new();
        let mut day = bucket(p.from);
        while day <= p.to {
            buckets.insert(day, Default::default());
            day += days;
        }
        for c in &sessions {
            if let Some(b) = c.keys[0].and_then(|h| buckets.get_mut(&bucket(h.div_euclid(24)))) {
                add(&mut b.0, c);
            }
        }
        for (h, n) in questions {
            if let Some(b) = buckets.get_mut(&bucket(h.div_euclid(24))) {
                b.1 += n;
            }
        }
        let first = if days == 7 {
            Column::new("week", "Week of", Kind::Date)
        } else {
            Column::new("date", "Date", Kind::Date)
        };
        let mut columns = vec![first];
        columns.extend(SESSION_COLUMNS);
        let rows = buckets
            .into_iter()
            .map(|(day, (c, q))| std::iter::once(text(r::date_of(day))).chain(counted(&c, q)).collect())
            .collect();
        Ok((columns, rows))
    }

    /// The heat map: chats per weekday (0 = Monday) and hour, all 168 cells.
    async fn by_hour(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let sessions = self.store.session_counts(s.range.clone(), SessionGroup::Hour).await?;
        let sessions = local_hours(s, &sessions);
        let mut cells = [[0i64; 24]; 7];
        for c in &sessions {
            if let Some(h) = c.keys[0] {
                cells[r::weekday(h.div_euclid(24)) as usize][h.rem_euclid(24) as usize] += c.chats;
            }
        }
        let columns = vec![
            Column::new("weekday", "Weekday (0 = Monday)", Kind::Int),
            Column::new("hour", "Hour", Kind::Int),
            Column::new("chats", "Chats", Kind::Int),
        ];
        let rows = (0..7)
            .flat_map(|d| (0..24).map(move |h| (d, h)))
            .map(|(d, h)| vec![Cell::Int(d as i64), Cell::Int(h as i64), Cell::Int(cells[d][h])])
            .collect();
        Ok((columns, rows))
    }

    async fn by_library(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let (sessions, questions) = tokio::try_join!(
            self.store.session_counts(s.range.clone(), SessionGroup::Library),
            self.store.question_counts(s.range.clone(), QuestionGroup::Library)
        )?;
        let mut by: BTreeMap<i64, (SessionCounts, i64)> = BTreeMap::new();
        for c in sessions {
            let id = c.keys[0].unwrap_or_default();
            by.entry(id).or_default().0 = c;
        }
        for (k, n) in questions {
            if let Some(id) = k.and_then(|k| k.parse::<i64>().ok()) {
                by.entry(id).or_default().1 = n;
            }
        }
        let mut rows: Vec<Vec<Cell>> = by
            .into_iter()
            .map(|(id, (c, q))| std::iter::once(s.library(Some(id))).chain(counted(&c, q)).collect())
            .collect();
        rows.sort_by(|a, b| cell_text(&a[0]).cmp(cell_text(&b[0])));
        let mut columns = vec![Column::new("library", "Library", Kind::Text)];
        columns.extend(SESSION_COLUMNS);
        Ok((columns, rows))
    }

    async fn coverage(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let pairs = self.store.session_counts(s.range.clone(), SessionGroup::Coverage).await?;
        let mut rows: Vec<Vec<Cell>> =
            pairs.iter().map(|c| vec![s.library(c.keys[0]), s.library(c.keys[1]), Cell::Int(c.accepted)]).collect();
        rows.sort_by(|a, b| (cell_text(&a[0]), cell_text(&a[1])).cmp(&(cell_text(&b[0]), cell_text(&b[1]))));
        let columns = vec![
            Column::new("patron_library", "Patron's library", Kind::Text),
            Column::new("serving_library", "Served by", Kind::Text),
            Column::new("chats", "Chats", Kind::Int),
        ];
        Ok((columns, rows))
    }

    async fn by_librarian(&self, staff: &Staff, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let (served, emailed) = tokio::try_join!(
            self.store.session_counts(s.range.clone(), SessionGroup::Librarian),
            self.store.question_counts(s.range.clone(), QuestionGroup::EmailedBy)
        )?;
        let people: HashMap<i64, (String, String)> = self
            .store
            .staff_of(staff.home.cooperative)
            .await?
            .into_iter()
            .map(|e| (e.staff.id.0, (e.staff.display_name, e.library_name)))
            .collect();
        // Each librarian who served a chat or e-mailed an answer: a question
        // asked by the form is answered by e-mail, with no chat to count.
        let emailed: HashMap<i64, i64> =
            emailed.into_iter().filter_map(|(k, n)| Some((k?.parse::<i64>().ok()?, n))).collect();
        let mut ids: Vec<i64> = served.iter().filter_map(|c| c.keys[0]).collect();
        ids.extend(emailed.keys().filter(|id| !served.iter().any(|c| c.keys[0] == Some(**id))));
        let mut rows: Vec<Vec<Cell>> = ids
            .into_iter()
            .map(|id| {
                let (name, library) = people.get(&id).cloned().unwrap_or_default();
                let c = served.iter().find(|c| c.keys[0] == Some(id));
                let (accepted, duration_sum, timed, ratings, rating_sum) =
                    c.map_or((0, 0, 0, 0, 0), |c| (c.accepted, c.duration_sum, c.timed, c.ratings, c.rating_sum));
                vec![
                    text(name),
                    text(library),
                    Cell::Int(accepted),
                    Cell::Int(emailed.get(&id).copied().unwrap_or(0)),
                    Cell::Number(r::mean(duration_sum, timed)),
                    Cell::Int(ratings),
                    Cell::Number(r::mean(rating_sum, ratings)),
                ]
            })
            .collect();
        rows.sort_by(|a, b| cell_text(&a[0]).cmp(cell_text(&b[0])));
        let columns = vec![
            Column::new("librarian", "Librarian", Kind::Text),
            Column::new("library", "Library", Kind::Text),
            Column::new("chats", "Chats served", Kind::Int),
            Column::new("emailed", "Questions answered by e-mail", Kind::Int),
            Column::new("mean_duration_s", "Mean duration (s)", Kind::Number),
            Column::new("ratings", "Ratings", Kind::Int),
            Column::new("mean_rating", "Mean rating", Kind::Number),
        ];
        Ok((columns, rows))
    }

    async fn by_code(&self, staff: &Staff, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let counts = self.store.question_counts(s.range.clone(), QuestionGroup::Code).await?;
        let codes = self.store.codes(staff.home.cooperative).await?;
        let position = |k: &Option<String>| codes.iter().position(|c| Some(&c.key) == k.as_ref()).unwrap_or(usize::MAX);
        let mut counts = counts;
        counts.sort_by_key(|(k, _)| (position(k), k.clone()));
        let rows = counts
            .into_iter()
            .map(|(k, n)| {
                let label = match &k {
                    None => "(no code yet)".to_owned(),
                    Some(k) => codes.iter().find(|c| &c.key == k).map_or_else(|| k.clone(), |c| c.label.clone()),
                };
                vec![text(k.unwrap_or_default()), text(label), Cell::Int(n)]
            })
            .collect();
        let columns = vec![
            Column::new("code", "Code", Kind::Text),
            Column::new("label", "Resolution code", Kind::Text),
            Column::new("questions", "Questions", Kind::Int),
        ];
        Ok((columns, rows))
    }

    async fn by_status(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let counts: HashMap<Option<String>, i64> =
            self.store.question_counts(s.range.clone(), QuestionGroup::Status).await?.into_iter().collect();
        let rows = Status::ALL
            .iter()
            .map(|st| {
                vec![text(st.as_str()), Cell::Int(counts.get(&Some(st.as_str().to_owned())).copied().unwrap_or(0))]
            })
            .collect();
        let columns =
            vec![Column::new("status", "Status", Kind::Text), Column::new("questions", "Questions", Kind::Int)];
        Ok((columns, rows))
    }

    async fn total(&self, s: &Scope) -> Result<SessionCounts, refdesk_store::StoreError> {
        let all = self.store.session_counts(s.range.clone(), SessionGroup::Total).await?;
        Ok(all.into_iter().next().unwrap_or_default())
    }

    async fn by_channel(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let (t, questions) =
            tokio::try_join!(self.total(s), self.store.question_counts(s.range.clone(), QuestionGroup::Channel))?;
        let questions: HashMap<Option<String>, i64> = questions.into_iter().collect();
        let rows = [
            ("chat", t.accepted),
            ("missed", t.missed),
            ("abandoned", t.abandoned),
            ("waiting", t.waiting),
            ("form", t.forms),
        ]
        .into_iter()
        .map(|(ch, n)| {
            vec![text(ch), Cell::Int(n), Cell::Int(questions.get(&Some(ch.to_owned())).copied().unwrap_or(0))]
        })
        .collect();
        let columns = vec![
            Column::new("channel", "Channel", Kind::Text),
            Column::new("sessions", "Chats and forms", Kind::Int),
            Column::new("questions", "Questions", Kind::Int),
        ];
        Ok((columns, rows))
    }

    async fn service(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let (t, waits, durations, conferenced) = tokio::try_join!(
            self.total(s),
            self.store.span_histogram(s.range.clone(), Span::Wait),
            self.store.span_histogram(s.range.clone(), Span::Duration),
            self.store.conferenced(s.range.clone())
        )?;
        let int = |v: i64| Cell::Int(v);
        let opt = |v: Option<i64>| Cell::Number(v.map(|v| v as f64));
        let rows: Vec<(&str, Cell)> = vec![
            ("chats", int(t.chats)),
            ("accepted", int(t.accepted)),
            ("missed", int(t.missed)),
            ("abandoned", int(t.abandoned)),
            ("wait_median_s", opt(r::percentile(&waits, 1, 2))),
            ("wait_p90_s", opt(r::percentile(&waits, 9, 10))),
            ("duration_median_s", opt(r::percentile(&durations, 1, 2))),
            ("duration_p90_s", opt(r::percentile(&durations, 9, 10))),
            ("conferenced_chats", int(conferenced)),
            ("transfers", int(t.handovers)),
            ("ratings", int(t.ratings)),
            ("mean_rating", Cell::Number(r::mean(t.rating_sum, t.ratings))),
        ];
        let columns = vec![Column::new("metric", "Figure", Kind::Text), Column::new("value", "Value", Kind::Number)];
        Ok((columns, rows.into_iter().map(|(k, v)| vec![text(k), v]).collect()))
    }

    async fn ratings(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let by = self.store.session_counts(s.range.clone(), SessionGroup::Rating).await?;
        let rows = (1..=5)
            .map(|n| {
                let count = by.iter().find(|c| c.keys[0] == Some(n)).map_or(0, |c| c.sessions);
                vec![Cell::Int(n), Cell::Int(count)]
            })
            .collect();
        let columns = vec![Column::new("rating", "Rating", Kind::Int), Column::new("chats", "Chats", Kind::Int)];
        Ok((columns, rows))
    }

    async fn rating_comments(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let comments = self.store.rating_comments(s.range.clone(), 1000).await?;
        let rows = comments
            .into_iter()
            .map(|c| {
                vec![
                    text(r::date_of(s.zone.day_of(c.at))),
                    s.library(Some(c.library.0)),
                    Cell::Int(c.rating),
                    text(c.comment),
                    c.question.map_or(Cell::Number(None), |q| Cell::Int(q.0)),
                ]
            })
            .collect();
        let columns = vec![
            Column::new("date", "Date", Kind::Date),
            Column::new("library", "Library", Kind::Text),
            Column::new("rating", "Rating", Kind::Int),
            Column::new("comment", "Comment", Kind::Text),
            Column::new("question", "Question", Kind::Int),
        ];
        Ok((columns, rows))
    }

    async fn read_scale(&self, s: &Scope) -> AppResult<(Vec<Column>, Vec<Vec<Cell>>)> {
        let counts: HashMap<Option<String>, i64> =
            self.store.question_counts(s.range.clone(), QuestionGroup::ReadScale).await?.into_iter().collect();
        let rows = (1..=6)
            .map(|n: i64| (n.to_string(), counts.get(&Some(n.to_string())).copied().unwrap_or(0)))
            .chain(std::iter::once((String::new(), counts.get(&None).copied().unwrap_or(0))))
            .map(|(level, n)| vec![text(level), Cell::Int(n)])
            .collect();
        let columns =
            vec![Column::new("level", "READ level", Kind::Text), Column::new("questions", "Questions", Kind::Int)];
        Ok((columns, rows))
    }
}

fn cell_text(c: &Cell) -> &str {
    match c {
        Cell::Text(t) => t,
        _ => "",
    }
}
