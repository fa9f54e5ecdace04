//! Snapshot tests: recorded traces replayed into the endpoint table, `top`
//! rendered into ratatui's TestBackend and compared with committed text in
//! `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them). The clock is the
//! trace's own latest timestamp, so the output is deterministic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::fs::File;
use std::path::PathBuf;
use std::rc::Rc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use httpscope_core::analysis::{EndpointSink, EndpointTable};
use httpscope_core::eventlog::{EventFileReader, EventRecord};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::stats::Report;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::app::{App, View};
use super::render::draw;

fn replay(name: &str) -> (EndpointTable, Report) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../httpscope-core/tests/fixtures")
        .join(format!("{name}.events"));
    let mut reader = EventFileReader::new(File::open(path).unwrap()).unwrap();
    let table = Rc::new(RefCell::new(EndpointTable::new()));
    let config = PipelineConfig {
        wall_clock_offset_ns: reader.header().wall_clock_offset_ns,
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(config, vec![Box::new(EndpointSink::new(Rc::clone(&table)))]);
    while let Some(record) = reader.next_record().unwrap() {
        match record {
            EventRecord::KernelEvent(raw) => pipeline.process_raw(raw).unwrap(),
            EventRecord::KernelCounters(c) => pipeline.set_kernel_counters(c),
        }
    }
    let report = pipeline.finish().unwrap();
    let table = table.replace(EndpointTable::new());
    (table, report)
}

fn screen(app: &App, table: &EndpointTable, report: &Report, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| draw(frame, app, table, report, table.latest_ns))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for row in buffer.content().chunks(usize::from(width)) {
        let line: String = row.iter().map(|cell| cell.symbol()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert!(
        expected == actual,
        "snapshot {name} differs\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn key(app: &mut App, table: &EndpointTable, code: KeyCode) {
    app.on_key(
        KeyEvent::new(code, KeyModifiers::NONE),
        table,
        table.latest_ns,
    );
}

#[test]
fn table_of_every_fixture() {
    for name in [
        "demo-traffic",
        "curl-keepalive",
        "curl-bodies",
        "pipelined",
        "python-urllib",
    ] {
        let (table, report) = replay(name);
        assert!(!table.is_empty(), "{name}");
        let app = App::new("ports 18080".into());
        check(
            &format!("top_{name}"),
            &screen(&app, &table, &report, 150, 16),
        );
    }
}

#[test]
fn sort_filter_select_and_details() {
    let (table, report) = replay("demo-traffic");
    let mut app = App::new("ports 18080".into());
    // s cycles REQ/S -> COUNT -> ERR% -> P50 -> P90 -> P99.
    for _ in 0..5 {
        key(&mut app, &table, KeyCode::Char('s'));
    }
    check("top_sorted_p99", &screen(&app, &table, &report, 130, 14));
    key(&mut app, &table, KeyCode::Char('/'));
    for c in "server echo".chars() {
        key(&mut app, &table, KeyCode::Char(c));
    }
    key(&mut app, &table, KeyCode::Enter);
    assert_eq!(app.rows(&table, table.latest_ns).len(), 1);
    key(&mut app, &table, KeyCode::Enter);
    assert!(matches!(&app.view, View::Details(k) if k.route == "/echo" && k.role == "server"));
    check("top_details_echo", &screen(&app, &table, &report, 130, 30));
    key(&mut app, &table, KeyCode::Esc);
    assert_eq!(app.view, View::Table);
    key(&mut app, &table, KeyCode::Char('q'));
    assert!(app.quit);
}

/// HTTP/2 fixtures: h2 and gRPC endpoints get their PROTO, and a gRPC call whose grpc-status
/// is not 0 counts in ERR% though its HTTP status is 200; the filter takes `grpc` and `h2`.
#[test]
fn h2_and_grpc_endpoints() {
    for name in ["h2c-nghttp", "grpc-python"] {
        let (table, report) = replay(name);
        assert!(!table.is_empty(), "{name}");
        let app = App::new("ports 18930".into());
        check(
            &format!("top_{name}"),
            &screen(&app, &table, &report, 150, 16),
        );
    }
    let (table, report) = replay("grpc-python");
    let failing = table
        .rows()
        .into_iter()
        .filter(|(k, s)| k.proto == "grpc" && s.errors > 0)
        .count();
    assert!(failing > 0, "no gRPC endpoint with errors");
    let mut app = App::new("ports 18930".into());
    key(&mut app, &table, KeyCode::Char('/'));
    for c in "grpc server".chars() {
        key(&mut app, &table, KeyCode::Char(c));
    }
    key(&mut app, &table, KeyCode::Enter);
    let rows = app.rows(&table, table.latest_ns);
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|(k, _)| k.proto == "grpc" && k.role == "server")
    );
    key(&mut app, &table, KeyCode::Enter);
    check("top_details_grpc", &screen(&app, &table, &report, 130, 30));
}

#[test]
fn selection_moves_and_stays_in_range() {
    let (table, _) = replay("demo-traffic");
    let mut app = App::new(String::new());
    for _ in 0..50 {
        key(&mut app, &table, KeyCode::Down);
    }
    assert_eq!(app.selected, 7);
    key(&mut app, &table, KeyCode::Up);
    assert_eq!(app.selected, 6);
    key(&mut app, &table, KeyCode::Char('/'));
    for _ in 0..3 {
        key(&mut app, &table, KeyCode::Char('z'));
    }
    assert_eq!(
        (app.selected, app.rows(&table, table.latest_ns).len()),
        (0, 0)
    );
    // Enter on an empty table does nothing; a tiny terminal does not panic.
    key(&mut app, &table, KeyCode::Enter);
    key(&mut app, &table, KeyCode::Enter);
    assert_eq!(app.view, View::Table);
    let _ = screen(&app, &table, &Report::default(), 10, 3);
}

#[test]
fn container_column_and_filter() {
    use super::columns::{matches, Columns};
    use httpscope_core::analysis::Observation;

    let id = format!("68a4a772d6b8{}", "0".repeat(52));
    let mut table = EndpointTable::new();
    for container in ["", id.as_str()] {
        table.observe(Observation {
            is_response: true,
            role: "server".into(),
            comm: "api".into(),
            container: container.into(),
            port: 80,
            method: "GET".into(),
            url: "/".into(),
            status: Some(200),
            latency_ns: Some(1000),
            ..Observation::default()
        });
    }
    let rows = table.rows();
    let (host, contained) = (rows[0].0, rows[1].0);
    let stats = rows[0].1;
    let host_only = Columns::for_rows(&rows[..1]);
    assert!(!host_only.headers().contains(&"CONTAINER"));
    let mixed = Columns::for_rows(&rows);
    assert_eq!(mixed.headers()[..3], ["PROCESS", "CONTAINER", "PORT"]);
    assert_eq!(mixed.cells(contained, stats, 0.0)[1], "68a4a772d6b8");
    assert_eq!(mixed.cells(host, stats, 0.0)[1], "-");
    assert_eq!(mixed.route_column(), host_only.route_column() + 1);
    assert!(matches("68a4a7", contained) && !matches("68a4a7", host));
    assert!(!matches("a4a7", contained), "an id matches by prefix only");
}
