//! Results: one row per measurement, each beside its baseline with the ratio and the
//! target it is judged by; printed as a table and written as JSON.

use serde::Serialize;
use serde_json::Value;

/// How a measurement is judged (targets of issue 5).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// `measured / baseline` must be at least this.
    RatioAtLeast { min: f64 },
    /// `measured / baseline` must be at most this (peak RSS growth).
    RatioAtMost { max: f64 },
    /// A latency percentile (in the row's unit) must be below this.
    Below { max: f64, what: String },
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `append`, `rebuild`, `query`, `freshness`.
    pub section: String,
    pub name: String,
    /// The measured figure (`None` for a row not measured).
    pub value: Option<f64>,
    pub unit: String,
    pub baseline_name: Option<String>,
    pub baseline: Option<f64>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    /// Whether the target is met (full mode is what the targets are stated for).
    pub met: Option<bool>,
    /// Anything else worth keeping (percentiles, counts, group sizes, RSS).
    pub detail: Value,
    /// Why a row has no figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    pub fn new(section: &str, name: impl Into<String>, value: f64, unit: &str) -> Self {
        Row {
            section: section.into(),
            name: name.into(),
            value: Some(value),
            unit: unit.into(),
            baseline_name: None,
            baseline: None,
            ratio: None,
            target: None,
            met: None,
            detail: Value::Null,
            note: None,
        }
    }

    /// A row that could not be measured, saying why (never a made-up figure).
    pub fn not_measured(section: &str, name: impl Into<String>, note: impl Into<String>) -> Self {
        Row {
            value: None,
            note: Some(note.into()),
            ..Row::new(section, name, 0.0, "")
        }
    }

    pub fn beside(mut self, baseline_name: impl Into<String>, baseline: f64) -> Self {
        self.baseline_name = Some(baseline_name.into());
        self.baseline = Some(baseline);
        self.ratio = self.value.map(|v| v / baseline);
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.met = match (&target, self.ratio, self.value) {
            (Target::RatioAtLeast { min }, Some(r), _) => Some(r >= *min),
            (Target::RatioAtMost { max }, Some(r), _) => Some(r <= *max),
            (Target::Below { max, .. }, _, Some(v)) => Some(v < *max),
            _ => None,
        };
        self.target = Some(target);
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

fn figure(v: f64, unit: &str) -> String {
    let n = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if unit.is_empty() {
        n
    } else {
        format!("{n} {unit}")
    }
}

fn target_text(t: &Target) -> String {
    match t {
        Target::RatioAtLeast { min } => format!(">= {min}x"),
        Target::RatioAtMost { max } => format!("<= {max}x"),
        Target::Below { max, what } => format!("{what} < {max}"),
    }
}

/// The table as text (Markdown, so it can go into the README as it is).
pub fn table(rows: &[Row]) -> String {
    let header = [
        "section",
        "measurement",
        "measured",
        "baseline (same run)",
        "ratio",
        "target",
        "met",
    ];
    let mut lines: Vec<[String; 7]> = Vec::new();
    for r in rows {
        let measured = match r.value {
            Some(v) => figure(v, &r.unit),
            None => format!("TODO: {}", r.note.as_deref().unwrap_or("not measured")),
        };
        let baseline = match (&r.baseline_name, r.baseline) {
            (Some(n), Some(b)) => format!("{n}: {}", figure(b, &r.unit)),
            (Some(n), None) => n.clone(),
            _ => String::new(),
        };
        lines.push([
            r.section.clone(),
            r.name.clone(),
            measured,
            baseline,
            r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default(),
            r.target.as_ref().map(target_text).unwrap_or_default(),
            match r.met {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => String::new(),
            },
        ]);
    }
    let mut widths = header.map(str::len);
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let fmt = |cells: &[String]| {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(widths) {
            s.push_str(&format!(" {c:<w$} |"));
        }
        s
    };
    let mut out = vec![
        fmt(&header.map(String::from)),
        fmt(&widths.map(|w| "-".repeat(w))),
    ];
    out.extend(lines.iter().map(|l| fmt(l)));
    out.join("\n")
}

/// p-th percentile (0..=100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median of unsorted figures.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    percentile(&xs, 50.0)
}
