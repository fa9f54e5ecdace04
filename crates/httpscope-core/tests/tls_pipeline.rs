//! TLS plaintext (SSL_read/SSL_write records) on a connection: its own stream, `tls=true`,
//! paired like plain HTTP, and ciphertext on the same connection is neither logged nor
//! reported as undecodable TLS.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use httpscope_core::direction::Direction;
use httpscope_core::event::{encode, ConnOrigin, EventHeader, TlsLib};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::sink::{LineFormat, LineSink, SummarySink};

const MS: u64 = 1_000_000;
const REQUEST: &[u8] = b"POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
/// A TLS application-data record header and some ciphertext.
const CIPHERTEXT: &[u8] = b"\x17\x03\x03\x00\x20\x8f\x01\x99\xaa\xbb\xcc\xdd\xee\xff\x00\x11\x22";

struct Shared(Rc<RefCell<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn header(ts_ns: u64) -> EventHeader {
    EventHeader {
        tgid: 100,
        tid: 101,
        ts_ns,
        conn_id: 1,
    }
}

#[test]
fn tls_plaintext_is_logged_with_tls_true_and_ciphertext_is_not() {
    let out = Rc::new(RefCell::new(Vec::new()));
    let sink = LineSink::new(Shared(out.clone()), LineFormat::Json);
    let mut pipeline = Pipeline::new(PipelineConfig::default(), vec![Box::new(sink)]);
    let mut feed = |raw: Vec<u8>| pipeline.process_raw(&raw).unwrap();
    feed(encode::conn_open(
        &header(0),
        5,
        ConnOrigin::Accept,
        "127.0.0.1:8443".parse().unwrap(),
        "127.0.0.1:50000".parse().unwrap(),
        "nginx",
    ));
    let len = |b: &[u8]| b.len() as u64;
    // The request arrives in two SSL_read calls; offsets count plaintext only.
    feed(encode::tls_data(
        &header(MS),
        Direction::Recv,
        0,
        10,
        &REQUEST[..10],
    ));
    feed(encode::tls_data(
        &header(2 * MS),
        Direction::Recv,
        10,
        len(REQUEST) - 10,
        &REQUEST[10..],
    ));
    // Ciphertext the syscalls saw on the same connection (offset 0 of the syscall stream).
    feed(encode::data(
        &header(3 * MS),
        Direction::Send,
        0,
        len(CIPHERTEXT),
        CIPHERTEXT,
    ));
    feed(encode::tls_data(
        &header(4 * MS),
        Direction::Send,
        0,
        len(RESPONSE),
        RESPONSE,
    ));
    let report = pipeline.finish().unwrap();
    assert_eq!(report.pipeline.connections_tls, 0);
    assert_eq!(report.pipeline.connections_other, 0);
    let text = String::from_utf8(out.borrow().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (request, response) = (&lines[0], &lines[1]);
    for line in &lines {
        assert_eq!(line["tls"], true, "{line}");
        assert_eq!(line["tls_lib"], "openssl", "{line}");
        assert_eq!(line["role"], "server", "{line}");
        assert_eq!(line["exchange"], 1, "{line}");
        assert_eq!(line["partial"], false, "{line}");
    }
    assert_eq!(request["body"], "abcd");
    assert_eq!(response["body"], "hello");
    assert_eq!(response["latency_ms"], 3.0);
}

#[test]
fn only_tls_plaintext_records_say_tls() {
    let out = Rc::new(RefCell::new(Vec::new()));
    let sink = LineSink::new(Shared(out.clone()), LineFormat::Logfmt);
    let mut pipeline = Pipeline::new(PipelineConfig::default(), vec![Box::new(sink)]);
    pipeline
        .process_raw(&encode::data(
            &header(MS),
            Direction::Recv,
            0,
            REQUEST.len() as u64,
            REQUEST,
        ))
        .unwrap();
    pipeline
        .process_raw(&encode::tls_data(
            &header(MS),
            Direction::Recv,
            0,
            REQUEST.len() as u64,
            REQUEST,
        ))
        .unwrap();
    pipeline.finish().unwrap();
    let text = String::from_utf8(out.borrow().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(!lines[0].contains("tls="), "{text}");
    assert!(lines[1].contains(" tls=true "), "{text}");
}

#[test]
fn each_library_names_itself_in_records_and_summary() {
    let out = Rc::new(RefCell::new(Vec::new()));
    let summary = Rc::new(RefCell::new(Vec::new()));
    let sinks: Vec<Box<dyn httpscope_core::sink::Sink>> = vec![
        Box::new(LineSink::new(Shared(out.clone()), LineFormat::Logfmt)),
        Box::new(SummarySink::new(Shared(summary.clone()))),
    ];
    let mut pipeline = Pipeline::new(PipelineConfig::default(), sinks);
    for (conn_id, lib) in [
        (1, TlsLib::Go),
        (2, TlsLib::Gnutls),
        (3, TlsLib::Node),
        (4, TlsLib::Rustls),
    ] {
        let at = |ts_ns| EventHeader {
            conn_id,
            ..header(ts_ns)
        };
        for (ts, direction, bytes) in [
            (MS, Direction::Send, REQUEST),
            (2 * MS, Direction::Recv, RESPONSE),
        ] {
            let raw = encode::tls_lib_data(lib, &at(ts), direction, 0, bytes.len() as u64, bytes);
            pipeline.process_raw(&raw).unwrap();
        }
    }
    pipeline.finish().unwrap();
    let text = String::from_utf8(out.borrow().clone()).unwrap();
    let libs: Vec<&str> = text
        .lines()
        .map(|l| {
            l.split(" tls_lib=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        libs,
        ["go", "go", "gnutls", "gnutls", "node", "node", "rustls", "rustls"],
        "{text}"
    );
    let summary = String::from_utf8(summary.borrow().clone()).unwrap();
    assert!(
        summary.contains("tls_records openssl=0 go=2 gnutls=2 node=2 rustls=2\n"),
        "{summary}"
    );
}
