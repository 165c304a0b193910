//! The reports' figures (issue 15), counted by the database: one scan of
//! the range per report, grouped by integers — local hours, library and
//! staff ids — that the app turns into days, weeks, names and tables.
//!
//! The same SQL runs on both backends: bucketing is integer arithmetic on
//! the millisecond timestamps, sums are cast to `BIGINT` (PostgreSQL's
//! `SUM` of a `BIGINT` is `NUMERIC`), and the libraries in scope are
//! written into the statement as integers.

use super::Backend;
use crate::api::Reports;
use crate::sql::{args, within, Cols, Db};
use crate::{QuestionGroup, RatingComment, ReportRange, Result, SessionCounts, SessionGroup, Span};
use async_trait::async_trait;
use refdesk_domain::ids::LibraryId;

fn sum(expr: &str) -> String {
    format!("COALESCE(CAST(SUM({expr}) AS BIGINT), 0)")
}

/// The counts every session report carries, as `SELECT` columns.
fn session_columns() -> String {
    let never_accepted_ended = "NOT s.by_form AND s.accepted_at IS NULL AND s.state = 'ended'";
    [
        "COUNT(*) AS sessions".to_string(),
        format!("{} AS chats", sum("CASE WHEN s.by_form THEN 0 ELSE 1 END")),
        format!("{} AS accepted", sum("CASE WHEN s.accepted_at IS NOT NULL THEN 1 ELSE 0 END")),
        format!(
            "{} AS missed",
            sum(&format!("CASE WHEN {never_accepted_ended} AND COALESCE(s.ended_by, '') <> 'patron' THEN 1 ELSE 0 END"))
        ),
        format!("{} AS abandoned", sum(&format!("CASE WHEN {never_accepted_ended} AND s.ended_by = 'patron' THEN 1 ELSE 0 END"))),
        format!("{} AS waiting", sum("CASE WHEN NOT s.by_form AND s.accepted_at IS NULL AND s.state <> 'ended' THEN 1 ELSE 0 END")),
        format!("{} AS forms", sum("CASE WHEN s.by_form THEN 1 ELSE 0 END")),
        format!("{} AS handovers", sum("s.handovers")),
        "COUNT(s.rating) AS ratings".to_string(),
        format!("{} AS rating_sum", sum("s.rating")),
        format!("{} AS timed", sum("CASE WHEN s.accepted_at IS NOT NULL AND s.ended_at IS NOT NULL THEN 1 ELSE 0 END")),
        format!(
            "{} AS duration_sum",
            sum("CASE WHEN s.accepted_at IS NOT NULL AND s.ended_at IS NOT NULL THEN (s.ended_at - s.accepted_at) / 1000 ELSE 0 END")
        ),
    ]
    .join(", ")
}

fn session_counts(r: &dyn Cols, keys: usize) -> Result<SessionCounts> {
    let key = |i: usize| if i < keys { r.opt_int(&format!("k{i}")) } else { Ok(None) };
    Ok(SessionCounts {
        keys: [key(0)?, key(1)?],
        sessions: r.int("sessions")?,
        chats: r.int("chats")?,
        accepted: r.int("accepted")?,
        missed: r.int("missed")?,
        abandoned: r.int("abandoned")?,
        waiting: r.int("waiting")?,
        forms: r.int("forms")?,
        handovers: r.int("handovers")?,
        ratings: r.int("ratings")?,
        rating_sum: r.int("rating_sum")?,
        timed: r.int("timed")?,
        duration_sum: r.int("duration_sum")?,
    })
}

/// The sessions of the range: created in it, not practice, and (but for
/// the groups that look at who served) of a library in scope.
fn session_range(range: &ReportRange, by: SessionGroup) -> (String, Vec<&'static str>, &'static str) {
    let time = "s.created_at >= ?1 AND s.created_at < ?2 AND NOT s.practice";
    let patron = within("s.library_id", &range.libraries);
    match by {
        SessionGroup::Hour => (format!("{time} AND {patron}"), vec!["(s.created_at + ?3) / ?4"], ""),
        SessionGroup::Library => (format!("{time} AND {patron}"), vec!["s.library_id"], ""),
        SessionGroup::Rating => (format!("{time} AND {patron} AND s.rating IS NOT NULL"), vec!["s.rating"], ""),
        SessionGroup::Total => (format!("{time} AND {patron}"), vec![], ""),
        SessionGroup::Coverage => (
            format!(
                "{time} AND s.accepted_at IS NOT NULL AND ({patron} OR {})",
                within("st.library_id", &range.libraries)
            ),
            vec!["s.library_id", "st.library_id"],
            "JOIN staff st ON st.id = s.librarian_id",
        ),
        // The librarians in scope first, then each one's chats from the
        // `sessions_served` index (a join would let the planner scan every
        // served chat and look each librarian up).
        SessionGroup::Librarian => (
            format!(
                "{time} AND s.accepted_at IS NOT NULL AND s.librarian_id IN (SELECT st.id FROM staff st WHERE {})",
                within("st.library_id", &range.libraries)
            ),
            vec!["s.librarian_id"],
            "",
        ),
    }
}

async fn sessions<D: Db>(db: &mut D, range: ReportRange, by: SessionGroup) -> Result<Vec<SessionCounts>> {
    let (cond, keys, join) = session_range(&range, by);
    let key_cols: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("{k} AS k{i}, ")).collect();
    let group = if keys.is_empty() {
        String::new()
    } else {
        format!("GROUP BY {}", (0..keys.len()).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", "))
    };
    let sql = format!("SELECT {} {} FROM sessions s {join} WHERE {cond} {group}", key_cols.concat(), session_columns());
    let n = keys.len();
    let hourly = args![range.from, range.to, range.offset, range.bucket];
    let binds = if by == SessionGroup::Hour { hourly } else { &hourly[..2] };
    let rows = db.rows(&sql, binds, move |r| session_counts(r, n)).await?;
    // An empty range still has a total, of zeros.
    Ok(rows.into_iter().filter(|c| c.sessions > 0 || n == 0).collect())
}

async fn questions<D: Db>(db: &mut D, range: ReportRange, by: QuestionGroup) -> Result<Vec<(Option<String>, i64)>> {
    let scope = match by {
        // The librarians in scope, as in the sessions' `Librarian` group,
        // each one's questions from the `questions_emailed_by` index.
        QuestionGroup::EmailedBy => {
            format!("q.emailed_by IN (SELECT st.id FROM staff st WHERE {})", within("st.library_id", &range.libraries))
        }
        _ => within("q.library_id", &range.libraries),
    };
    let (key, join) = match by {
        QuestionGroup::Hour => ("CAST((q.created_at + ?3) / ?4 AS TEXT)", ""),
        QuestionGroup::EmailedBy => ("CAST(q.emailed_by AS TEXT)", ""),
        QuestionGroup::Library => ("CAST(q.library_id AS TEXT)", ""),
        QuestionGroup::Code => ("q.code", ""),
        QuestionGroup::Status => ("q.status", ""),
        QuestionGroup::ReadScale => ("CAST(q.read_scale AS TEXT)", ""),
        QuestionGroup::Channel => (crate::sql::select::channel!(), "JOIN sessions s ON s.id = q.session_id"),
    };
    let sql = format!(
        "SELECT {key} AS k, COUNT(*) AS n FROM questions q {join}
         WHERE q.created_at >= ?1 AND q.created_at < ?2 AND NOT q.exclude_from_stats AND {scope}
         GROUP BY k"
    );
    let hourly = args![range.from, range.to, range.offset, range.bucket];
    let binds = if by == QuestionGroup::Hour { hourly } else { &hourly[..2] };
    db.rows(&sql, binds, |r| Ok((r.opt_text("k")?, r.int("n")?))).await
}

async fn histogram<D: Db>(db: &mut D, range: ReportRange, span: Span) -> Result<Vec<(i64, i64)>> {
    let (secs, cond) = match span {
        Span::Wait => ("(s.accepted_at - s.created_at) / 1000", "s.accepted_at IS NOT NULL"),
        Span::Duration => {
            ("(s.ended_at - s.accepted_at) / 1000", "s.accepted_at IS NOT NULL AND s.ended_at IS NOT NULL")
        }
    };
    let sql = format!(
        "SELECT {secs} AS secs, COUNT(*) AS n FROM sessions s
         WHERE s.created_at >= ?1 AND s.created_at < ?2 AND NOT s.practice AND {cond} AND {}
         GROUP BY secs ORDER BY secs",
        within("s.library_id", &range.libraries)
    );
    db.rows(&sql, args![range.from, range.to], |r| Ok((r.int("secs")?, r.int("n")?))).await
}

#[async_trait]
impl<B: Backend> Reports for B {
    async fn session_counts(&self, range: ReportRange, by: SessionGroup) -> Result<Vec<SessionCounts>> {
        self.read_long(move |db| Box::pin(sessions(db, range, by))).await
    }

    async fn question_counts(&self, range: ReportRange, by: QuestionGroup) -> Result<Vec<(Option<String>, i64)>> {
        self.read_long(move |db| Box::pin(questions(db, range, by))).await
    }

    async fn span_histogram(&self, range: ReportRange, span: Span) -> Result<Vec<(i64, i64)>> {
        self.read_long(move |db| Box::pin(histogram(db, range, span))).await
    }

    async fn conferenced(&self, range: ReportRange) -> Result<i64> {
        self.read_long(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT COUNT(*) AS n FROM sessions s
                     WHERE s.conferenced AND s.created_at >= ?1 AND s.created_at < ?2 AND NOT s.practice AND {}",
                    within("s.library_id", &range.libraries)
                );
                crate::sql::int(db, &sql, args![range.from, range.to], "n").await
            })
        })
        .await
    }

    async fn rating_comments(&self, range: ReportRange, limit: u32) -> Result<Vec<RatingComment>> {
        self.read_long(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT s.created_at AS at, s.library_id AS library_id, s.rating AS rating,
                            s.rating_comment AS comment, q.id AS question_id
                     FROM sessions s LEFT JOIN questions q ON q.session_id = s.id
                     WHERE s.created_at >= ?1 AND s.created_at < ?2 AND NOT s.practice AND {}
                       AND s.rating IS NOT NULL AND s.rating_comment IS NOT NULL AND s.rating_comment <> ''
                     ORDER BY s.created_at DESC, s.id DESC LIMIT ?3",
                    within("s.library_id", &range.libraries)
                );
                db.rows(&sql, args![range.from, range.to, i64::from(limit)], |r| {
                    Ok(RatingComment {
                        at: r.int("at")?,
                        library: LibraryId(r.int("library_id")?),
                        rating: r.int("rating")?,
                        comment: r.text("comment")?,
                        question: r.opt_int("question_id")?.map(refdesk_domain::ids::QuestionId),
                    })
                })
                .await
            })
        })
        .await
    }
}
