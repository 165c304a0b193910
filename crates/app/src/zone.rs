//! A report's local time: a time zone of the IANA database, whose offset
//! from UTC changes with daylight saving time, or a fixed offset.
//!
//! A year's heat map counted at one offset puts every chat of the other
//! half of the year an hour off, and a day's last hour on the next day;
//! so a report names its zone (the page sends the browser's), and each
//! chat is placed by the offset its zone had when it was asked.

use refdesk_domain::report::{civil_from_days, DAY};
use refdesk_domain::{DomainError, Millis};

const MINUTE: Millis = 60_000;
const HOUR: Millis = 3_600_000;

/// The store's counts of a zone are grouped in buckets this long: a
/// quarter of an hour, which every offset the IANA database has used since
/// 1980 is a whole number of, so that a bucket lies within one local hour.
const QUARTER: Millis = 15 * MINUTE;

/// The longest name the IANA database has is 32 characters
/// ("America/Argentina/ComodRivadavia"); a longer one is not looked up.
const NAME_MAX: usize = 64;

/// Local time for a report.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: jiff::tz::TimeZone,
    /// The zone's name ("Europe/Paris"), or the offset's ("UTC+01:00").
    name: String,
    /// The offset, for a fixed one.
    fixed: Option<Millis>,
}

impl Zone {
    /// A zone of the IANA database, by its name (`field` names the input
    /// in the error).
    pub fn named(field: &'static str, name: &str) -> Result<Zone, DomainError> {
        let unknown = || DomainError::invalid(field, format!("no time zone is named {name:?} (e.g. Europe/Paris)"));
        if name.is_empty() || name.len() > NAME_MAX || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(unknown());
        }
        let tz = jiff::tz::TimeZone::get(name).map_err(|_| unknown())?;
        Ok(Zone { tz, name: name.to_owned(), fixed: None })
    }

    /// A fixed offset: local time minus UTC in minutes, −840 to 840.
    pub fn fixed(minutes: i32) -> Result<Zone, DomainError> {
        let minutes = refdesk_domain::input::utc_offset(minutes)?;
        let offset = jiff::tz::Offset::from_seconds(minutes * 60)
            .map_err(|_| DomainError::invalid("utc_offset", "give the offset from UTC in minutes, -840 to 840"))?;
        let sign = if minutes < 0 { '-' } else { '+' };
        let name = format!("UTC{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60);
        Ok(Zone { tz: jiff::tz::TimeZone::fixed(offset), name, fixed: Some(Millis::from(minutes) * MINUTE) })
    }

    /// The zone's name, or its offset's for a fixed one.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Local time minus UTC at `at`.
    pub fn offset_at(&self, at: Millis) -> Millis {
        if let Some(fixed) = self.fixed {
            return fixed;
        }
        match jiff::Timestamp::from_millisecond(at) {
            Ok(t) => Millis::from(self.tz.to_offset(t).seconds()) * 1000,
            Err(_) => 0,
        }
    }

    /// The local day (days since 1970-01-01) `at` falls on.
    pub fn day_of(&self, at: Millis) -> i64 {
        (at + self.offset_at(at)).div_euclid(DAY)
    }

    /// The instant a local day begins: its midnight, or where a change of
    /// the clocks skips midnight, the first moment after.
    pub fn start_of(&self, day: i64) -> Result<Millis, DomainError> {
        if let Some(fixed) = self.fixed {
            return Ok(day * DAY - fixed);
        }
        let (y, m, d) = civil_from_days(day);
        let out_of_range = || DomainError::invalid("from", "dates from the year 1 to 9999");
        let date = i16::try_from(y)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, m as i8, d as i8).ok())
            .ok_or_else(out_of_range)?;
        let start = date.to_zoned(self.tz.clone()).map_err(|_| out_of_range())?;
        Ok(start.timestamp().as_millisecond())
    }

    /// How the store groups times for the hours of this zone: an offset
    /// added and the bucket's length. A fixed offset groups by local hour
    /// at once; a zone by UTC quarter hour, placed by [`Zone::local_hour`].
    pub fn grouping(&self) -> (Millis, Millis) {
        match self.fixed {
            Some(offset) => (offset, HOUR),
            None => (0, QUARTER),
        }
    }

    /// The local hour (since 1970-01-01 00:00 local) of a key of
    /// [`Zone::grouping`].
    pub fn local_hour(&self, key: i64) -> i64 {
        match self.fixed {
            Some(_) => key,
            None => {
                let at = key * QUARTER;
                (at + self.offset_at(at)).div_euclid(HOUR)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refdesk_domain::report::{days_from_civil, parse_date};

    fn at(y: i64, m: u32, d: u32, h: i64, min: i64) -> Millis {
        days_from_civil(y, m, d) * DAY + h * HOUR + min * MINUTE
    }

    #[test]
    fn a_zone_places_each_time_by_the_offset_it_had_then() {
        let paris = Zone::named("tz", "Europe/Paris").expect("in the database");
        // Winter (UTC+1) and summer (UTC+2); the clocks went forward on
        // 2027-03-28 at 01:00 UTC.
        assert_eq!(paris.offset_at(at(2027, 1, 15, 12, 0)), HOUR);
        assert_eq!(paris.offset_at(at(2027, 3, 28, 0, 59)), HOUR);
        assert_eq!(paris.offset_at(at(2027, 3, 28, 1, 0)), 2 * HOUR);
        assert_eq!(paris.offset_at(at(2027, 7, 1, 12, 0)), 2 * HOUR);
        // 22:30 UTC is the same day in winter, the next in summer.
        let jan = parse_date("2027-01-15").expect("a date");
        let jul = parse_date("2027-07-01").expect("a date");
        assert_eq!(paris.day_of(at(2027, 1, 15, 22, 30)), jan);
        assert_eq!(paris.day_of(at(2027, 7, 1, 22, 30)), jul + 1);
        // Local midnights.
        assert_eq!(paris.start_of(jan), Ok(at(2027, 1, 14, 23, 0)));
        assert_eq!(paris.start_of(jul), Ok(at(2027, 6, 30, 22, 0)));
    }

    #[test]
    fn the_store_s_quarter_hours_land_in_the_local_hour_they_lie_in() {
        let paris = Zone::named("tz", "Europe/Paris").expect("in the database");
        let (offset, bucket) = paris.grouping();
        assert_eq!((offset, bucket), (0, QUARTER));
        let hour = |t: Millis| paris.local_hour(t.div_euclid(bucket));
        // 00:45 UTC on the day the clocks go forward is 01:45 local; 01:15
        // UTC is 03:15 local (02:00–03:00 never happened).
        let day = days_from_civil(2027, 3, 28);
        assert_eq!(hour(at(2027, 3, 28, 0, 45)), day * 24 + 1);
        assert_eq!(hour(at(2027, 3, 28, 1, 15)), day * 24 + 3);
        // India is 5:30 ahead all year: its quarters still lie in one hour.
        let kolkata = Zone::named("tz", "Asia/Kolkata").expect("in the database");
        let h = |t: Millis| kolkata.local_hour(t.div_euclid(QUARTER));
        assert_eq!(h(at(2027, 1, 1, 0, 15)), days_from_civil(2027, 1, 1) * 24 + 5);
        assert_eq!(h(at(2027, 1, 1, 0, 30)), days_from_civil(2027, 1, 1) * 24 + 6);
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_at_the_first_moment_after() {
        // Santiago moved its clocks forward at midnight on 2026-09-06.
        let santiago = Zone::named("tz", "America/Santiago").expect("in the database");
        let day = days_from_civil(2026, 9, 6);
        assert_eq!(santiago.start_of(day), Ok(at(2026, 9, 6, 4, 0)));
        assert_eq!(santiago.day_of(at(2026, 9, 6, 4, 0)), day);
    }

    #[test]
    fn a_fixed_offset_is_the_same_all_year_and_names_itself() {
        let z = Zone::fixed(-330).expect("in range");
        assert_eq!(z.name(), "UTC-05:30");
        assert_eq!(z.offset_at(at(2027, 7, 1, 0, 0)), -330 * MINUTE);
        assert_eq!(z.grouping(), (-330 * MINUTE, HOUR));
        assert_eq!(z.local_hour(7), 7);
        assert_eq!(Zone::fixed(0).expect("in range").name(), "UTC+00:00");
        assert!(Zone::fixed(841).is_err());
    }

    #[test]
    fn a_name_the_database_lacks_is_refused_naming_the_field() {
        for bad in ["", "Mars/Olympus_Mons", "Europe/Paris\n", "../../etc/passwd", &"A".repeat(100), "Europe/Pa ris"] {
            let err = Zone::named("tz", bad).expect_err(bad);
            assert!(matches!(&err, DomainError::Invalid { field, .. } if *field == "tz"), "{bad:?}: {err:?}");
        }
    }
}
