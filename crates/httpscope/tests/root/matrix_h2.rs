//! HTTP/2 and gRPC against real software: nghttpd (h2c and TLS) with curl
//! (`--http2-prior-knowledge`; `--http2` over TLS with ALPN, sequential and `--parallel`) and
//! nghttp as clients; Node.js `http2` client and server (h2c, and TLS with both Node builds);
//! grpcio client and server (unary, server streaming, bidi, non-zero grpc-status). Every
//! exchange each client completed is logged once on each side, paired by stream, and nothing
//! else is.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::h2::*;
use crate::support::matrix::*;
use crate::support::*;

/// Both sides of nghttpd and its clients: what each client completed, what was captured.
fn check_nghttpd(records: &[Value], case: &str, clients: &[(&str, &[String])]) {
    let mut all = Vec::new();
    for (comm, sent) in clients {
        let paired = assert_h2_side(records, "client", comm, sent);
        note(&format!("{case}: {comm} side"), sent.len(), paired);
        assert_page_bodies(records, "client", comm);
        all.extend_from_slice(sent);
    }
    let paired = assert_h2_side(records, "server", "nghttpd", &all);
    note(&format!("{case}: nghttpd side"), all.len(), paired);
    assert_page_bodies(records, "server", "nghttpd");
    assert_pairing_exact(records);
    assert_eq!(
        records.len(),
        4 * all.len(),
        "only these exchanges, both sides"
    );
}

/// curl and nghttp against nghttpd: sequential and multiplexed GETs, uploads echoed back.
///
/// curl 7.88 (Debian 12) fails every request after the first on a reused h2c connection
/// ("Error in the HTTP2 framing layer", with nghttpd and Node alike), so over h2c each curl
/// transfer has its own connection; over TLS they share one, sequential and `--parallel`.
fn curl_and_nghttp_against_nghttpd(certs: Option<&Certs>, case: &str) {
    let server = Nghttpd::start(certs);
    let base = match certs {
        Some(_) => format!("https://localhost:{}", server.port),
        None => format!("http://127.0.0.1:{}", server.port),
    };
    let ca = certs.map(Certs::ca);
    let ca = ca.as_deref();
    let upload = TempDir::new();
    let upload_file = upload.path.join("upload.bin");
    std::fs::write(&upload_file, vec![b'u'; 3000]).unwrap();
    let profiler = Profiler::start(&[server.port], &[]);

    let (gets, multiplexed, posts) = (ids("cs", 24), ids("cp", 8), ids("cu", 6));
    let completed = if certs.is_some() {
        curl_h2(&["--http2"], &page_urls(&base, &gets), ca)
            + curl_h2(
                &["--http2", "--parallel"],
                &page_urls(&base, &multiplexed),
                ca,
            )
            + curl_h2_posts(&["--http2"], &page_urls(&base, &posts), "curl upload", ca)
    } else {
        let mode = ["--http2-prior-knowledge"];
        let posts_done: usize = page_urls(&base, &posts)
            .into_iter()
            .map(|url| curl_h2_posts(&mode, &[url], "curl upload", None))
            .sum();
        curl_h2c_each(&page_urls(&base, &[gets.as_slice(), &multiplexed].concat())) + posts_done
    };
    let curl_sent = [gets, multiplexed, posts].concat();
    assert_eq!(completed, curl_sent.len(), "curl completed");

    let (gets, uploads) = (ids("ng", 24), ids("nu", 4));
    let batches = page_urls(&base, &gets);
    let done: usize = batches.chunks(8).map(|urls| nghttp(urls, None)).sum();
    assert_eq!(done, gets.len());
    assert_eq!(
        nghttp(&page_urls(&base, &uploads), Some(&upload_file)),
        uploads.len()
    );
    let nghttp_sent = [gets, uploads].concat();

    let (records, _) = stop(profiler);
    if certs.is_some() {
        assert!(records.iter().all(|r| r["tls"] == true), "tls=true");
    }
    check_nghttpd(
        &records,
        case,
        &[("curl", &curl_sent), ("nghttp", &nghttp_sent)],
    );
}

#[apply(root_test!)]
fn nghttpd_h2c_with_curl_and_nghttp() {
    curl_and_nghttp_against_nghttpd(None, "nghttpd h2c");
}

#[apply(root_test!)]
fn nghttpd_tls_with_curl_and_nghttp() {
    let certs = Certs::new();
    curl_and_nghttp_against_nghttpd(Some(&certs), "nghttpd TLS (ALPN h2)");
}

/// POSTs (every third request of the Node client) carry their body both ways.
fn assert_node_posts(records: &[Value]) {
    for r in records.iter().filter(|r| r["method"] == "POST") {
        let id = url_id(r["url"].as_str().unwrap()).unwrap();
        assert_eq!(r["body"], format!("posted {id}"), "{r}");
    }
}

/// nghttpd answers 12 concurrent streams of 20 KB with one write per burst, far over the
/// 16 KiB a syscall is copied up to. Returns the records, the profiler's stderr and the ids.
fn nghttpd_burst(profiler_extra: &[&str]) -> (Vec<Value>, String, Vec<String>) {
    let server = Nghttpd::start(None);
    let profiler = Profiler::start(&[server.port], profiler_extra);
    let sent = ids("big", 12);
    let urls: Vec<String> = sent
        .iter()
        .map(|id| format!("http://127.0.0.1:{}/big.txt?id={id}", server.port))
        .collect();
    assert_eq!(nghttp(&urls, None), sent.len());
    let (records, stderr) = stop(profiler);
    (records, stderr, sent)
}

/// Bursts over `--capture-bytes` within the capture budget: every frame header is walked,
/// HEADERS copied whole, DATA past --body-limit per frame counted, not copied: both sides
/// exact, nothing truncated.
#[apply(root_test!)]
fn nghttpd_bursts_over_the_capture_limit_are_exact() {
    let (records, stderr, sent) = nghttpd_burst(&[]);
    for counter in ["truncated_syscalls", "gap_bytes", "budget_fallbacks"] {
        assert_eq!(summary(&stderr, counter), 0, "{counter}: {stderr}");
    }
    assert!(summary(&stderr, "elided_bytes") > 0, "{stderr}");
    for (role, comm) in [("client", "nghttp"), ("server", "nghttpd")] {
        let paired = assert_h2_side(&records, role, comm, &sent);
        assert_page_bodies(&records, role, comm);
        for r in Side::of(&records, role, comm).responses {
            assert_eq!(
                r["body"].as_str().unwrap().len(),
                1024,
                "cut at --body-limit: {r}"
            );
        }
        note(
            &format!("nghttpd 12 x 20 KB burst (capture budget): {comm} side"),
            sent.len(),
            paired,
        );
    }
    assert_pairing_exact(&records);
}

/// The same bursts without the budget (--no-capture-budget): the frames in the uncopied
/// tail (DATA, and HEADERS of other streams) are lost on nghttpd's side. Every request is
/// still logged on both sides; nghttpd's responses are paired with their own request or
/// flagged, never mispaired; nghttp reads in smaller pieces and is exact.
#[apply(root_test!)]
fn nghttpd_bursts_without_the_budget_are_flagged_never_mispaired() {
    let (records, stderr, sent) = nghttpd_burst(&["--no-capture-budget"]);
    assert!(
        summary(&stderr, "truncated_syscalls") > 0,
        "no burst over the limit?"
    );
    let paired = assert_h2_side(&records, "client", "nghttp", &sent);
    note("nghttpd 12 x 20 KB burst: nghttp side", sent.len(), paired);
    assert_page_bodies(&records, "client", "nghttp");
    let (paired, flagged) = check_h2_side(&records, "server", "nghttpd", &sent);
    note(
        &format!("nghttpd 12 x 20 KB burst: nghttpd side ({flagged} records flagged)"),
        sent.len(),
        paired,
    );
    assert_page_bodies(&records, "server", "nghttpd");
    assert_pairing_exact(&records);
}

#[apply(root_test!)]
fn node_http2_h2c_client_and_server() {
    let (_server, port) = node_h2_server(Path::new("node"), None);
    let profiler = Profiler::start(&[port], &[]);
    let n = 60;
    assert_eq!(node_h2_client(Path::new("node"), port, n, "nd", None), n);
    let (records, _) = stop(profiler);
    check_pair(&records, "node http2 h2c", "node", "node", &ids("nd", n));
    // The server echoes X-Request-Id: every pairing is verified by id, on both sides.
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    assert_eq!(records.len(), 4 * n, "only these exchanges, both sides");
    assert_node_posts(&records);
}

/// Node.js over TLS (`createSecureServer`), with its own client and with curl (ALPN h2), run
/// by `node` (`label` in the notes). Node drives OpenSSL through memory BIOs; its SSL objects
/// get their connection from the TLSWrap probes (`tls_lib=node`): every side exact.
fn node_http2_tls_client_and_server(node: &Path, label: &str) {
    let certs = Certs::new();
    let (_server, port) = node_h2_server(node, Some(&certs));
    let profiler = Profiler::start(&[port], &[]);
    let n = 30;
    assert_eq!(node_h2_client(node, port, n, "nd", Some(&certs)), n);
    let base = format!("https://localhost:{port}");
    let (sequential, multiplexed) = (ids("cs", 10), ids("cp", 10));
    let ca = certs.ca();
    assert_eq!(
        curl_h2(&["--http2"], &page_urls(&base, &sequential), Some(&ca)),
        10
    );
    let parallel = ["--http2", "--parallel"];
    assert_eq!(
        curl_h2(&parallel, &page_urls(&base, &multiplexed), Some(&ca)),
        10
    );
    let (records, _) = stop(profiler);
    let curl_sent = [sequential, multiplexed].concat();
    let paired = assert_h2_side(&records, "client", "curl", &curl_sent);
    note(
        &format!("{label} http2 TLS server: curl side"),
        curl_sent.len(),
        paired,
    );
    let node_client = ids("nd", n);
    let all = [node_client.clone(), curl_sent].concat();
    for (role, sent) in [("client", &node_client), ("server", &all)] {
        let paired = assert_h2_side(&records, role, "node", sent);
        note(
            &format!("{label} http2 TLS: node {role} side"),
            sent.len(),
            paired,
        );
    }
    for r in records.iter().filter(|r| r["comm"] == "node") {
        assert_eq!(r["tls_lib"], "node", "{r}");
    }
    assert!(records.iter().all(|r| r["tls"] == true), "tls=true");
    assert_pairing_exact(&records);
    assert_node_posts(&records);
}

/// The node on PATH (NodeSource's here: OpenSSL built in).
#[apply(root_test!)]
fn node_http2_tls_client_and_server_built_in_openssl() {
    node_http2_tls_client_and_server(Path::new("node"), "node");
}

/// Debian's nodejs: libnode with the system's shared libssl.
#[apply(root_test!)]
fn node_http2_tls_client_and_server_debian_libnode() {
    let test = "node_http2_tls_client_and_server_debian_libnode";
    if let Some(node) = crate::support::tls::debian_node(test) {
        node_http2_tls_client_and_server(&node, "Debian node");
    }
}

#[apply(root_test!)]
fn grpc_python_unary_streaming_and_errors() {
    let (_server, port) = grpc_server();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let profiler = Profiler::start(&[port], &["--metrics-addr", &metrics_addr]);
    let calls = grpc_client(port, "g", 20, 6);
    let failed = calls.iter().filter(|c| c.status != 0).count();
    assert!(failed >= 4, "some calls fail on purpose: {calls:?}");
    // The RPC histograms count every call by its status, on both sides.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for call in &calls {
        *want.entry(call.status.to_string()).or_default() += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = scrape(&metrics_addr);
        let done = [
            "rpc_server_call_duration_seconds",
            "rpc_client_call_duration_seconds",
        ]
        .iter()
        .all(|h| rpc_counts(&metrics, h) == want);
        if done || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for histogram in [
        "rpc_server_call_duration_seconds",
        "rpc_client_call_duration_seconds",
    ] {
        assert_eq!(
            rpc_counts(&metrics, histogram),
            want,
            "{histogram}\n{metrics}"
        );
    }
    let (records, _) = stop(profiler);
    for role in ["client", "server"] {
        let paired = assert_grpc_side(&records, role, "python3", &calls);
        note(
            &format!("grpcio unary+server-streaming+bidi ({failed} failing): {role} side"),
            calls.len(),
            paired,
        );
    }
    assert_pairing_exact(&records);
    assert_eq!(records.len(), 4 * calls.len(), "only these calls");
}
