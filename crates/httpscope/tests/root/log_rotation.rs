//! Root integration test: SIGHUP reopens `--output` while records stream in, as
//! logrotate's `postrotate` does, and every record lands whole in one of the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;

use crate::support::tools::get;
use crate::support::*;

const CLIENTS: usize = 4;
const ROTATIONS: usize = 4;

/// Sends GETs of `/?c=CLIENT&i=N` to `port`, one per connection, until `done`; returns
/// how many.
fn load(port: u16, client: usize, done: &AtomicBool) -> usize {
    let mut sent = 0;
    while !done.load(Ordering::Relaxed) {
        assert_eq!(get(port, &format!("/?c={client}&i={sent}")), 200);
        sent += 1;
    }
    sent
}

/// Waits for the profiler to reopen its output: it does so at its next flush, within a
/// second or two.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} not reopened within 5 s of SIGHUP",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[apply(root_test!)]
fn sighup_reopens_the_output_without_losing_or_splitting_a_record() {
    let (server, port) = demo_server(&[]);
    let server_pid = server.child.id().to_string();
    let profiler = Profiler::start(&[port], &["--pid", &server_pid, "--no-summary"]);
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || load(port, client, &done))
        })
        .collect();
    // Outside the profiler's directory, which goes when it stops.
    let rotated_dir = TempDir::new();
    let rotated: Vec<PathBuf> = (1..=ROTATIONS)
        .map(|n| {
            std::thread::sleep(Duration::from_millis(300));
            let to = rotated_dir.path.join(format!("records.jsonl.{n}"));
            std::fs::rename(&profiler.output, &to).unwrap();
            signal(profiler.proc.child.id(), libc::SIGHUP);
            wait_for_file(&profiler.output);
            to
        })
        .collect();
    // Records after the last rotation too.
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();

    let (current, _) = profiler.stop();
    let mut per_url: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut files = vec![current];
    files.extend(rotated.iter().map(|path| read_records(path)));
    for (n, records) in files.iter().enumerate() {
        assert!(
            !records.is_empty(),
            "file {n} after rotation holds no record"
        );
        for record in records {
            let counts = per_url
                .entry(record["url"].as_str().unwrap().to_owned())
                .or_default();
            match record["kind"].as_str() {
                Some("request") => counts.0 += 1,
                Some("response") => counts.1 += 1,
                other => panic!("unexpected kind {other:?}: {record}"),
            }
        }
    }
    assert_eq!(per_url.len(), sent, "distinct URLs");
    for (url, counts) in &per_url {
        assert_eq!(*counts, (1, 1), "{url}: (requests, responses)");
    }
}
