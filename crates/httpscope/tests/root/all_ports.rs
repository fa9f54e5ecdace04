//! `--all-ports`: servers on ports nobody announced, HTTP/1 (demo-server), h2c
//! (nghttpd) and a raw TCP echo; the kernel keeps the first two and drops
//! the third.
//!
//! Root test. nghttpd and nghttp come from `scripts/setup.sh --test`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::h2::{ids, nghttp, page_urls, Nghttpd};
use crate::support::tools::{get, require_tool};
use crate::support::{demo_server, root_test, Profiler};

const REQUESTS: usize = 3;

/// A TCP echo server on a free port: not HTTP. Serves until the test ends.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// One connection exchanging `REQUESTS` lines with the echo server.
fn echo_traffic(port: u16) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in 0..REQUESTS {
        let line = format!("HELLO {i} this is not HTTP\n");
        stream.write_all(line.as_bytes()).unwrap();
        let mut back = vec![0u8; line.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, line.as_bytes());
    }
}

/// Records on connections to or from `port`.
fn on_port(records: &[Value], port: u16) -> Vec<&Value> {
    let suffix = format!(":{port}");
    records
        .iter()
        .filter(|r| {
            r["src"].as_str().is_some_and(|a| a.ends_with(&suffix))
                || r["dst"].as_str().is_some_and(|a| a.ends_with(&suffix))
        })
        .collect()
}

#[apply(root_test!)]
fn all_ports_keeps_http1_and_h2c_and_drops_the_rest() {
    const TEST: &str = "all_ports_keeps_http1_and_h2c_and_drops_the_rest";
    if !require_tool(TEST, "nghttpd") || !require_tool(TEST, "nghttp") {
        return;
    }
    let (_http1, http1_port) = demo_server(&[]);
    let h2c = Nghttpd::start(None);
    let echo_port = echo_server();

    let profiler = Profiler::start(&[], &["--all-ports"]);
    for _ in 0..REQUESTS {
        assert_eq!(get(http1_port, "/healthz"), 200);
    }
    let base = format!("http://127.0.0.1:{}", h2c.port);
    assert_eq!(
        nghttp(&page_urls(&base, &ids("all", REQUESTS)), None),
        REQUESTS
    );
    echo_traffic(echo_port);
    let (records, stderr) = profiler.stop();

    // HTTP/1: each GET seen by both ends, request and response.
    let http1 = on_port(&records, http1_port);
    assert_eq!(http1.len(), 4 * REQUESTS, "{stderr}\n{http1:#?}");
    assert!(http1.iter().all(|r| r["proto"] == "http/1.1"));
    let served = http1
        .iter()
        .filter(|r| r["role"] == "server" && r["kind"] == "response" && r["status"] == 200)
        .count();
    assert_eq!(served, REQUESTS);

    // h2c: each stream seen by nghttp and by nghttpd, request and response.
    let h2 = on_port(&records, h2c.port);
    assert_eq!(h2.len(), 4 * REQUESTS, "{stderr}\n{h2:#?}");
    assert!(h2.iter().all(|r| r["proto"] == "h2"), "{h2:#?}");
    for role in ["client", "server"] {
        let answered = h2
            .iter()
            .filter(|r| r["role"] == role && r["kind"] == "response" && r["status"] == 200)
            .count();
        assert_eq!(answered, REQUESTS, "{role}: {h2:#?}");
    }

    // The echo connection never left the kernel.
    assert!(on_port(&records, echo_port).is_empty(), "{records:#?}");
    let echo_local = format!("local=127.0.0.1:{echo_port}");
    let echo_remote = format!("remote=127.0.0.1:{echo_port}");
    assert!(
        !stderr.contains(&echo_local) && !stderr.contains(&echo_remote),
        "the echo connection reached userspace:\n{stderr}"
    );

    // --port narrows: only the HTTP/1 server's connections are candidates now.
    let port = http1_port.to_string();
    let profiler = Profiler::start(&[], &["--all-ports", "--port", &port]);
    assert_eq!(get(http1_port, "/healthz"), 200);
    assert_eq!(nghttp(&page_urls(&base, &ids("narrow", 1)), None), 1);
    let (records, stderr) = profiler.stop();
    assert_eq!(
        on_port(&records, http1_port).len(),
        4,
        "{stderr}\n{records:#?}"
    );
    assert!(on_port(&records, h2c.port).is_empty(), "{records:#?}");
}
