//! Bar charts drawn on the server as SVG, for the KPI page: one bar per month, its height
//! the published rate. Readable without colour: every bar is filled with a hatch pattern
//! and labelled with its figure; a withheld rate is an empty dashed box saying
//! "withheld", a month with nothing to measure says "none". The SVG is `role="img"` with
//! a `<title>` and a `<desc>` that says what the bars say, and the page puts a table
//! with the same figures beside it (`commissioner.rs`), so no one needs the picture.

use maud::{html, Markup, PreEscaped};

use super::esc;

/// One bar: its label under the axis (a month) and what it shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    pub label: String,
    pub value: BarValue,
}

/// What a bar shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BarValue {
    /// A published rate from 0 to 1.
    Rate(f64),
    /// A rate withheld by suppression (small numbers).
    Withheld,
    /// Nothing to measure that month (no denominator).
    None,
}

impl BarValue {
    /// The figure written on the bar and in the description.
    pub fn text(&self) -> String {
        match self {
            BarValue::Rate(r) => format!("{}%", percent(*r)),
            BarValue::Withheld => "withheld".into(),
            BarValue::None => "none".into(),
        }
    }
}

/// A rate as a whole percentage (0.755 -> 76).
pub(crate) fn percent(rate: f64) -> i64 {
    (rate.clamp(0.0, 1.0) * 100.0).round() as i64
}

/// A chart: `id` makes its element ids unique on the page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chart {
    pub id: String,
    pub title: String,
    pub bars: Vec<Bar>,
}

const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 36.0;
/// Dark enough on white for text and lines (the NHS text colour).
const INK: &str = "#212b32";
const BLUE: &str = "#005eb8";

/// The sentence the `<desc>` holds: every bar's label and figure, in order.
pub(crate) fn describe(chart: &Chart) -> String {
    if chart.bars.is_empty() {
        return format!("{}: no months to show.", chart.title);
    }
    let parts: Vec<String> = chart
        .bars
        .iter()
        .map(|b| format!("{}: {}", b.label, b.value.text()))
        .collect();
    format!(
        "{}, by month, as a percentage. {}.",
        chart.title,
        parts.join("; ")
    )
}

/// The SVG of `chart`.
pub(crate) fn bar_chart(chart: &Chart) -> Markup {
    let id = &chart.id;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |rate: f64| TOP + plot_h * (1.0 - rate.clamp(0.0, 1.0));
    let mut svg = String::new();
    // The hatch: diagonal blue lines on white, so a bar is told from the background by
    // its outline and texture, not by its colour.
    svg.push_str(&format!(
        r##"<defs><pattern id="{id}-hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" height="8" fill="#fff"/><line x1="0" y1="0" x2="0" y2="8" stroke="{BLUE}" stroke-width="4"/></pattern></defs>"##
    ));
    // Gridlines and the percentage scale.
    for step in 0..=4 {
        let rate = step as f64 / 4.0;
        let gy = y(rate);
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#aeb7bd" stroke-width="1"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="{INK}">{}%</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            gy + 4.0,
            step * 25
        ));
    }
    svg.push_str(&format!(
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="{INK}" stroke-width="1.5"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{INK}" stroke-width="1.5"/>"##,
        TOP + plot_h,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    ));
    let n = chart.bars.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.6).min(56.0);
    for (i, b) in chart.bars.iter().enumerate() {
        let cx = LEFT + slot * (i as f64 + 0.5);
        let x = cx - bar_w / 2.0;
        let base = TOP + plot_h;
        match b.value {
            BarValue::Rate(r) => {
                let top = y(r);
                svg.push_str(&format!(
                    r##"<rect x="{x:.1}" y="{top:.1}" width="{bar_w:.1}" height="{:.1}" fill="url(#{id}-hatch)" stroke="{INK}" stroke-width="1.5"/>"##,
                    (base - top).max(0.0)
                ));
                svg.push_str(&format!(
                    r##"<text x="{cx:.1}" y="{:.1}" font-size="13" font-weight="bold" text-anchor="middle" fill="{INK}">{}</text>"##,
                    (top - 5.0).max(12.0),
                    esc(&b.value.text())
                ));
            }
            BarValue::Withheld | BarValue::None => {
                if b.value == BarValue::Withheld {
                    svg.push_str(&format!(
                        r##"<rect x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{:.1}" fill="none" stroke="{INK}" stroke-width="1.5" stroke-dasharray="4 3"/>"##,
                        base - plot_h * 0.3,
                        plot_h * 0.3
                    ));
                }
                svg.push_str(&format!(
                    r##"<text x="{cx:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="{INK}">{}</text>"##,
                    base - plot_h * 0.3 - 5.0,
                    esc(&b.value.text())
                ));
            }
        }
        svg.push_str(&format!(
            r##"<text x="{cx:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="{INK}">{}</text>"##,
            base + 18.0,
            esc(&b.label)
        ));
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT)
            role="img" aria-labelledby={ (id) "-title " (id) "-desc" } focusable="false"
            class="chart" {
            title id={ (id) "-title" } { (chart.title) }
            desc id={ (id) "-desc" } { (describe(chart)) }
            (PreEscaped(svg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            id: "c1".into(),
            title: "Released with a plan".into(),
            bars: vec![
                Bar {
                    label: "2026-10".into(),
                    value: BarValue::Rate(0.75),
                },
                Bar {
                    label: "2026-11".into(),
                    value: BarValue::Withheld,
                },
                Bar {
                    label: "2026-12".into(),
                    value: BarValue::None,
                },
            ],
        }
    }

    #[test]
    fn a_chart_says_in_words_what_its_bars_show() {
        let c = chart();
        assert_eq!(
            describe(&c),
            "Released with a plan, by month, as a percentage. 2026-10: 75%; 2026-11: withheld; 2026-12: none."
        );
        let svg = bar_chart(&c).into_string();
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-labelledby="c1-title c1-desc""#));
        assert!(svg.contains(r#"<title id="c1-title">Released with a plan</title>"#));
        // Each bar carries its figure as text, and the filled bar a pattern.
        for text in [">75%<", ">withheld<", ">none<", ">2026-10<", ">2026-12<"] {
            assert!(svg.contains(text), "{text} missing from {svg}");
        }
        assert_eq!(svg.matches("url(#c1-hatch)").count(), 1);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
    }

    #[test]
    fn bar_heights_follow_the_rate() {
        let full = Chart {
            id: "c".into(),
            title: "t".into(),
            bars: vec![Bar {
                label: "m".into(),
                value: BarValue::Rate(1.0),
            }],
        };
        let svg = bar_chart(&full).into_string();
        // A rate of 1 reaches the top of the plot; its height is the plot's.
        assert!(svg.contains(&format!(r#"y="{TOP:.1}" width="#)), "{svg}");
        assert!(svg.contains(&format!(r#"height="{:.1}""#, HEIGHT - TOP - BOTTOM)));
        assert_eq!(percent(0.755), 76);
        assert_eq!(percent(1.7), 100);
        let empty = Chart {
            bars: vec![],
            ..full
        };
        assert_eq!(describe(&empty), "t: no months to show.");
    }
}
