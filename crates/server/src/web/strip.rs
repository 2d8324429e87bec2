//! The journey strip: custody, release, first contact, GP registration and closure of
//! every episode on one time axis, with the gaps (release to first contact, between
//! episodes) drawn as gaps. Server-rendered SVG (`role="img"` with a `<title>` and a
//! `<desc>`) beside a table saying the same in text; periods differ by pattern and
//! label and milestones by shape and label, so nothing depends on colour.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped};
use throughcare_projections::Journey;

/// What a stretch of the axis was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// In prison (from the referral until release).
    Custody,
    /// Released and in touch with the service.
    Community,
    /// Released and not contacted yet: the gap the service exists to close.
    NoContact,
    /// Between a closed episode and the next referral.
    OutOfService,
}

impl Period {
    pub fn label(self) -> &'static str {
        match self {
            Period::Custody => "in custody",
            Period::Community => "in the community, in contact",
            Period::NoContact => "released, no contact yet",
            Period::OutOfService => "no open case",
        }
    }
}

/// A moment on the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    Referred,
    Released,
    /// The release date expected (still in custody).
    ExpectedRelease,
    FirstContact,
    GpRegistered,
    ReturnedToCustody,
    Closed,
}

impl Milestone {
    pub fn label(self) -> &'static str {
        match self {
            Milestone::Referred => "referred",
            Milestone::Released => "released",
            Milestone::ExpectedRelease => "release expected",
            Milestone::FirstContact => "first contact",
            Milestone::GpRegistered => "GP registered",
            Milestone::ReturnedToCustody => "returned to custody",
            Milestone::Closed => "case closed",
        }
    }
}

/// The strip of one journey: periods and milestones between `from` and `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Strip {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub periods: Vec<(Period, DateTime<Utc>, DateTime<Utc>)>,
    pub milestones: Vec<(Milestone, DateTime<Utc>)>,
}

impl Strip {
    /// The strip of `j` as it stands at `now`.
    pub fn of(j: &Journey, now: DateTime<Utc>) -> Strip {
        let mut periods = Vec::new();
        let mut milestones = Vec::new();
        let mut previous_close: Option<DateTime<Utc>> = None;
        for e in &j.episodes {
            if let Some(closed) = previous_close.take() {
                if e.opened_at > closed {
                    periods.push((Period::OutOfService, closed, e.opened_at));
                }
            }
            let end = e.closed_at.unwrap_or(now).max(e.opened_at);
            milestones.push((Milestone::Referred, e.opened_at));
            match e.released_at.filter(|r| *r <= end) {
                None => periods.push((Period::Custody, e.opened_at, end)),
                Some(released) => {
                    periods.push((Period::Custody, e.opened_at.min(released), released));
                    milestones.push((Milestone::Released, released));
                    // Back in prison ends the time in the community.
                    let back = e
                        .returned_to_custody_at
                        .filter(|t| *t >= released && *t <= end);
                    let out_until = back.unwrap_or(end);
                    match e
                        .first_contact_at
                        .filter(|c| *c >= released && *c <= out_until)
                    {
                        Some(first) => {
                            if first > released {
                                periods.push((Period::NoContact, released, first));
                            }
                            periods.push((Period::Community, first, out_until));
                            milestones.push((Milestone::FirstContact, first));
                        }
                        None => periods.push((Period::NoContact, released, out_until)),
                    }
                    if let Some(back) = back {
                        milestones.push((Milestone::ReturnedToCustody, back));
                        periods.push((Period::Custody, back, end));
                    }
                }
            }
            if let Some(gp) = e.gp_registered_at {
                milestones.push((Milestone::GpRegistered, gp));
            }
            if let Some(closed) = e.closed_at {
                milestones.push((Milestone::Closed, closed));
                previous_close = Some(closed);
            }
        }
        let mut to = now;
        if j.in_custody && j.status.is_open() {
            if let Some(r) = &j.release_date {
                let expected = r.date.and_hms_opt(9, 0, 0).expect("09:00").and_utc();
                if expected > now {
                    milestones.push((Milestone::ExpectedRelease, expected));
                    to = expected;
                }
            }
        }
        let from = periods
            .iter()
            .map(|p| p.1)
            .chain(milestones.iter().map(|m| m.1))
            .min()
            .unwrap_or(now);
        let to = periods
            .iter()
            .map(|p| p.2)
            .chain(milestones.iter().map(|m| m.1))
            .fold(to, DateTime::max);
        periods.retain(|p| p.2 > p.1);
        milestones.sort_by_key(|m| m.1);
        Strip {
            from,
            to,
            periods,
            milestones,
        }
    }

    /// The x of `t` on an axis from `left` to `left + width`.
    pub fn x(&self, t: DateTime<Utc>, left: f64, width: f64) -> f64 {
        let span = (self.to - self.from).num_seconds().max(1) as f64;
        let at = (t - self.from).num_seconds().clamp(0, span as i64) as f64;
        left + width * at / span
    }
}

/// The drawing's size and the axis within it.
const WIDTH: f64 = 880.0;
const LEFT: f64 = 20.0;
const AXIS: f64 = 840.0;
const BAR_Y: f64 = 30.0;
const BAR_H: f64 = 28.0;
/// Milestone labels go on rows below the bar so that close ones do not overlap.
const ROW_H: f64 = 18.0;
const LABEL_ROWS: usize = 4;

/// Where each milestone's label goes: its x and its row (the first row whose last label
/// ends before this one starts).
pub fn label_rows(strip: &Strip) -> Vec<(f64, usize)> {
    let mut row_end = [f64::MIN; LABEL_ROWS];
    strip
        .milestones
        .iter()
        .map(|(m, at)| {
            let x = strip.x(*at, LEFT, AXIS);
            // About 6.5 px a character at 12 px.
            let w = (m.label().len() as f64 + 11.0) * 6.5;
            let row = row_end
                .iter()
                .position(|end| *end < x)
                .unwrap_or(LABEL_ROWS - 1);
            row_end[row] = x + w;
            (x, row)
        })
        .collect()
}

fn days(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (b - a).num_days()
}

/// The marker of a milestone: a different shape for each, drawn at (x, y).
fn marker(m: Milestone, x: f64, y: f64) -> String {
    let path = match m {
        Milestone::Referred => format!(
            "M{x} {} L{} {y} L{x} {} L{} {y} Z",
            y - 6.0,
            x + 6.0,
            y + 6.0,
            x - 6.0
        ),
        Milestone::Released | Milestone::ExpectedRelease => format!(
            "M{} {} L{} {} L{} {} Z",
            x - 6.0,
            y + 6.0,
            x + 6.0,
            y + 6.0,
            x,
            y - 7.0
        ),
        Milestone::FirstContact => format!("M{} {y} a6 6 0 1 0 12 0 a6 6 0 1 0 -12 0", x - 6.0),
        Milestone::GpRegistered => format!("M{} {} h12 v12 h-12 Z", x - 6.0, y - 6.0),
        Milestone::ReturnedToCustody => format!(
            "M{} {} L{} {} L{} {} Z",
            x - 6.0,
            y - 6.0,
            x + 6.0,
            y - 6.0,
            x,
            y + 7.0
        ),
        Milestone::Closed => format!(
            "M{} {} L{} {} M{} {} L{} {}",
            x - 6.0,
            y - 6.0,
            x + 6.0,
            y + 6.0,
            x + 6.0,
            y - 6.0,
            x - 6.0,
            y + 6.0
        ),
    };
    let dashed = if m == Milestone::ExpectedRelease {
        " stroke-dasharray=\"3 2\""
    } else {
        ""
    };
    format!(r##"<path d="{path}" fill="#fff" stroke="#212b32" stroke-width="2"{dashed}/>"##)
}

/// The strip as SVG with its text alternative beside it.
pub fn render(strip: &Strip) -> Markup {
    if strip.periods.is_empty() && strip.milestones.is_empty() {
        return html! { p.muted { "No episode yet: nothing to draw." } };
    }
    let rows = label_rows(strip);
    let used_rows = rows.iter().map(|r| r.1 + 1).max().unwrap_or(1);
    let height = BAR_Y + BAR_H + 16.0 + used_rows as f64 * ROW_H + 40.0;
    let mut svg = String::new();
    svg.push_str(r##"<defs><pattern id="strip-hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" height="8" fill="#fff"/><line x1="0" y1="0" x2="0" y2="8" stroke="#d5281b" stroke-width="3"/></pattern><pattern id="strip-dots" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#fff"/><circle cx="3" cy="3" r="1.2" fill="#4c6272"/></pattern></defs>"##);
    // The axis: the first and the last day, and today.
    svg.push_str(&format!(
        r##"<text x="{LEFT}" y="18" font-size="12" fill="#212b32">{}</text><text x="{}" y="18" font-size="12" text-anchor="end" fill="#212b32">{}</text>"##,
        strip.from.date_naive(),
        LEFT + AXIS,
        strip.to.date_naive()
    ));
    for (period, a, b) in &strip.periods {
        let x = strip.x(*a, LEFT, AXIS);
        let w = (strip.x(*b, LEFT, AXIS) - x).max(1.0);
        let (fill, stroke) = match period {
            Period::Custody => ("#212b32", "#212b32"),
            Period::Community => ("#fff", "#007f3b"),
            Period::NoContact => ("url(#strip-hatch)", "#d5281b"),
            Period::OutOfService => ("url(#strip-dots)", "#4c6272"),
        };
        svg.push_str(&format!(
            r##"<rect x="{x:.1}" y="{BAR_Y}" width="{w:.1}" height="{BAR_H}" fill="{fill}" stroke="{stroke}" stroke-width="2"/>"##
        ));
    }
    for ((m, _), (x, row)) in strip.milestones.iter().zip(&rows) {
        let label_y = BAR_Y + BAR_H + 16.0 + *row as f64 * ROW_H;
        svg.push_str(&format!(
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#4c6272" stroke-width="1"/>"##,
            BAR_Y + BAR_H,
            label_y - 10.0
        ));
        svg.push_str(&marker(*m, *x, BAR_Y + BAR_H / 2.0));
        let anchor = if *x > LEFT + AXIS * 0.75 {
            "end"
        } else {
            "start"
        };
        svg.push_str(&format!(
            r##"<text x="{x:.1}" y="{label_y:.1}" font-size="12" text-anchor="{anchor}" fill="#212b32">{}</text>"##,
            super::esc(m.label())
        ));
    }
    // The legend: each period's pattern with its name.
    let legend_y = height - 22.0;
    let mut lx = LEFT;
    for period in [
        Period::Custody,
        Period::NoContact,
        Period::Community,
        Period::OutOfService,
    ] {
        let (fill, stroke) = match period {
            Period::Custody => ("#212b32", "#212b32"),
            Period::Community => ("#fff", "#007f3b"),
            Period::NoContact => ("url(#strip-hatch)", "#d5281b"),
            Period::OutOfService => ("url(#strip-dots)", "#4c6272"),
        };
        svg.push_str(&format!(
            r##"<rect x="{lx}" y="{legend_y}" width="22" height="12" fill="{fill}" stroke="{stroke}" stroke-width="2"/><text x="{}" y="{}" font-size="12" fill="#212b32">{}</text>"##,
            lx + 28.0,
            legend_y + 11.0,
            period.label()
        ));
        lx += 28.0 + period.label().len() as f64 * 6.5 + 24.0;
    }
    let description = describe(strip);
    html! {
        div.strip {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height)
                role="img" aria-labelledby="strip-title strip-desc" focusable="false" {
                title #strip-title { "Journey strip from " (strip.from.date_naive()) " to " (strip.to.date_naive()) }
                desc #strip-desc { (description) }
                (PreEscaped(svg))
            }
            table {
                caption { "The journey strip as text" }
                thead { tr { th scope="col" { "What" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Days" } } }
                tbody {
                    @for (m, at) in &strip.milestones {
                        tr { td { (m.label()) } td { (at.format("%Y-%m-%d")) } td { } td { } }
                    }
                    @for (period, a, b) in &strip.periods {
                        tr { td { (period.label()) } td { (a.format("%Y-%m-%d")) } td { (b.format("%Y-%m-%d")) } td { (days(*a, *b)) } }
                    }
                }
            }
        }
    }
}

/// One sentence a screen reader reads for the drawing.
pub fn describe(strip: &Strip) -> String {
    let mut parts: Vec<String> = strip
        .milestones
        .iter()
        .map(|(m, at)| format!("{} {}", m.label(), at.date_naive()))
        .collect();
    for (p, a, b) in &strip.periods {
        if matches!(p, Period::NoContact | Period::OutOfService) {
            parts.push(format!(
                "{} for {} days from {}",
                p.label(),
                days(*a, *b),
                a.date_naive()
            ));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughcare_events::PersonId;
    use throughcare_projections::journey::Episode;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn episode(number: u32, opened: &str) -> Episode {
        let mut e: Episode = serde_json::from_value(serde_json::json!({
            "number": number, "opened_at": opened, "referrals": []
        }))
        .unwrap_or_else(|err| panic!("an episode from JSON: {err}"));
        e.number = number;
        e
    }

    #[test]
    fn custody_release_gap_contact_gp_closure_and_a_second_episode() {
        let mut j = Journey::new(PersonId(ulid::Ulid::nil()));
        let mut first = episode(1, "2026-01-01T00:00:00Z");
        first.released_at = Some(t("2026-02-01T00:00:00Z"));
        first.first_contact_at = Some(t("2026-02-04T00:00:00Z"));
        first.gp_registered_at = Some(t("2026-02-20T00:00:00Z"));
        first.closed_at = Some(t("2026-04-01T00:00:00Z"));
        let second = episode(2, "2026-05-01T00:00:00Z");
        j.episodes = vec![first, second];
        let now = t("2026-06-01T00:00:00Z");
        let s = Strip::of(&j, now);
        assert_eq!(s.from, t("2026-01-01T00:00:00Z"));
        assert_eq!(s.to, now);
        use Period::*;
        assert_eq!(
            s.periods,
            vec![
                (
                    Custody,
                    t("2026-01-01T00:00:00Z"),
                    t("2026-02-01T00:00:00Z")
                ),
                (
                    NoContact,
                    t("2026-02-01T00:00:00Z"),
                    t("2026-02-04T00:00:00Z")
                ),
                (
                    Community,
                    t("2026-02-04T00:00:00Z"),
                    t("2026-04-01T00:00:00Z")
                ),
                (
                    OutOfService,
                    t("2026-04-01T00:00:00Z"),
                    t("2026-05-01T00:00:00Z")
                ),
                (Custody, t("2026-05-01T00:00:00Z"), now),
            ]
        );
        let kinds: Vec<Milestone> = s.milestones.iter().map(|m| m.0).collect();
        use Milestone::*;
        assert_eq!(
            kinds,
            vec![
                Referred,
                Released,
                FirstContact,
                GpRegistered,
                Closed,
                Referred
            ]
        );
        // The axis: the first moment at the left edge, now at the right, in between
        // in proportion.
        assert_eq!(s.x(s.from, 0.0, 100.0), 0.0);
        assert_eq!(s.x(now, 0.0, 100.0), 100.0);
        let mid = s.x(t("2026-03-17T12:00:00Z"), 0.0, 100.0);
        assert!((mid - 50.0).abs() < 0.5, "{mid}");
        // Close milestones (release, first contact three days later) go on different
        // label rows; the text alternative names the gap in days.
        let rows = label_rows(&s);
        assert_ne!(rows[1].1, rows[2].1);
        assert!(describe(&s).contains("released, no contact yet for 3 days from 2026-02-01"));
        let html = render(&s).into_string();
        assert!(html.contains(r#"role="img""#) && html.contains("<title id=\"strip-title\">"));
        assert_eq!(
            html.matches("<rect x=").count(),
            5 + 4,
            "five periods and four legend keys"
        );
    }

    #[test]
    fn in_custody_with_a_release_date_ahead_draws_to_it() {
        let mut j = Journey::new(PersonId(ulid::Ulid::nil()));
        j.in_custody = true;
        j.status = throughcare_projections::Status::Accepted;
        j.release_date = Some(
            serde_json::from_value(serde_json::json!({"date": "2026-07-01", "date_type": "CRD"}))
                .unwrap(),
        );
        j.episodes = vec![episode(1, "2026-05-01T00:00:00Z")];
        let now = t("2026-06-01T00:00:00Z");
        let s = Strip::of(&j, now);
        assert_eq!(s.to, t("2026-07-01T09:00:00Z"));
        assert_eq!(s.milestones.last().unwrap().0, Milestone::ExpectedRelease);
        assert_eq!(
            s.periods,
            vec![(Period::Custody, t("2026-05-01T00:00:00Z"), now)]
        );
        assert!(
            render(&Strip::of(&Journey::new(PersonId(ulid::Ulid::nil())), now))
                .into_string()
                .contains("No episode yet")
        );
    }
}
