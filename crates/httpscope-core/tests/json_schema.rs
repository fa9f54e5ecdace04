//! The JSON line format is a contract: every line the JSON sink writes for the
//! recorded fixtures must validate against `schema/record.schema.json`, and the
//! schema must reject what the format never writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use std::collections::HashMap;
use std::sync::Arc;

use httpscope_core::cgroup::{CgroupInfo, CgroupNames};
use httpscope_core::direction::Direction;
use httpscope_core::event::{encode, ConnOrigin, EventHeader};
use httpscope_core::eventlog::{EventFileReader, EventRecord};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::sink::{LineFormat, LineSink};
use serde_json::Value;

#[derive(Clone, Default)]
struct SharedBuf(Rc<RefCell<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schema/record.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("reading schema/record.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::draft202012::new(&schema).expect("the schema is valid draft 2020-12")
}

/// Replays a fixture into the JSON line sink; returns the lines.
fn json_lines(fixture: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/{fixture}.events",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut reader = EventFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let config = PipelineConfig {
        wall_clock_offset_ns: reader.header().wall_clock_offset_ns,
        ..PipelineConfig::default()
    };
    let buf = SharedBuf::default();
    let sink = LineSink::new(buf.clone(), LineFormat::Json);
    let mut pipeline = Pipeline::new(config, vec![Box::new(sink)]);
    while let Some(record) = reader.next_record().unwrap() {
        match record {
            EventRecord::KernelEvent(raw) => pipeline.process_raw(raw).unwrap(),
            EventRecord::KernelCounters(c) => pipeline.set_kernel_counters(c),
        }
    }
    pipeline.finish().unwrap();
    let text = String::from_utf8(buf.0.borrow().clone()).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn every_fixture_line_validates() {
    let validator = schema();
    let mut total = 0;
    for fixture in [
        "demo-traffic",
        "curl-bodies",
        "curl-keepalive",
        "pipelined",
        "python-urllib",
        "h2c-curl-nghttpd",
        "h2c-nghttp",
        "h2c-upgrade",
        "h2-tls-curl",
        "grpc-python",
        "h2c-late-attach",
    ] {
        let lines = json_lines(fixture);
        assert!(!lines.is_empty(), "{fixture}: no records");
        for line in &lines {
            let value: Value = serde_json::from_str(line).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            assert!(errors.is_empty(), "{fixture}: {line}\n{errors:#?}");
        }
        total += lines.len();
    }
    assert!(total >= 80, "only {total} lines checked");
}

/// Cgroup paths by id, as the live resolver would name them.
struct FixedCgroups(HashMap<u64, String>);

impl CgroupNames for FixedCgroups {
    fn name(&mut self, cgroup_id: u64) -> Option<Arc<CgroupInfo>> {
        self.0
            .get(&cgroup_id)
            .map(|path| Arc::new(CgroupInfo::parse(path)))
    }
}

const CONTAINER: &str = "5e08593ba1bf069a8cb5a38f05f5e3ec5ff387050a978d050adc2e120de20fea";
const POD: &str = "0d4c2a3e-79a8-4d6f-9c9f-1f2b3c4d5e6f";

/// One exchange on each of three connections: in a pod's container, on the
/// host's root cgroup, and in a cgroup the resolver cannot name.
fn cgroup_lines(format: LineFormat) -> Vec<String> {
    let pod_path = format!(
        "/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{CONTAINER}.scope",
        POD.replace('-', "_")
    );
    let cgroups = FixedCgroups(HashMap::from([(4242, pod_path), (1, "/".to_string())]));
    let buf = SharedBuf::default();
    let sink = LineSink::new(buf.clone(), format);
    let mut pipeline = Pipeline::new(PipelineConfig::default(), vec![Box::new(sink)])
        .with_cgroups(Box::new(cgroups));
    for (conn_id, cgroup_id) in [(1u64, 4242u64), (2, 1), (3, 77)] {
        let header = |ts_ns| EventHeader {
            tgid: 100 + conn_id as u32,
            tid: 100 + conn_id as u32,
            ts_ns,
            conn_id,
        };
        let mut open = encode::conn_open(
            &header(1),
            5,
            ConnOrigin::Accept,
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
            "server",
        );
        encode::set_cgroup_id(&mut open, cgroup_id);
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let response = b"HTTP/1.1 204 No Content\r\n\r\n";
        for raw in [
            open,
            encode::data(
                &header(2),
                Direction::Recv,
                0,
                request.len() as u64,
                request,
            ),
            encode::data(
                &header(3),
                Direction::Send,
                0,
                response.len() as u64,
                response,
            ),
        ] {
            pipeline.process_raw(&raw).unwrap();
        }
    }
    pipeline.finish().unwrap();
    let text = String::from_utf8(buf.0.borrow().clone()).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn container_fields_are_written_and_validate() {
    let validator = schema();
    let lines = cgroup_lines(LineFormat::Json);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for record in &records {
        assert!(validator.is_valid(record), "{record}");
    }
    let of_conn = |conn: u64| records.iter().filter(move |r| r["conn"] == conn);
    for record in of_conn(1) {
        assert_eq!(record["container_id"], CONTAINER);
        assert_eq!(record["k8s_pod_uid"], POD);
        assert!(record["cgroup"].as_str().unwrap().ends_with(".scope"));
    }
    for record in of_conn(2) {
        assert_eq!(record["cgroup"], "/");
        assert!(record.get("container_id").is_none() && record.get("k8s_pod_uid").is_none());
    }
    for record in of_conn(3) {
        assert!(record.get("cgroup").is_none(), "{record}");
    }
    let mut bad = records[0].clone();
    bad["container_id"] = Value::from(&CONTAINER[..12]);
    assert!(!validator.is_valid(&bad), "a short container id");

    let logfmt = cgroup_lines(LineFormat::Logfmt);
    let container_lines = logfmt.iter().filter(|l| l.contains(" conn=1 ")).count();
    assert_eq!(container_lines, 2);
    for line in logfmt.iter().filter(|l| l.contains(" conn=1 ")) {
        assert!(
            line.contains(&format!(" container_id={CONTAINER} k8s_pod_uid={POD} ")),
            "{line}"
        );
    }
    assert!(logfmt
        .iter()
        .filter(|l| l.contains(" conn=2 "))
        .all(|l| l.contains(" cgroup=/ ") && !l.contains("container_id")));
}

#[test]
fn schema_rejects_what_the_format_never_writes() {
    let validator = schema();
    let line = json_lines("demo-traffic")
        .into_iter()
        .find(|l| l.contains("\"kind\":\"response\""))
        .unwrap();
    let good: Value = serde_json::from_str(&line).unwrap();
    assert!(validator.is_valid(&good));
    let mutations: [(&str, Value); 5] = [
        ("kind", Value::from("reply")),
        ("status", Value::from("200")),
        ("ts", Value::from("yesterday")),
        ("surprise", Value::from(1)),
        ("latency_ms", Value::from(-1.0)),
    ];
    for (field, value) in mutations {
        let mut bad = good.clone();
        bad[field] = value;
        assert!(
            !validator.is_valid(&bad),
            "accepted {field} = {}",
            bad[field]
        );
    }
    for (field, what) in [
        ("status", "a response without status"),
        ("route", "a url without its route"),
    ] {
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove(field);
        assert!(!validator.is_valid(&missing), "{what}");
    }
}

/// An HTTP/2 gRPC response with every HTTP/2 field set, as the JSON writer renders it.
fn grpc_response_line() -> Value {
    use httpscope_core::conn::ConnInfo;
    use httpscope_core::direction::Direction;
    use httpscope_core::http::{Extra, GrpcCall, HttpMessage, HttpVersion, MessageKind, Role};
    use httpscope_core::record::ExchangeRecord;

    let message = HttpMessage {
        stream: std::num::NonZeroU32::new(3),
        method: Some("POST".into()),
        url: Some("/helloworld.Greeter/SayHello".into()),
        status: Some(200),
        headers: [("content-type", "application/grpc")].into_iter().collect(),
        latency_ns: Some(1_500_000),
        exchange: Some(2),
        extra: Some(Box::new(Extra {
            authority: Some("localhost:50051".into()),
            trailers: [("grpc-status", "5"), ("grpc-message", "not found")]
                .into_iter()
                .collect(),
            unknown_headers: 1,
            reset_code: None,
        })),
        grpc: Some(Box::new(GrpcCall {
            service: "helloworld.Greeter".into(),
            method: "SayHello".into(),
            status: Some(5),
            message: Some("not found".into()),
            messages: 0,
        })),
        ..HttpMessage::new(MessageKind::Response, Direction::Send, HttpVersion::H2, 7)
    };
    let conn = ConnInfo::unknown(9, 42);
    let record = ExchangeRecord {
        unix_ns: 1_795_616_404_123_456_789,
        tid: 42,
        conn: &conn,
        role: Some(Role::Server),
        message: &message,
        route: Some("/helloworld.Greeter/SayHello"),
    };
    let mut out = Vec::new();
    httpscope_core::format::json::write_line(&record, &mut out);
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn h2_grpc_records_validate() {
    let validator = schema();
    let good = grpc_response_line();
    let errors: Vec<String> = validator
        .iter_errors(&good)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{good}\n{errors:#?}");
    assert_eq!(good["proto"], "h2");
    assert_eq!(good["http_version"], "2");
    assert_eq!(good["grpc_status"], 5);
    assert_eq!(good["trailers"]["grpc-message"], "not found");
    let mut no_stream = good.clone();
    no_stream.as_object_mut().unwrap().remove("stream");
    assert!(!validator.is_valid(&no_stream), "h2 without a stream id");
    let mut h1_with_stream = good.clone();
    h1_with_stream["proto"] = Value::from("http/1.1");
    h1_with_stream["http_version"] = Value::from("1.1");
    assert!(!validator.is_valid(&h1_with_stream), "HTTP/1 with a stream");
}
