//! Cron schedules as CronJobs accept them (upstream parses with robfig/cron's standard parser):
//! five fields `minute hour day-of-month month day-of-week`, with `*`, `?`, lists, ranges, steps,
//! month and weekday names, and the macros `@yearly` `@annually` `@monthly` `@weekly` `@daily`
//! `@midnight` `@hourly`. As in robfig/cron, when both day fields are restricted a day matches if
//! either does; when one of them is `*` both must match.
//!
//! Times are evaluated in a time zone (`spec.timeZone`, UTC by default); nonexistent local times
//! (DST gaps) are skipped.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u32) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + offset);
    }
    s.parse::<u32>().map_err(|_| format!("failed to parse int from {s}"))
}

/// Parses one field into a bit set over `min..=max`; returns the set and whether it was a bare `*`/`?`.
fn field(s: &str, min: u32, max: u32, names: &[&str], name_offset: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st = st.parse::<u32>().map_err(|_| format!("failed to parse int from {st}"))?;
                if st == 0 {
                    return Err(format!("step of range should be a positive number: {part}"));
                }
                (r, Some(st))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            if step.is_none() {
                star = true;
            }
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, name_offset)?, value(b, names, name_offset)?)
        } else {
            let v = value(range, names, name_offset)?;
            // `a/n` means a through the maximum.
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max {
            return Err(format!("end of range ({hi}) above maximum ({max}): {part}"));
        }
        if lo > hi {
            return Err(format!("beginning of range ({lo}) beyond end of range ({hi}): {part}"));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star && !s.contains(',')))
}

impl Schedule {
    /// Parses a schedule (five fields or a macro).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("expected exactly 5 fields, found {}: {spec}", fields.len()));
        }
        let (minutes, _) = field(fields[0], 0, 59, &[], 0)?;
        let (hours, _) = field(fields[1], 0, 23, &[], 0)?;
        let (dom, dom_star) = field(fields[2], 1, 31, &[], 0)?;
        let (months, _) = field(fields[3], 1, 12, &MONTHS, 1)?;
        let (dow, dow_star) = field(fields[4], 0, 6, &DAYS, 0)?;
        Ok(Self { minutes, hours, dom, months, dow, dom_star, dow_star })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star { dom && dow } else { dom || dow }
    }

    /// The first activation strictly after `after`, in time zone `tz` (none within five years: `None`).
    pub fn next(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        // Whole minutes, strictly after.
        let mut t = local.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let limit = t + Duration::days(5 * 366);
        while t < limit {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = (t.date() + Duration::days(1)).and_hms_opt(0, 0, 0)?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.with_minute(0)? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            if let Some(utc) = to_utc(t, tz).filter(|u| *u > after) {
                return Some(utc);
            }
            t += Duration::minutes(1);
        }
        None
    }
}

fn to_utc(t: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&t).earliest().map(|d| d.with_timezone(&Utc))
}

/// Parses `spec.timeZone` (UTC when absent).
pub fn time_zone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None | Some("") => Ok(Tz::UTC),
        Some(n) => n.parse::<Tz>().map_err(|_| format!("unknown time zone {n}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    fn next(spec: &str, after: &str) -> Option<DateTime<Utc>> {
        Schedule::parse(spec).ok()?.next(utc(after), Tz::UTC)
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(next("* * * * *", "2024-01-01T10:00:30Z"), Some(utc("2024-01-01T10:01:00Z")));
        assert_eq!(next("* * * * *", "2024-01-01T10:00:00Z"), Some(utc("2024-01-01T10:01:00Z")));
        assert_eq!(next("*/15 * * * *", "2024-01-01T10:16:00Z"), Some(utc("2024-01-01T10:30:00Z")));
        assert_eq!(next("5/20 * * * *", "2024-01-01T10:26:00Z"), Some(utc("2024-01-01T10:45:00Z")));
        assert_eq!(next("0 9-17/4 * * *", "2024-01-01T10:00:00Z"), Some(utc("2024-01-01T13:00:00Z")));
    }

    #[test]
    fn macros_and_names() {
        assert_eq!(next("@hourly", "2024-01-01T10:00:00Z"), Some(utc("2024-01-01T11:00:00Z")));
        assert_eq!(next("@daily", "2024-01-01T10:00:00Z"), Some(utc("2024-01-02T00:00:00Z")));
        assert_eq!(next("@yearly", "2024-03-01T00:00:00Z"), Some(utc("2025-01-01T00:00:00Z")));
        // 2024-01-01 is a Monday; next Sunday is the 7th.
        assert_eq!(next("@weekly", "2024-01-01T00:00:00Z"), Some(utc("2024-01-07T00:00:00Z")));
        assert_eq!(next("0 0 * FEB mon", "2024-01-01T00:00:00Z"), Some(utc("2024-02-05T00:00:00Z")));
    }

    #[test]
    fn day_fields_or_when_both_restricted() {
        // The 15th or any Friday (2024-01-05 is a Friday).
        assert_eq!(next("0 0 15 * 5", "2024-01-01T00:00:00Z"), Some(utc("2024-01-05T00:00:00Z")));
        // Only the 31st: skips February.
        assert_eq!(next("0 0 31 * *", "2024-01-31T01:00:00Z"), Some(utc("2024-03-31T00:00:00Z")));
    }

    #[test]
    fn time_zones_shift_activations() {
        let s = Schedule::parse("0 9 * * *").ok();
        let tz = time_zone(Some("America/New_York")).unwrap_or(Tz::UTC);
        // 09:00 EST is 14:00 UTC in January.
        assert_eq!(s.and_then(|s| s.next(utc("2024-01-01T00:00:00Z"), tz)), Some(utc("2024-01-01T14:00:00Z")));
        assert!(time_zone(Some("Mars/Olympus")).is_err());
        assert_eq!(time_zone(None), Ok(Tz::UTC));
    }

    #[test]
    fn rejects_bad_schedules() {
        for bad in ["* * * *", "61 * * * *", "* * * * 7", "*/0 * * * *", "@every 5m", "a * * * *", "5-1 * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
