//! Reports (issue 15): a report is a table — named columns and rows of
//! cells — whatever it counts, so that the page, the chart beside each
//! table and the CSV export all read one shape. Also the calendar and the
//! percentiles the reports are computed with.

use serde::Serialize;

/// One report: its columns and rows, for a range of local dates.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Table {
    /// The report's name, as in `/api/reports/{name}`.
    pub name: String,
    /// What it shows, in words.
    pub title: String,
    /// The first day counted (YYYY-MM-DD, local).
    pub from: String,
    /// The last day counted (YYYY-MM-DD, local).
    pub to: String,
    /// Local time minus UTC, in minutes, at the range's start (a time
    /// zone's may change within the range: see `time_zone`).
    pub utc_offset: i32,
    /// The local time the days and hours are counted in: a time zone of
    /// the IANA database ("Europe/Paris"), each chat placed by the offset
    /// it had then, or a fixed offset ("UTC+01:00").
    pub time_zone: String,
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows: one cell per column.
    #[cfg_attr(feature = "openapi", schema(schema_with = rows_schema))]
    pub rows: Vec<Vec<Cell>>,
}

/// The rows' schema: a cell is a string, a number or null (`anyOf`, since
/// a whole number is also a number).
#[cfg(feature = "openapi")]
fn rows_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let cell = AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(SchemaType::Array(vec![Type::Number, Type::Null])))
        .description(Some("a text or a date, a number, or null"));
    ArrayBuilder::new().items(ArrayBuilder::new().items(cell)).build()
}

/// A column of a [`Table`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Column {
    /// Stable name.
    pub key: &'static str,
    /// Heading, in words.
    pub label: &'static str,
    /// What its cells hold.
    pub kind: Kind,
}

/// What a column's cells hold.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Words.
    Text,
    /// A local date, YYYY-MM-DD.
    Date,
    /// A whole number.
    Int,
    /// A number rounded to two decimals, or null when there is nothing to
    /// average.
    Number,
}

/// One cell: a string, a whole number, or a number (null when undefined).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// Words or a date.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number, or nothing.
    Number(Option<f64>),
}

impl Column {
    /// A column.
    pub const fn new(key: &'static str, label: &'static str, kind: Kind) -> Column {
        Column { key, label, kind }
    }
}

/// `sum / n` rounded to two decimals; `None` when `n` is 0.
pub fn mean(sum: i64, n: i64) -> Option<f64> {
    (n > 0).then(|| ((sum as f64 / n as f64) * 100.0).round() / 100.0)
}

/// The nearest-rank percentile `num / den` of a histogram of (value,
/// count), sorted by value: the value at rank ⌈p·n⌉. `None` when empty.
pub fn percentile(histogram: &[(i64, i64)], num: i64, den: i64) -> Option<i64> {
    let n: i64 = histogram.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return None;
    }
    let rank = (num * n + den - 1) / den;
    let mut seen = 0;
    for (value, count) in histogram {
        seen += count;
        if seen >= rank.max(1) {
            return Some(*value);
        }
    }
    histogram.last().map(|(v, _)| *v)
}

/// Milliseconds in a day.
pub const DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// A day since 1970-01-01 as YYYY-MM-DD.
pub fn date_of(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses YYYY-MM-DD into a day since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let day = days_from_civil(y, m, d);
    // 2026-02-30 comes back as another date: refuse it.
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// The weekday of a day since 1970-01-01: 0 is Monday (1970-01-01 was a
/// Thursday).
pub fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-11-30").map(date_of).as_deref(), Some("2026-11-30"));
        assert_eq!(parse_date("2024-02-29").map(date_of).as_deref(), Some("2024-02-29"));
        for bad in ["2026-02-30", "2026-13-01", "26-11-30", "2026-1-30", "2026-11-3x", ""] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        for day in -1000..30_000 {
            assert_eq!(parse_date(&date_of(day)), Some(day));
        }
    }

    #[test]
    fn weekdays_start_on_monday() {
        assert_eq!(weekday(0), 3); // Thursday
        assert_eq!(parse_date("2026-11-30").map(weekday), Some(0)); // a Monday
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let h = [(1, 1), (2, 1), (3, 1), (4, 1), (10, 1)];
        assert_eq!(percentile(&h, 1, 2), Some(3));
        assert_eq!(percentile(&h, 9, 10), Some(10));
        assert_eq!(percentile(&[(5, 10)], 9, 10), Some(5));
        assert_eq!(percentile(&[], 1, 2), None);
        assert_eq!(mean(7, 3), Some(2.33));
        assert_eq!(mean(1, 0), None);
    }
}
