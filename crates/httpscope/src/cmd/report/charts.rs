//! Inline SVG charts of the report: latency histograms, rates over time, mix bars.

use std::fmt::Write as _;

use httpscope_core::analysis::{Binned, LatencyBucket};
use maud::{html, Markup};

/// Line colours, one per series (then again from the start).
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
];
pub const ERROR_COLOUR: &str = "#d62728";

const HIST_W: f64 = 180.0;
const HIST_H: f64 = 36.0;

/// A latency histogram: one bar per log-spaced bucket (100 µs … 10 s), height by count.
pub fn histogram(buckets: &[LatencyBucket]) -> Markup {
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    let width = HIST_W / buckets.len().max(1) as f64;
    html! {
        svg.hist width=(HIST_W) height=(HIST_H + 12.0) viewBox=(format!("0 0 {HIST_W} {}", HIST_H + 12.0))
            role="img" {
            @for (i, bucket) in buckets.iter().enumerate() {
                @let h = (bucket.count as f64 / max * HIST_H).max(if bucket.count > 0 { 1.0 } else { 0.0 });
                rect.bar x=(fmt(i as f64 * width + 0.5)) y=(fmt(HIST_H - h)) width=(fmt(width - 1.0))
                    height=(fmt(h)) data-count=(bucket.count) {
                    title { (bucket_label(buckets, i)) ": " (bucket.count) }
                }
            }
            @if let Some(first) = buckets.first() {
                text x="0" y=(HIST_H + 10.0) { (lower_label(first)) }
                text x=(HIST_W) y=(HIST_H + 10.0) text-anchor="end" { (bucket_label(buckets, buckets.len() - 1)) }
            }
        }
    }
}

/// `≤ 2.5 ms` or `> 10000 ms`: what one bar counts.
fn bucket_label(buckets: &[LatencyBucket], i: usize) -> String {
    match buckets[i].le_ms {
        Some(ms) => format!("≤ {} ms", ms),
        None => format!("> {} ms", previous_bound(buckets, i).unwrap_or(0.0)),
    }
}

fn previous_bound(buckets: &[LatencyBucket], i: usize) -> Option<f64> {
    i.checked_sub(1).and_then(|p| buckets[p].le_ms)
}

fn lower_label(first: &LatencyBucket) -> String {
    first
        .le_ms
        .map_or_else(|| "slow".to_owned(), |ms| format!("≤ {ms} ms"))
}

const TS_W: f64 = 900.0;
const TS_H: f64 = 220.0;
const TS_LEFT: f64 = 48.0;
const TS_BOTTOM: f64 = 20.0;

/// One line of the time chart.
pub struct Line<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub binned: &'a Binned,
    /// Errors per second rather than requests per second.
    pub errors: bool,
}

/// Requests (and errors) per second over time, one polyline per series.
pub fn time_series(lines: &[Line<'_>], start_label: &str, end_label: &str) -> Markup {
    let value = |line: &Line<'_>, point: &(f64, f64)| if line.errors { point.1 } else { point.0 };
    let max = lines
        .iter()
        .flat_map(|l| l.binned.points.iter().map(move |p| value(l, p)))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let plot_w = TS_W - TS_LEFT - 8.0;
    let plot_h = TS_H - TS_BOTTOM - 8.0;
    // A lone bin (everything within one tick) spans the whole width.
    let points = |line: &Line<'_>| {
        let mut points = line.binned.points.clone();
        if points.len() == 1 {
            points.push(points[0]);
        }
        let n = points.len().max(2) - 1;
        let mut out = String::new();
        for (i, point) in points.iter().enumerate() {
            let x = TS_LEFT + plot_w * i as f64 / n as f64;
            let y = 8.0 + plot_h * (1.0 - value(line, point) / max);
            let _ = write!(out, "{:.1},{:.1} ", x, y);
        }
        out.trim_end().to_owned()
    };
    html! {
        svg.timeseries width=(TS_W) height=(TS_H) viewBox=(format!("0 0 {TS_W} {TS_H}")) role="img" {
            line.axis x1=(TS_LEFT) y1=(8) x2=(TS_LEFT) y2=(8.0 + plot_h) {}
            line.axis x1=(TS_LEFT) y1=(8.0 + plot_h) x2=(TS_W - 8.0) y2=(8.0 + plot_h) {}
            text x=(TS_LEFT - 4.0) y=(14) text-anchor="end" { (fmt(max)) }
            text x=(TS_LEFT - 4.0) y=(8.0 + plot_h) text-anchor="end" { "0" }
            text x=(TS_LEFT) y=(TS_H - 4.0) { (start_label) }
            text x=(TS_W - 8.0) y=(TS_H - 4.0) text-anchor="end" { (end_label) }
            @for line in lines {
                polyline.series fill="none" stroke=(line.colour) stroke-width="1.5"
                    stroke-dasharray=[line.errors.then_some("4 3")]
                    data-label=(line.label) data-kind=(if line.errors { "errors" } else { "requests" })
                    points=(points(line)) {
                    title { (line.label) }
                }
            }
        }
    }
}

/// A horizontal bar split by share, e.g. of status codes: (label, count, colour) parts.
pub fn mix_bar(parts: &[(String, u64, &str)]) -> Markup {
    let total: u64 = parts.iter().map(|p| p.1).sum::<u64>().max(1);
    let mut x = 0.0;
    let mut rects = Vec::with_capacity(parts.len());
    for (label, count, colour) in parts {
        let w = 600.0 * *count as f64 / total as f64;
        rects.push((x, w, label, count, colour));
        x += w;
    }
    html! {
        svg.mix width="600" height="18" viewBox="0 0 600 18" role="img" {
            @for (x, w, label, count, colour) in rects {
                rect x=(fmt(x)) y="0" width=(fmt(w)) height="18" fill=(colour) {
                    title { (label) ": " (count) }
                }
            }
        }
    }
}

/// Numbers for SVG attributes: short, no trailing zeros.
pub fn fmt(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_has_a_bar_per_bucket() {
        let buckets = [
            LatencyBucket {
                le_ms: Some(0.1),
                count: 3,
            },
            LatencyBucket {
                le_ms: Some(0.25),
                count: 0,
            },
            LatencyBucket {
                le_ms: None,
                count: 1,
            },
        ];
        let svg = histogram(&buckets).into_string();
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3, "{svg}");
        assert!(svg.contains("&gt; 0.25 ms: 1"), "{svg}");
        assert!(svg.contains("height=\"36\""), "{svg}");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt(12.0), "12");
        assert_eq!(fmt(0.5), "0.5");
        assert_eq!(fmt(1.234), "1.23");
    }
}
