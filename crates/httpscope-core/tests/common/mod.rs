//! Shared by the pipeline and replay tests: a sink that keeps what it is given.
#![allow(dead_code, clippy::unwrap_used)]

pub mod rng;

use std::cell::RefCell;
use std::rc::Rc;

use httpscope_core::eventlog::{EventFileReader, EventRecord};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::record::ExchangeRecord;
use httpscope_core::sink::{Sink, SinkError};
use httpscope_core::stats::Report;

/// An owned copy of the interesting parts of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub conn: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub role: Option<&'static str>,
    pub kind: &'static str,
    pub dir: &'static str,
    pub src: String,
    pub dst: String,
    pub method: Option<String>,
    pub url: Option<String>,
    pub route: Option<String>,
    pub status: Option<u16>,
    pub exchange: Option<u64>,
    pub latency_ns: Option<u64>,
    pub partial: bool,
    pub body: String,
    pub body_captured: bool,
    pub wire_bytes: u64,
    pub request_id: Option<String>,
    pub unix_ns: i64,
    pub proto: &'static str,
    pub stream: Option<u32>,
    pub interim: bool,
    pub unknown_headers: u32,
    pub reset_code: Option<u32>,
    /// `service/method status messages` of a gRPC record.
    pub grpc: Option<String>,
}

#[derive(Clone, Default)]
pub struct Collector(pub Rc<RefCell<Vec<Seen>>>);

impl Sink for Collector {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        let m = record.message;
        self.0.borrow_mut().push(Seen {
            conn: record.conn.conn_id,
            pid: record.conn.tgid,
            tid: record.tid,
            comm: record.conn.comm.clone(),
            role: record.role.map(|r| r.as_str()),
            kind: m.kind.as_str(),
            dir: m.direction.as_str(),
            src: record.src().to_string(),
            dst: record.dst().to_string(),
            method: m.method.as_deref().map(str::to_owned),
            url: m.url.as_deref().map(str::to_owned),
            route: record.route.map(str::to_owned),
            status: m.status,
            exchange: m.exchange,
            latency_ns: m.latency_ns,
            partial: m.partial,
            body: String::from_utf8_lossy(&m.body).into_owned(),
            body_captured: m.body_captured,
            wire_bytes: m.wire_bytes,
            request_id: m
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
                .map(|(_, v)| v.to_owned()),
            unix_ns: record.unix_ns,
            proto: m.proto.as_str(),
            stream: m.stream.map(|id| id.get()),
            interim: m.interim,
            unknown_headers: m.unknown_headers(),
            reset_code: m.reset_code(),
            grpc: m
                .grpc
                .as_deref()
                .map(|g| format!("{}/{} {:?} {}", g.service, g.method, g.status, g.messages)),
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Replays a committed fixture through a fresh pipeline.
pub fn replay_fixture(name: &str) -> (Vec<Seen>, Report) {
    let path = format!(
        "{}/tests/fixtures/{name}.events",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = std::fs::File::open(&path).unwrap();
    let mut reader = EventFileReader::new(file).unwrap();
    let config = PipelineConfig {
        wall_clock_offset_ns: reader.header().wall_clock_offset_ns,
        ..PipelineConfig::default()
    };
    let collector = Collector::default();
    let mut pipeline = Pipeline::new(config, vec![Box::new(collector.clone())]);
    while let Some(record) = reader.next_record().unwrap() {
        match record {
            EventRecord::KernelEvent(raw) => pipeline.process_raw(raw).unwrap(),
            EventRecord::KernelCounters(counters) => pipeline.set_kernel_counters(counters),
        }
    }
    let report = pipeline.finish().unwrap();
    let seen = collector.0.borrow().clone();
    (seen, report)
}

pub fn of<'a>(seen: &'a [Seen], role: &str, kind: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.role == Some(role) && s.kind == kind)
        .collect()
}

/// Every paired response matches its request: same conn and exchange, and
/// the request id echoed back (when the request carried one).
pub fn assert_pairing_exact(seen: &[Seen]) {
    for response in seen.iter().filter(|s| s.kind == "response") {
        let Some(exchange) = response.exchange else {
            continue;
        };
        let request = seen
            .iter()
            .find(|s| {
                s.kind == "request" && s.conn == response.conn && s.exchange == Some(exchange)
            })
            .unwrap_or_else(|| panic!("no request for {response:?}"));
        assert_eq!(request.method, response.method);
        assert_eq!(request.url, response.url);
        if let (Some(sent), Some(echoed)) = (&request.request_id, &response.request_id) {
            assert_eq!(sent, echoed, "mis-paired: {request:?} / {response:?}");
        }
    }
}
