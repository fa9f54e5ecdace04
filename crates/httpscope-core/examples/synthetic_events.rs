//! Writes a synthetic event file (through the real event-file writer) of a REST service's
//! server side: N exchanges over keep-alive connections, a dozen routes with ids in their
//! paths, a few errors, latencies from 0.2 ms to about a second. For sizing `report`,
//! `stats` and replay on large captures.
//!
//! cargo run --release -p httpscope-core --example synthetic_events -- OUT EXCHANGES [SECONDS]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;

use httpscope_core::direction::Direction;
use httpscope_core::event::{encode, ConnOrigin, EventHeader};
use httpscope_core::eventlog::{EventFileHeader, EventFileWriter, FORMAT_VERSION};

#[path = "../tests/common/rng.rs"]
mod rng;

use rng::Rng;

const CONNECTIONS: u64 = 64;

fn url(rng: &mut Rng) -> String {
    let id = rng.below(1_000_000);
    let hex = rng.next();
    match rng.below(12) {
        0 => format!("/api/v1/users/{id}"),
        1 => "/api/v1/users/me".into(),
        2 => format!("/api/v1/users/{id}/orders"),
        3 => format!("/api/v1/orders/{hex:016x}{id:08x}"),
        4 => format!("/api/v1/orders/{id}/items/{}", id % 17),
        5 => "/api/v1/orders/export".into(),
        6 => format!("/files/{hex:016x}"),
        7 => format!(
            "/reports/2026-{:02}-{:02}/summary",
            1 + id % 12,
            1 + id % 28
        ),
        8 => format!("/search?q=x{id}"),
        9 => format!("/hosts/10.0.{}.{}/metrics", id % 256, id / 256 % 256),
        10 => "/healthz".into(),
        _ => format!("/api/v2/customers/cus_{hex:014x}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: synthetic_events OUT EXCHANGES [SECONDS]");
        std::process::exit(2);
    };
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(600);
    let header = EventFileHeader {
        format_version: FORMAT_VERSION,
        wall_clock_offset_ns: 1_795_000_000_000_000_000,
        ports: vec![8080],
        capture_bytes: 16384,
        recorded_by: "synthetic_events".into(),
    };
    let mut writer = EventFileWriter::new(File::create(out).unwrap(), &header).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut offsets = [(0u64, 0u64); CONNECTIONS as usize];
    for conn in 0..CONNECTIONS {
        let h = EventHeader {
            tgid: 100,
            tid: 100,
            ts_ns: 1,
            conn_id: conn + 1,
        };
        let remote = format!("10.1.0.{}:{}", conn % 250 + 1, 40000 + conn);
        let raw = encode::conn_open(
            &h,
            10 + conn as u32,
            ConnOrigin::Accept,
            "10.0.0.1:8080".parse().unwrap(),
            remote.parse().unwrap(),
            "api-server",
        );
        writer.write_event(&raw).unwrap();
    }
    let step = seconds * 1_000_000_000 / n.max(1);
    for i in 0..n {
        let conn = i % CONNECTIONS;
        let start = 1_000 + i * step;
        // Mostly fast, a long tail: 0.2 ms × 2^(0…12).
        let latency = 200_000u64 << (rng.below(1000).pow(2) / 80_000);
        let status = match rng.below(100) {
            0..=1 => "500 Internal Server Error",
            2..=4 => "404 Not Found",
            _ => "200 OK",
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: api\r\nUser-Agent: synth\r\n\r\n",
            url(&mut rng)
        );
        let response = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
        let (recv, send) = &mut offsets[conn as usize];
        for (ts, direction, offset, bytes) in [
            (start, Direction::Recv, recv, request.as_bytes()),
            (start + latency, Direction::Send, send, response.as_bytes()),
        ] {
            let h = EventHeader {
                tgid: 100,
                tid: 101,
                ts_ns: ts,
                conn_id: conn + 1,
            };
            let len = bytes.len() as u64;
            writer
                .write_event(&encode::data(&h, direction, *offset, len, bytes))
                .unwrap();
            *offset += len;
        }
    }
    writer.flush().unwrap();
}
