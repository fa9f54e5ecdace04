//! The JSON line format is a contract: every line the JSON sink writes for the
//! recorded fixtures must validate against `schema/record.schema.json`, and the
//! schema must reject what the format never writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

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
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("status");
    assert!(!validator.is_valid(&missing), "a response without status");
}

/// An HTTP/2 gRPC response with every HTTP/2 field set, as the JSON writer renders it.
fn grpc_response_line() -> Value {
    use httpscope_core::conn::ConnInfo;
    use httpscope_core::direction::Direction;
    use httpscope_core::http::{Extra, GrpcCall, HttpMessage, MessageKind, Proto, Role};
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
        ..HttpMessage::new(MessageKind::Response, Direction::Send, Proto::H2, 7)
    };
    let conn = ConnInfo::unknown(9, 42);
    let record = ExchangeRecord {
        unix_ns: 1_795_616_404_123_456_789,
        tid: 42,
        conn: &conn,
        role: Some(Role::Server),
        message: &message,
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
