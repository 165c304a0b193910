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

/// The buckets a zone whose clocks change off the hour is counted in: a
/// quarter of an hour. Every offset in use since 1980 is a whole number of
/// quarters, and so is nearly every change (St. John's, Newfoundland, changed
/// at 00:01 until 2011: a minute a year in the hour before).
const QUARTER: Millis = 15 * MINUTE;

/// The longest name the IANA database has is 32 characters
/// ("America/Argentina/ComodRivadavia"); a longer one is not looked up.
const NAME_MAX: usize = 64;

/// The most changes of the clocks looked at over a report's range (about
/// two a year: three years have six).
const CHANGES_MAX: usize = 1_000;

/// Local time for a report.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: jiff::tz::TimeZone,
    /// The zone's name ("Europe/Paris"), or the offset's ("UTC+01:00").
    name: String,
    /// The offset, for a fixed one.
    fixed: Option<Millis>,
}

/// How the store groups times for a report's hours: `offset` is added to
/// each time, which is then counted in buckets `bucket` long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// Added before bucketing.
    pub offset: Millis,
    /// The bucket's length.
    pub bucket: Millis,
}

impl Zone {
    /// A zone of the IANA database, by its name (`field` names the input
    /// in the error): the system's copy, else the one built into refdesk (a
    /// system's copy may lack an older name a browser still gives, such as
    /// Asia/Calcutta).
    pub fn named(field: &'static str, name: &str) -> Result<Zone, DomainError> {
        if name.len() > NAME_MAX {
            return Err(DomainError::invalid(field, format!("a time zone's name is at most {NAME_MAX} characters")));
        }
        let unknown = || DomainError::invalid(field, format!("no time zone is named {name:?} (e.g. Europe/Paris)"));
        // The database's files that are no zone of their own: the server's
        // local zone, and two left for old programs.
        let not_a_zone = ["localtime", "posixrules", "factory"].iter().any(|n| name.eq_ignore_ascii_case(n));
        if name.is_empty() || not_a_zone || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(unknown());
        }
        let tz = jiff::tz::TimeZone::get(name)
            .or_else(|_| jiff::tz::TimeZoneDatabase::bundled().get(name))
            .map_err(|_| unknown())?;
        // As the database spells it (it finds "europe/paris" too).
        let name = tz.iana_name().unwrap_or(name).to_owned();
        Ok(Zone { tz, name, fixed: None })
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
    /// the clocks skips midnight, the first moment after (`field` names the
    /// date in the error).
    pub fn start_of(&self, field: &'static str, day: i64) -> Result<Millis, DomainError> {
        if let Some(fixed) = self.fixed {
            return Ok(day * DAY - fixed);
        }
        let (y, m, d) = civil_from_days(day);
        let out_of_range = || DomainError::invalid(field, "dates from the year 1 to 9998");
        let date = i16::try_from(y)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, m as i8, d as i8).ok())
            .ok_or_else(out_of_range)?;
        let start = date.to_zoned(self.tz.clone()).map_err(|_| out_of_range())?;
        Ok(start.timestamp().as_millisecond())
    }

    /// How the store groups the times in [`from`, `to`) for this zone's
    /// hours: by local hour at once where one offset holds over the whole
    /// range (a fixed one, or no change of the clocks within it); by UTC
    /// hour where every offset and every change is on the hour; by UTC
    /// quarter hour otherwise (India's 5:30, Newfoundland's 3:30). Each
    /// bucket is then placed in its local hour by [`Zone::local_hour`].
    pub fn grouping(&self, from: Millis, to: Millis) -> Grouping {
        let offset = self.offset_at(from);
        if self.fixed.is_some() {
            return Grouping { offset, bucket: HOUR };
        }
        let Ok(start) = jiff::Timestamp::from_millisecond(from) else {
            return Grouping { offset: 0, bucket: QUARTER };
        };
        let mut changes = self.tz.following(start).take_while(|c| c.timestamp().as_millisecond() < to).peekable();
        if changes.peek().is_none() {
            return Grouping { offset, bucket: HOUR };
        }
        let on_the_hour = offset % HOUR == 0
            && changes.by_ref().take(CHANGES_MAX).all(|c| {
                c.timestamp().as_millisecond() % HOUR == 0 && Millis::from(c.offset().seconds()) * 1000 % HOUR == 0
            })
            && changes.next().is_none();
        Grouping { offset: 0, bucket: if on_the_hour { HOUR } else { QUARTER } }
    }

    /// The local hour (since 1970-01-01 00:00 local) of a bucket the store
    /// counted by `g`.
    pub fn local_hour(&self, key: i64, g: Grouping) -> i64 {
        let start = key * g.bucket - g.offset;
        (start + self.offset_at(start)).div_euclid(HOUR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refdesk_domain::report::{days_from_civil, parse_date};

    fn at(y: i64, m: u32, d: u32, h: i64, min: i64) -> Millis {
        days_from_civil(y, m, d) * DAY + h * HOUR + min * MINUTE
    }

    /// The local hour the store's bucket of `t` is placed in, grouped over
    /// the year 2027.
    fn hour_of(z: &Zone, t: Millis) -> i64 {
        let g = z.grouping(at(2027, 1, 1, 0, 0), at(2028, 1, 1, 0, 0));
        z.local_hour((t + g.offset).div_euclid(g.bucket), g)
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
        assert_eq!(paris.start_of("from", jan), Ok(at(2027, 1, 14, 23, 0)));
        assert_eq!(paris.start_of("from", jul), Ok(at(2027, 6, 30, 22, 0)));
        // As the database spells it.
        assert_eq!(Zone::named("tz", "europe/paris").expect("found in any case").name(), "Europe/Paris");
    }

    #[test]
    fn the_store_s_buckets_land_in_the_local_hour_they_lie_in() {
        // Paris over a year: UTC hours (its offsets and changes are on the hour).
        let paris = Zone::named("tz", "Europe/Paris").expect("in the database");
        let year = (at(2027, 1, 1, 0, 0), at(2028, 1, 1, 0, 0));
        assert_eq!(paris.grouping(year.0, year.1), Grouping { offset: 0, bucket: HOUR });
        // 00:45 UTC on the day the clocks go forward is 01:45 local; 01:15
        // UTC is 03:15 local (02:00–03:00 never happened).
        let day = days_from_civil(2027, 3, 28);
        assert_eq!(hour_of(&paris, at(2027, 3, 28, 0, 45)), day * 24 + 1);
        assert_eq!(hour_of(&paris, at(2027, 3, 28, 1, 15)), day * 24 + 3);
        // A month with no change: its own offset, local hours at once.
        let june = (at(2027, 6, 1, 0, 0), at(2027, 7, 1, 0, 0));
        assert_eq!(paris.grouping(june.0, june.1), Grouping { offset: 2 * HOUR, bucket: HOUR });
        // India is 5:30 ahead all year: its own offset, local hours at once.
        let kolkata = Zone::named("tz", "Asia/Kolkata").expect("in the database");
        assert_eq!(kolkata.grouping(year.0, year.1), Grouping { offset: 5 * HOUR + 30 * MINUTE, bucket: HOUR });
        assert_eq!(hour_of(&kolkata, at(2027, 1, 1, 0, 15)), days_from_civil(2027, 1, 1) * 24 + 5);
        assert_eq!(hour_of(&kolkata, at(2027, 1, 1, 0, 30)), days_from_civil(2027, 1, 1) * 24 + 6);
        // Lord Howe Island changes by half an hour: quarter hours.
        let howe = Zone::named("tz", "Australia/Lord_Howe").expect("in the database");
        assert_eq!(howe.grouping(year.0, year.1), Grouping { offset: 0, bucket: QUARTER });
        // 10:30 +10:30 in winter (2027-07-01 00:00 UTC), 11:00 +11 in summer.
        assert_eq!(hour_of(&howe, at(2027, 7, 1, 0, 0)) % 24, 10);
        assert_eq!(hour_of(&howe, at(2027, 1, 1, 0, 0)) % 24, 11);
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_at_the_first_moment_after() {
        // Santiago moved its clocks forward at midnight on 2026-09-06.
        let santiago = Zone::named("tz", "America/Santiago").expect("in the database");
        let day = days_from_civil(2026, 9, 6);
        assert_eq!(santiago.start_of("from", day), Ok(at(2026, 9, 6, 4, 0)));
        assert_eq!(santiago.day_of(at(2026, 9, 6, 4, 0)), day);
        // A date the database cannot place names the field.
        let far = days_from_civil(10_000, 1, 1);
        assert!(matches!(santiago.start_of("to", far), Err(DomainError::Invalid { field: "to", .. })));
    }

    #[test]
    fn a_fixed_offset_is_the_same_all_year_and_names_itself() {
        let z = Zone::fixed(-330).expect("in range");
        assert_eq!(z.name(), "UTC-05:30");
        assert_eq!(z.offset_at(at(2027, 7, 1, 0, 0)), -330 * MINUTE);
        assert_eq!(z.grouping(0, DAY), Grouping { offset: -330 * MINUTE, bucket: HOUR });
        assert_eq!(z.local_hour(7, z.grouping(0, DAY)), 7);
        assert_eq!(Zone::fixed(0).expect("in range").name(), "UTC+00:00");
        assert!(Zone::fixed(841).is_err());
    }

    #[test]
    fn a_name_the_database_lacks_is_refused_naming_the_field() {
        let long = "A".repeat(5000);
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "Europe/Paris\n",
            "../../etc/passwd",
            &long,
            "Europe/Pa ris",
            "localtime",
            "Factory",
        ] {
            let err = Zone::named("tz", bad).expect_err(bad);
            assert!(matches!(&err, DomainError::Invalid { field, .. } if *field == "tz"), "{bad:?}: {err:?}");
            assert!(err.to_string().len() < 200, "the error does not echo a long name: {err}");
        }
    }
}
