//! UK local time for the forms: a worker types the date and time on their own clock
//! (GMT in winter, BST in summer) and the ledger stores UTC. British Summer Time runs from
//! 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October
//! (the Summer Time Order 2002), so the rule is written out here rather than pulling in
//! a time-zone database for one zone.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// The last Sunday of `month` in `year`.
fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .expect("a valid first of the month");
    let last = next - Duration::days(1);
    let back = last.weekday().num_days_from_sunday();
    last - Duration::days(i64::from(back))
}

/// Whether BST is in force at `t`.
pub fn is_bst(t: DateTime<Utc>) -> bool {
    let year = t.year();
    let one = NaiveTime::from_hms_opt(1, 0, 0).expect("01:00");
    let start = last_sunday(year, 3).and_time(one).and_utc();
    let end = last_sunday(year, 10).and_time(one).and_utc();
    t >= start && t < end
}

/// UK local time of `t`.
pub fn to_local(t: DateTime<Utc>) -> NaiveDateTime {
    let offset = if is_bst(t) { 1 } else { 0 };
    t.naive_utc() + Duration::hours(offset)
}

/// The zone's name at `t`, for labels.
pub fn zone(t: DateTime<Utc>) -> &'static str {
    if is_bst(t) {
        "BST"
    } else {
        "GMT"
    }
}

/// The UTC instant of a UK local time. In the hour the clocks go back, a local time
/// happens twice: the first (BST) is taken. In the hour they go forward it does not
/// happen at all: it is read as GMT, i.e. as the clock showed before it changed.
pub fn from_local(local: NaiveDateTime) -> DateTime<Utc> {
    let as_bst = (local - Duration::hours(1)).and_utc();
    if is_bst(as_bst) {
        as_bst
    } else {
        local.and_utc()
    }
}

/// Reads the form's `date` (YYYY-MM-DD) and `time` (HH:MM, or HH:MM:SS) as UK local time.
pub fn parse_local(date: &str, time: &str) -> Result<DateTime<Utc>, (&'static str, String)> {
    let date = date.trim();
    let time = time.trim();
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
        (
            "date",
            if date.is_empty() {
                "Enter the date it happened".to_string()
            } else {
                format!("{date:?} is not a date: enter it as year-month-day, e.g. 2026-11-29")
            },
        )
    })?;
    let t = NaiveTime::parse_from_str(time, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M:%S"))
        .map_err(|_| {
            (
                "time",
                if time.is_empty() {
                    "Enter the time it happened".to_string()
                } else {
                    format!("{time:?} is not a time: enter it on the 24-hour clock, e.g. 14:30")
                },
            )
        })?;
    Ok(from_local(d.and_time(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn summer_and_winter() {
        // 2026: BST from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(
            last_sunday(2026, 3),
            NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()
        );
        assert_eq!(
            last_sunday(2026, 10),
            NaiveDate::from_ymd_opt(2026, 10, 25).unwrap()
        );
        assert!(!is_bst(utc("2026-03-29T00:59:59Z")));
        assert!(is_bst(utc("2026-03-29T01:00:00Z")));
        assert!(is_bst(utc("2026-10-25T00:59:59Z")));
        assert!(!is_bst(utc("2026-10-25T01:00:00Z")));
        assert_eq!(
            parse_local("2026-07-01", "09:30").unwrap(),
            utc("2026-07-01T08:30:00Z")
        );
        assert_eq!(
            parse_local("2026-12-01", "09:30").unwrap(),
            utc("2026-12-01T09:30:00Z")
        );
        assert_eq!(
            to_local(utc("2026-07-01T08:30:00Z")).to_string(),
            "2026-07-01 09:30:00"
        );
        assert_eq!(zone(utc("2026-07-01T08:30:00Z")), "BST");
    }

    #[test]
    fn the_changeover_hours() {
        // 01:30 on 25 Oct 2026 happens twice: the BST one (00:30 UTC) is taken.
        assert_eq!(
            parse_local("2026-10-25", "01:30").unwrap(),
            utc("2026-10-25T00:30:00Z")
        );
        // 01:30 on 29 Mar 2026 never happens: read as GMT.
        assert_eq!(
            parse_local("2026-03-29", "01:30").unwrap(),
            utc("2026-03-29T01:30:00Z")
        );
        // Round trip through local time for every hour of both changeover days.
        for day in ["2026-03-29", "2026-10-25"] {
            for h in 0..48 {
                let t = utc(&format!("{day}T00:00:00Z")) + Duration::minutes(30 * h);
                let l = to_local(t);
                let back = from_local(l);
                assert!(
                    back == t || back == t - Duration::hours(1),
                    "{t} -> {l} -> {back}"
                );
            }
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        assert_eq!(parse_local("", "10:00").unwrap_err().0, "date");
        assert_eq!(parse_local("2026-02-30", "10:00").unwrap_err().0, "date");
        assert_eq!(parse_local("2026-02-03", "25:00").unwrap_err().0, "time");
        assert_eq!(parse_local("2026-02-03", "").unwrap_err().0, "time");
        assert!(parse_local("2026-02-03", "10:00:30").is_ok());
    }
}
