//! The report page: summary, rates over time, status mixes, endpoints grouped by process
//! and container, and the slowest exchanges. Everything inline; maud escapes every value
//! (paths and headers come from the network).

use std::collections::BTreeMap;

use httpscope_core::analysis::{
    all_latency_buckets, EndpointKey, EndpointStats, MessageView, ReportData, SlowExchange,
};
use httpscope_core::format::rfc3339_millis;
use httpscope_core::stats::Report;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::charts::{self, Line, ERROR_COLOUR, PALETTE};

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("sort.js");
/// Bins of the time chart at most.
const TIME_POINTS: usize = 120;

/// What the page says about where its data came from.
pub struct Meta<'a> {
    pub file: &'a str,
    pub report: Option<&'a Report>,
    pub skipped_lines: u64,
    /// Series drawn over time.
    pub top: usize,
}

pub fn page(data: &ReportData, meta: &Meta<'_>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "httpscope report: " (meta.file) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "httpscope report" }
                (summary(data, meta))
                (over_time(data, meta.top))
                (status_mix(data))
                (by_process(data))
                (slowest(&data.slowest))
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

fn time(unix_ns: i64) -> String {
    let mut text = String::new();
    rfc3339_millis(unix_ns, &mut text);
    text
}

fn summary(data: &ReportData, meta: &Meta<'_>) -> Markup {
    let rows = data.table.rows();
    let exchanges: u64 = rows.iter().map(|(_, s)| s.count).sum();
    let errors: u64 = rows.iter().map(|(_, s)| s.errors).sum();
    html! {
        p.meta {
            "From " code { (meta.file) }
            @if let (Some(first), Some(last)) = (data.first_ns, data.last_ns) {
                ", " (time(first)) " to " (time(last))
            }
            "."
        }
        ul.totals {
            li { b id="exchanges" { (exchanges) } " exchanges" }
            li { b { (errors) } " failed" }
            li { b { (rows.len()) } " endpoints" }
            li { b { (data.table.messages) } " messages" }
            @if let Some(report) = meta.report {
                li { b { (report.kernel.dropped_events()) } " kernel drops" }
                li { b { (report.parse.parse_errors) } " parse errors" }
            }
            @if meta.skipped_lines > 0 {
                li { b { (meta.skipped_lines) } " lines skipped" }
            }
        }
    }
}

fn over_time(data: &ReportData, top: usize) -> Markup {
    let series = data.top_series(top);
    let binned: Vec<_> = series.iter().map(|s| data.binned(s, TIME_POINTS)).collect();
    let error_labels: Vec<String> = series
        .iter()
        .map(|s| format!("{} (errors)", s.label))
        .collect();
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (i, (s, b)) in series.iter().zip(&binned).enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        lines.push(Line {
            label: &s.label,
            colour,
            binned: b,
            errors: false,
        });
        if b.points.iter().any(|p| p.1 > 0.0) {
            lines.push(Line {
                label: &error_labels[i],
                colour: ERROR_COLOUR,
                binned: b,
                errors: true,
            });
        }
    }
    let bin_secs = binned.first().map_or(1.0, |b| b.bin_secs);
    let (start, end) = (data.first_ns.unwrap_or(0), data.last_ns.unwrap_or(0));
    html! {
        section id="over-time" {
            h2 { "Requests per second over time" }
            p.note {
                "The " (series.len()) " busiest routes, averaged over " (bin_secs)
                " s; failed ones dashed in red."
            }
            (charts::time_series(&lines, &time(start), &time(end)))
            ul.legend {
                @for line in lines.iter().filter(|l| !l.errors) {
                    li { span.swatch style=(format!("background:{}", line.colour)) {} (line.label) }
                }
            }
        }
    }
}

/// Colours of status classes 1xx … 5xx.
fn status_colour(status: u16) -> &'static str {
    match status / 100 {
        2 => "#2ca02c",
        3 => "#1f77b4",
        4 => "#ff7f0e",
        5 => ERROR_COLOUR,
        _ => "#7f7f7f",
    }
}

/// gRPC status code names (grpc/doc/statuscodes.md).
fn grpc_name(code: Option<u32>) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    match code {
        None => "(none: reset or lost)".to_owned(),
        Some(code) => match NAMES.get(code as usize) {
            Some(name) => format!("{code} {name}"),
            None => code.to_string(),
        },
    }
}

fn status_mix(data: &ReportData) -> Markup {
    let http: Vec<(String, u64, &str)> = data
        .statuses
        .iter()
        .map(|(status, n)| (status.to_string(), *n, status_colour(*status)))
        .collect();
    let grpc: Vec<(String, u64, &str)> = data
        .grpc_statuses
        .iter()
        .map(|(code, n)| {
            let colour = if *code == Some(0) {
                "#2ca02c"
            } else {
                ERROR_COLOUR
            };
            (grpc_name(*code), *n, colour)
        })
        .collect();
    html! {
        section id="status-mix" {
            h2 { "Status mix" }
            (mix_table("HTTP status", &http))
            @if !grpc.is_empty() {
                (mix_table("gRPC status", &grpc))
            }
        }
    }
}

fn mix_table(title: &str, parts: &[(String, u64, &str)]) -> Markup {
    let total: u64 = parts.iter().map(|p| p.1).sum::<u64>().max(1);
    html! {
        h3 { (title) }
        (charts::mix_bar(parts))
        table.mix {
            @for (label, n, colour) in parts {
                tr {
                    td { span.swatch style=(format!("background:{colour}")) {} (label) }
                    td.num { (n) }
                    td.num { (format!("{:.1}%", *n as f64 * 100.0 / total as f64)) }
                }
            }
        }
    }
}

type Row<'a> = (&'a EndpointKey, &'a EndpointStats);

fn by_process(data: &ReportData) -> Markup {
    let mut groups: BTreeMap<(&str, &str), Vec<Row<'_>>> = BTreeMap::new();
    for row in data.table.rows() {
        groups
            .entry((row.0.comm.as_str(), row.0.container.as_str()))
            .or_default()
            .push(row);
    }
    for rows in groups.values_mut() {
        rows.sort_by_key(|row| std::cmp::Reverse(row.1.count));
    }
    html! {
        section id="endpoints" {
            h2 { "Endpoints by process and container" }
            p.note { "Latency histograms: log-spaced buckets from 100 µs to 10 s and over. Click a column to sort." }
            @for ((comm, container), rows) in &groups {
                (process_group(comm, container, rows))
            }
        }
    }
}

fn process_group(comm: &str, container: &str, rows: &[Row<'_>]) -> Markup {
    let count: u64 = rows.iter().map(|(_, s)| s.count).sum();
    let errors: u64 = rows.iter().map(|(_, s)| s.errors).sum();
    html! {
        div.group {
            h3 {
                (comm)
                @if !container.is_empty() {
                    " " span.container title=(container) { "container " (container.get(..12).unwrap_or(container)) }
                }
                span.note { " " (count) " exchanges, " (errors) " failed" }
            }
            table.sortable.endpoints {
                thead {
                    tr {
                        th { "role" } th { "proto" } th { "method" } th { "route" } th { "port" }
                        th.num { "count" } th.num { "err %" } th.num { "p50 ms" } th.num { "p90 ms" }
                        th.num { "p99 ms" } th { "latency histogram" }
                    }
                }
                tbody {
                    @for (key, stats) in rows {
                        tr.endpoint data-route=(key.route) {
                            td { (key.role) } td { (key.proto) } td { (key.method) }
                            td.route { (key.route) } td { (key.port) }
                            td.num { (stats.count) }
                            td.num { (format!("{:.1}", stats.error_pct())) }
                            td.num { (format!("{:.2}", stats.quantile_ms(0.5))) }
                            td.num { (format!("{:.2}", stats.quantile_ms(0.9))) }
                            td.num { (format!("{:.2}", stats.quantile_ms(0.99))) }
                            td { (charts::histogram(&all_latency_buckets(stats))) }
                        }
                    }
                }
            }
        }
    }
}

fn slowest(slowest: &[SlowExchange]) -> Markup {
    html! {
        section id="slowest" {
            h2 { "Slowest exchanges" }
            p.note { "Heads as in the log: credentials redacted." }
            table.slowest {
                thead { tr { th.num { "ms" } th { "status" } th { "process" } th { "request" } th { "time" } } }
                tbody {
                    @for slow in slowest {
                        @let (key, x) = (&slow.key, &slow.exchange);
                        tr {
                            td.num { (format!("{:.2}", x.latency_ns as f64 / 1e6)) }
                            td {
                                (x.status)
                                @if let Some(code) = x.grpc_status { " grpc " (code) }
                            }
                            td { (key.comm) " " (x.pid) " (" (key.role) ")" }
                            td {
                                details {
                                    summary { (key.method) " " (x.url) }
                                    @if let Some(request) = &x.request {
                                        (head(&format!("{} {}", key.method, x.url), request))
                                    }
                                    (head(&format!("status {}", x.status), &x.response))
                                }
                            }
                            td { (time(x.unix_ns)) }
                        }
                    }
                }
            }
        }
    }
}

fn head(first_line: &str, message: &MessageView) -> Markup {
    let mut text = String::from(first_line);
    for (name, value) in &message.headers {
        text.push('\n');
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
    }
    html! { pre.head { (text) } }
}
