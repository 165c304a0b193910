//! Reports (issue 15) and the CSV export of any report and of the question
//! list. CSV is RFC 4180 in UTF-8, and safe to open in a spreadsheet: a
//! text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage
//! return is prefixed with `'`, so that it is read as text, never as a
//! formula.

use super::auth::CurrentStaff;
use crate::error::{ApiError, ApiResult, ErrorBody, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use refdesk_app::reports::{ReportParams, REPORTS};
use refdesk_app::zone::Zone;
use refdesk_app::ListFilter;
use refdesk_domain::report::{self as r, Cell, Table, DAY};
use refdesk_store::QuestionRecord;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(report)).routes(routes!(export_questions))
}

/// The most questions one export holds, newest first.
pub const EXPORT_MAX: usize = 50_000;

/// A report offered.
#[derive(Serialize, ToSchema)]
struct ReportName {
    /// As in `/api/reports/{name}`.
    name: &'static str,
    /// What it shows.
    title: &'static str,
}

/// Every report, in the order the reports page shows them.
#[utoipa::path(get, path = "/api/reports", tag = "reports", security(("staff" = [])),
    responses(
        (status = 200, description = "the reports", body = [ReportName]),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ))]
async fn list(CurrentStaff(_): CurrentStaff) -> axum::Json<Vec<ReportName>> {
    axum::Json(REPORTS.iter().map(|(name, title)| ReportName { name, title }).collect())
}

/// What a report is asked for.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// The first day counted, YYYY-MM-DD in local time (default: 29 days before `to`).
    #[param(value_type = Option<String>, format = Date)]
    from: Option<String>,
    /// The last day counted, YYYY-MM-DD in local time (default: today). At most 1,100 days after `from`.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<String>,
    /// Local time minus UTC in minutes, −840 to 840 (default 0): one
    /// offset all year. Not with `tz`.
    #[param(value_type = Option<i32>, minimum = -840, maximum = 840)]
    utc_offset: Option<String>,
    /// A time zone of the IANA database (`Europe/Paris`): each chat is
    /// counted on the day and hour it had there, daylight saving time
    /// included. Not with `utc_offset`.
    #[param(value_type = Option<String>, max_length = 64)]
    tz: Option<String>,
    /// Only this library (a slug within my scope).
    library: Option<String>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<Format>, inline)]
    format: Option<String>,
}

/// How a report is sent.
#[derive(Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // named for the document; parsed from text
enum Format {
    /// JSON: a table.
    Json,
    /// CSV, with a header row.
    Csv,
}

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    crate::input::invalid(field, why)
}

impl ReportQuery {
    fn params(&self, today_utc: i64) -> Result<(ReportParams, bool), ApiError> {
        let zone = match (self.tz.as_deref().filter(|t| !t.is_empty()), self.utc_offset.as_deref()) {
            (Some(_), Some(v)) if !v.is_empty() => return Err(bad("tz", "give tz or utc_offset, not both")),
            (Some(name), _) => Zone::named("tz", name)?,
            (None, None | Some("")) => Zone::fixed(0)?,
            (None, Some(v)) => {
                Zone::fixed(v.parse().map_err(|_| bad("utc_offset", "must be a whole number of minutes"))?)?
            }
        };
        let date = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            match v.as_deref() {
                None | Some("") => Ok(None),
                Some(v) => r::parse_date(v).map(Some).ok_or_else(|| bad(field, "must be a date, YYYY-MM-DD")),
            }
        };
        let today = zone.day_of(today_utc);
        let to = date("to", &self.to)?.unwrap_or(today);
        let from = date("from", &self.from)?.unwrap_or(to - 29);
        let csv = match self.format.as_deref() {
            None | Some("json") => false,
            Some("csv") => true,
            Some(_) => return Err(bad("format", "use json or csv")),
        };
        let library = match self.library.as_deref() {
            None | Some("") => None,
            Some(slug) => Some(refdesk_domain::input::slug("library", slug)?),
        };
        Ok((ReportParams::new(from, to, zone, library)?, csv))
    }
}

/// One report over a range of local dates, for the libraries my role
/// covers (a librarian: my library; admins: their institution or
/// cooperative). Practice chats are never counted.
#[utoipa::path(get, path = "/api/reports/{name}", tag = "reports", security(("staff" = [])),
    params(("name" = String, Path, description = "the report (see `GET /api/reports`)"), ReportQuery),
    responses(
        (status = 200, description = "the report: a table, or CSV with `format=csv`",
            content((Table = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`bad_query`: a parameter not known", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such report", body = ErrorBody),
        (status = 422, description = "`invalid`: a bad date, range, offset, time zone, format or library", body = ErrorBody),
    ))]
async fn report(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(name): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    let (params, csv) = q.params(s.app.clock().now())?;
    let table = s.app.report(&staff, &name, &params).await?;
    if csv {
        // The zone in the name too: the same days in two zones are two files.
        let zone: String =
            table.time_zone.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let file = format!("refdesk-{}-{}-{}-{zone}.csv", table.name, table.from, table.to);
        Ok(csv_response(&file, table_csv(&table)?))
    } else {
        Ok(axum::Json(table).into_response())
    }
}

/// The question list as CSV, with the list's filters (`GET /api/questions`'s
/// parameters; `before` and `limit` are not used): every matching question,
/// newest first, at most 50,000. No patron's name or e-mail address. It is
/// read 200 questions at a time as the client takes them, each read in the
/// staff member's own line of long reads (two at once, as reports) and
/// spending one of their reads (`limits.staff_reads_per_second`): past the
/// budget the download waits, it does not fail.
#[utoipa::path(get, path = "/api/questions/export", tag = "questions", security(("staff" = [])),
    params(super::questions::ListParams),
    responses(
        (status = 200, description = "the questions, as CSV", body = String, content_type = "text/csv"),
        (status = 400, description = "`bad_query`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 422, description = "`invalid`: a bad filter, naming it", body = ErrorBody),
    ))]
async fn export_questions(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    headers: axum::http::HeaderMap,
    Query(p): Query<super::questions::ListParams>,
) -> ApiResult<Response> {
    // The sign-in, looked at again before each page (CurrentStaff found it).
    let token = crate::input::cookie_token(&headers, s.secure_cookies).unwrap_or_default().to_owned();
    let filter = super::questions::filter(p)?;
    // The first page is read before answering, so that a refusal is an
    // error status, not a broken download; the rest is read a page at a
    // time as the client takes it: what is held is a page, whatever the
    // export's length, and a client that stops reading stops the reads.
    let page = ListFilter { before: None, limit: EXPORT_PAGE as u32, ..filter };
    let first = s.app.question_export_page(&staff, page.clone()).await?;
    // Codes are written as the librarians pick them (their labels), as the
    // list shows them; a key no code has any more, as it is.
    let labels: Labels = Arc::new(s.app.codes(&staff).await?.into_iter().map(|c| (c.key, c.label)).collect());
    let mut w = questions_csv_writer()?;
    write_questions(&mut w, &first, &labels)?;
    let head = finish(w)?;
    let last = first.last().map(|q| q.id).filter(|_| first.len() == EXPORT_PAGE);
    let reads = (s.sockets.sign_in_reads.clone(), s.app.limits().staff_reads_per_second);
    let export = Export { app: s.app.clone(), staff, token, page, written: first.len(), last, reads, labels };
    let rest =
        futures_util::stream::unfold(export, |mut e| async move { e.next_chunk().await.map(|chunk| (chunk, e)) });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(head))),
        rest,
    );
    let today = r::date_of(s.app.clock().now().div_euclid(DAY));
    Ok(csv_response(&format!("refdesk-questions-{today}.csv"), axum::body::Body::from_stream(body)))
}

/// Questions read per page of an export.
const EXPORT_PAGE: usize = 200;

/// Resolution codes' labels by key.
type Labels = Arc<std::collections::HashMap<String, String>>;

/// An export under way: the list's query, and how far it has come.
struct Export {
    app: refdesk_app::App,
    staff: refdesk_domain::org::Staff,
    /// The exporter's sign-in: an export whose sign-in ended (signed out,
    /// the account disabled or its password reset) ends at the next page.
    token: String,
    page: ListFilter,
    written: usize,
    /// The last question written, while a full page may have more after it.
    last: Option<refdesk_domain::ids::QuestionId>,
    /// The staff members' read budgets, and the rate: each page spends one
    /// of the exporter's, as a request would.
    reads: (std::sync::Arc<crate::ws::Registry<String>>, u32),
    /// The codes' labels, read once for the whole export.
    labels: Labels,
}

impl Export {
    /// The next page as CSV rows; `None` once done. A failure ends the
    /// download short (the status has gone out); it is logged.
    async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, std::io::Error>> {
        let before = self.last.filter(|_| self.written < EXPORT_MAX)?;
        self.page.before = Some(before);
        // Each page spends a read of the exporter's budget, waiting for one
        // rather than failing the download: the pages come no faster than
        // the account's reads, however many exports it runs.
        let (budgets, rate) = &self.reads;
        let key = format!("staff:{}", self.staff.id.0);
        while !budgets.spend(key.clone(), (*rate, rate.saturating_mul(10))) {
            tokio::time::sleep(std::time::Duration::from_secs(1) / (*rate).max(1)).await;
        }
        let chunk = async {
            // Read as the account is now: its role or libraries may have
            // changed, and a sign-in that ended reads no more.
            self.staff = self.app.staff_for_token(&self.token).await.map_err(ApiError::from)?;
            let got = self.app.question_export_page(&self.staff, self.page.clone()).await.map_err(ApiError::from)?;
            let take = got.len().min(EXPORT_MAX - self.written);
            let mut w = writer();
            write_questions(&mut w, &got[..take], &self.labels)?;
            self.written += take;
            self.last = if take == EXPORT_PAGE { got.last().map(|q| q.id) } else { None };
            finish(w)
        };
        Some(chunk.await.map_err(|e| {
            tracing::warn!(error = %e.message, "a question export ended short");
            std::io::Error::other(e.message)
        }))
    }
}

fn csv_response(file: &str, body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        body.into(),
    )
        .into_response()
}

/// A text cell as a spreadsheet must read it: as text. The full-width
/// forms are there because some spreadsheets read them as their ASCII
/// twins.
pub fn defused(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// Every field quoted: a spreadsheet whose list separator is `;` would
/// otherwise split an unquoted `a;=b` and read `=b` as a formula.
fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new())
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ApiError> {
    w.into_inner().map_err(|e| ApiError::internal(format!("cannot write CSV: {e}")))
}

fn csv_failed(e: csv::Error) -> ApiError {
    ApiError::internal(format!("cannot write CSV: {e}"))
}

/// A report as CSV: the labels, then the rows.
pub fn table_csv(t: &Table) -> Result<Vec<u8>, ApiError> {
    let mut w = writer();
    w.write_record(t.columns.iter().map(|c| defused(c.label).into_owned())).map_err(csv_failed)?;
    for row in &t.rows {
        let cells = row.iter().map(|c| match c {
            Cell::Text(s) => defused(s).into_owned(),
            Cell::Int(n) => n.to_string(),
            Cell::Number(Some(x)) => x.to_string(),
            Cell::Number(None) => String::new(),
        });
        w.write_record(cells).map_err(csv_failed)?;
    }
    finish(w)
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", r::date_of(ms.div_euclid(DAY)), secs / 3600, secs / 60 % 60, secs % 60)
}

/// A CSV writer with the question list's header row.
fn questions_csv_writer() -> Result<csv::Writer<Vec<u8>>, ApiError> {
    let mut w = writer();
    let head = [
        "Question",
        "Created (UTC)",
        "Library",
        "Status",
        "Code",
        "READ scale",
        "Librarian",
        "Assigned to",
        "Referred to",
        "Follow-up",
        "Rating",
        "Question text",
        "Answered by e-mail by",
        "Channel",
        "Live",
    ];
    w.write_record(head).map_err(csv_failed)?;
    Ok(w)
}

/// The export's "Follow-up" cell: "yes" while a flagged question is still
/// to do (new or pending: the list's "Flagged: follow-up" view), "done"
/// once it was answered or closed (the flag stays, in its history).
fn follow_up(st: &refdesk_domain::question::QuestionState) -> &'static str {
    use refdesk_domain::question::Status;
    match (st.follow_up, st.status) {
        (false, _) => "",
        (true, Status::New | Status::Pending) => "yes",
        (true, _) => "done",
    }
}

/// Questions as rows of the question list's CSV.
fn write_questions(
    w: &mut csv::Writer<Vec<u8>>,
    questions: &[QuestionRecord],
    labels: &Labels,
) -> Result<(), ApiError> {
    for q in questions {
        let st = &q.state;
        let code = st.code.as_deref().map(|key| labels.get(key).map_or(key, String::as_str));
        let row = [
            q.id.0.to_string(),
            utc(q.created_at),
            defused(&q.library_name).into_owned(),
            st.status.as_str().to_owned(),
            defused(code.unwrap_or("")).into_owned(),
            st.read_scale.map(|n| n.to_string()).unwrap_or_default(),
            defused(q.librarian_name.as_deref().unwrap_or("")).into_owned(),
            defused(q.assignee_name.as_deref().unwrap_or("")).into_owned(),
            defused(q.referred_name.as_deref().unwrap_or("")).into_owned(),
            follow_up(st).to_owned(),
            q.rating.map(|n| n.to_string()).unwrap_or_default(),
            defused(&q.text).into_owned(),
            defused(q.emailed_by_name.as_deref().unwrap_or("")).into_owned(),
            q.channel.as_str().to_owned(),
            // B1: marked live wherever it is listed.
            if q.live { "yes" } else { "" }.to_owned(),
        ];
        w.write_record(row).map_err(csv_failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_read_as_text() {
        for f in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx", "＝1+1", "＠SUM(A1)"] {
            assert!(defused(f).starts_with('\''), "{f:?}");
        }
        assert_eq!(defused("plain, \"quoted\""), "plain, \"quoted\"");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(86_399_999), "1970-01-01T23:59:59Z");
    }
}
