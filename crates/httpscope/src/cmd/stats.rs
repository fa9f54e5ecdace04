//! `httpscope stats FILE`: the endpoint table and latency histograms of a
//! `--format json` output file or a saved event file, as text or `--json`.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use httpscope_core::analysis::{
    latency_buckets, EndpointSink, EndpointTable, Observation, Observer,
};
use httpscope_core::eventlog::{EventFileReader, EventRecord, MAGIC};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::route::{RouteRules, Routes};
use httpscope_core::stats::Report;
use serde_json::{json, Value};

use super::top::columns::{human_bytes, in_container, Columns};
use crate::cli::StatsArgs;

/// A file loaded into an endpoint table (or the report's data).
pub struct Loaded<T = EndpointTable> {
    pub table: T,
    /// Counters of the replay (event files only).
    pub report: Option<Report>,
    /// JSON lines that were not httpscope records.
    pub skipped_lines: u64,
}

pub fn run(args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let progress = io::stderr().is_terminal();
    let mut loaded: Loaded = load(&args.file, &args.routes.rules(), progress)?;
    if let Some(prefix) = &args.container {
        loaded
            .table
            .retain_endpoints(|key| in_container(key, prefix));
    }
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&to_json(&loaded))?;
        text.push('\n');
        text
    } else {
        render_text(&loaded)
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Reads an event file (by its magic) or JSON lines, grouping by route as `rules` say;
/// `progress` shows a percentage on stderr.
pub fn load<T: Observer + Default + 'static>(
    path: &Path,
    rules: &RouteRules,
    progress: bool,
) -> anyhow::Result<Loaded<T>> {
    let open = || File::open(path).with_context(|| format!("opening {}", path.display()));
    let mut magic = [0u8; 16];
    let is_events = open()?.read_exact(&mut magic).is_ok() && &magic == MAGIC;
    let total = open()?.metadata().map(|m| m.len()).unwrap_or(0);
    let read = Rc::new(Cell::new(0u64));
    let input = Counting {
        inner: open()?,
        read: Rc::clone(&read),
    };
    let mut meter = Progress {
        enabled: progress && is_events,
        total,
        last: None,
    };
    if !is_events {
        return load_json_lines(path, BufReader::new(input), rules);
    }
    let mut reader = EventFileReader::new(BufReader::new(input))
        .with_context(|| format!("reading {}", path.display()))?;
    let shared = Rc::new(RefCell::new(T::default()));
    let config = PipelineConfig {
        wall_clock_offset_ns: reader.header().wall_clock_offset_ns,
        routes: rules.clone(),
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(
        config,
        vec![Box::new(EndpointSink::new(Rc::clone(&shared)))],
    );
    while let Some(record) = reader.next_record().context("reading event file")? {
        match record {
            EventRecord::KernelEvent(raw) => pipeline.process_raw(raw)?,
            EventRecord::KernelCounters(counters) => pipeline.set_kernel_counters(counters),
        }
        meter.update(read.get());
    }
    meter.done();
    let report = pipeline.finish()?;
    let table = shared.take();
    Ok(Loaded {
        table,
        report: Some(report),
        skipped_lines: 0,
    })
}

/// JSON lines keep the route they were written with, unless `rules` bring templates (or the
/// lines predate routes): then it is found again from the url.
fn load_json_lines<T: Observer + Default>(
    path: &Path,
    input: impl BufRead,
    rules: &RouteRules,
) -> anyhow::Result<Loaded<T>> {
    let mut table = T::default();
    let mut routes = Routes::new(rules);
    let mut skipped_lines = 0;
    for line in input.lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str::<Value>(&line).ok();
        let Some(mut obs) = value.as_ref().and_then(Observation::from_json) else {
            skipped_lines += 1;
            continue;
        };
        if !obs.url.is_empty() && (obs.route.is_empty() || !rules.templates.is_empty()) {
            obs.route = routes.route(&obs.url, obs.grpc).to_string();
        }
        table.observe(obs);
    }
    Ok(Loaded {
        table,
        report: None,
        skipped_lines,
    })
}

struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// A percentage line on stderr, rewritten at most every 100 ms.
struct Progress {
    enabled: bool,
    total: u64,
    last: Option<Instant>,
}

impl Progress {
    fn update(&mut self, done: u64) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let pct = done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        let _ = write!(
            io::stderr(),
            "\rreplaying events: {pct:>3}% ({} of {} bytes)",
            human_bytes(done),
            human_bytes(self.total)
        );
    }

    fn done(&mut self) {
        if self.enabled && self.last.is_some() {
            let _ = write!(io::stderr(), "\r\x1b[2K");
        }
    }
}

/// The table (REQ/S is the mean rate over the file), counters and histograms.
pub fn render_text(loaded: &Loaded) -> String {
    let table = &loaded.table;
    let mut out = String::new();
    let rows = table.rows();
    let columns = Columns::for_rows(&rows);
    let line = |out: &mut String, cells: &[String]| {
        for (i, (cell, width)) in cells.iter().zip(columns.widths()).enumerate() {
            let width = usize::from(width);
            if i <= columns.route_column() {
                let _ = write!(out, "{cell:<width$} ");
            } else {
                let _ = write!(out, "{cell:>width$} ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    let headers: Vec<String> = columns.headers().into_iter().map(str::to_owned).collect();
    line(&mut out, &headers);
    for (key, stats) in &rows {
        line(&mut out, &columns.cells(key, stats, stats.mean_rate()));
    }
    let _ = write!(
        out,
        "\nrecords={} partial={} truncated_bodies={}",
        table.messages, table.partial_messages, table.truncated_bodies
    );
    if let Some(report) = &loaded.report {
        let _ = write!(
            out,
            " events={} kernel_drops={} truncated_syscalls={} parse_errors={}",
            report.pipeline.events,
            report.kernel.dropped_events(),
            report
                .kernel
                .get(httpscope_core::event::abi::KernelStat::SyscallsTruncated),
            report.parse.parse_errors
        );
    }
    if loaded.skipped_lines > 0 {
        let _ = write!(out, " skipped_lines={}", loaded.skipped_lines);
    }
    out.push_str("\n\nlatency histograms\n");
    for (key, stats) in table.rows() {
        let _ = writeln!(
            out,
            "\n{} {} {} {} ({}:{})  n={}",
            key.role, key.proto, key.method, key.route, key.comm, key.port, stats.count
        );
        let buckets = latency_buckets(stats);
        let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
        for bucket in buckets {
            let label = bucket
                .le_ms
                .map_or_else(|| "      more".to_owned(), |ms| format!("<={ms:>8.2}"));
            let bar = "#".repeat(((bucket.count * 40).div_ceil(max)) as usize);
            let _ = writeln!(out, "  {label} ms {:>7} {bar}", bucket.count);
        }
    }
    out
}

/// Everything `render_text` shows, as one JSON document.
pub fn to_json(loaded: &Loaded) -> Value {
    let table = &loaded.table;
    let endpoints: Vec<Value> = table
        .rows()
        .into_iter()
        .map(|(key, stats)| {
            json!({
                "role": key.role, "proto": key.proto, "method": key.method, "route": key.route,
                "process": key.comm, "container_id": key.container, "port": key.port,
                "count": stats.count, "errors": stats.errors, "error_pct": stats.error_pct(),
                "status_classes": stats.status_classes,
                "rate_per_s": stats.mean_rate(),
                "p50_ms": stats.quantile_ms(0.5), "p90_ms": stats.quantile_ms(0.9),
                "p99_ms": stats.quantile_ms(0.99), "max_ms": stats.latency_us.max() as f64 / 1000.0,
                "request_bytes": stats.request_bytes, "response_bytes": stats.response_bytes,
                "histogram": latency_buckets(stats),
            })
        })
        .collect();
    json!({
        "records": table.messages,
        "partial_messages": table.partial_messages,
        "truncated_bodies": table.truncated_bodies,
        "skipped_lines": loaded.skipped_lines,
        "report": loaded.report,
        "endpoints": endpoints,
    })
}
