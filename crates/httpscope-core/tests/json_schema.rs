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
