//! CPU per record of the metrics and summary sinks, fed what a keep-alive load gives
//! them: 4 routes, both roles (server `demo-server`, client `wrk`), requests and 200
//! responses. Prints ns/record for each run and the median.
//!
//! cargo run --release -p httpscope-core --example sink_cost -- [metrics|summary] [RECORDS] [RUNS]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use httpscope_core::conn::ConnInfo;
use httpscope_core::direction::Direction;
use httpscope_core::http::{HttpMessage, HttpVersion, MessageKind, Role};
use httpscope_core::record::ExchangeRecord;
use httpscope_core::sink::{Metrics, MetricsSink, Sink, SummarySink};

const ROUTES: [&str; 4] = ["/", "/api/users/{id}", "/api/orders", "/healthz"];

/// One connection and one message per (role, route, kind): the records a run cycles through.
struct Templates {
    conns: [ConnInfo; 2],
    messages: Vec<(Role, &'static str, HttpMessage)>,
}

impl Templates {
    fn new() -> Self {
        let conn = |comm: &str| ConnInfo {
            comm: comm.into(),
            ..ConnInfo::unknown(1, 100)
        };
        let mut messages = Vec::new();
        for role in [Role::Server, Role::Client] {
            for (i, route) in ROUTES.into_iter().enumerate() {
                for kind in [MessageKind::Request, MessageKind::Response] {
                    messages.push((role, route, message(kind, route, i as u64)));
                }
            }
        }
        Self {
            conns: [conn("demo-server"), conn("wrk")],
            messages,
        }
    }

    fn feed(&self, sink: &mut dyn Sink, records: usize) {
        let mut templates = self.messages.iter().cycle();
        for i in 0..records {
            let (role, route, message) = templates.next().expect("cycle never ends");
            let record = ExchangeRecord {
                unix_ns: i as i64,
                tid: 100,
                conn: &self.conns[usize::from(*role == Role::Client)],
                role: Some(*role),
                message,
                route: Some(route),
            };
            sink.record(black_box(&record)).unwrap();
        }
    }
}

fn message(kind: MessageKind, route: &str, i: u64) -> HttpMessage {
    let response = kind == MessageKind::Response;
    HttpMessage {
        method: Some("GET".into()),
        url: Some(route.into()),
        status: response.then_some(200),
        latency_ns: response.then_some(40_000 + 150_000 * i),
        exchange: Some(1),
        ..HttpMessage::new(kind, Direction::Send, HttpVersion::Http11, 0)
    }
}

fn run(which: &str, templates: &Templates, records: usize) -> f64 {
    let metrics = Metrics::new();
    let mut sink: Box<dyn Sink> = match which {
        "metrics" => Box::new(MetricsSink::new(metrics.clone(), 1000)),
        "summary" => Box::new(SummarySink::new(std::io::sink())),
        other => {
            eprintln!("unknown sink {other}: metrics or summary");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    templates.feed(sink.as_mut(), records);
    let ns = start.elapsed().as_nanos() as f64 / records as f64;
    black_box(metrics.encode());
    ns
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("metrics", String::as_str);
    let records: usize = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    let runs: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(7);
    let templates = Templates::new();
    let mut results: Vec<f64> = (0..runs)
        .map(|_| {
            let ns = run(which, &templates, records);
            println!("{which}: {ns:.1} ns/record");
            ns
        })
        .collect();
    results.sort_by(f64::total_cmp);
    if let Some(median) = results.get(results.len() / 2) {
        println!("{which}: median {median:.1} ns/record over {runs} runs of {records} records");
    }
}
