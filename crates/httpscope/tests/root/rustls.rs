//! HTTPS plaintext from rustls (uprobes on its Reader/Writer and on the record functions
//! read_tls/write_tls call, `bpf/rustls.bpf.h`): reqwest (aws-lc-rs) and ureq (ring) clients
//! against axum/tokio-rustls servers on both crypto providers, built from crates.io
//! (`tests/programs/rustls`). Every exchange is counted on both sides, exactly; a stripped
//! and a fat-LTO build are reported as not hookable and their connections counted.

use std::path::Path;
use std::process::Command;

use macro_rules_attribute::apply;

use crate::support::matrix::*;
use crate::support::rustls::*;
use crate::support::tls::*;
use crate::support::*;

const N: usize = 10;

/// Every client against `server_name` (already running when capture starts): reqwest over
/// HTTP/1.1 and h2, ureq over HTTP/1.1; each side exact.
fn every_client_against(server_name: &str) {
    let programs = rustls_programs();
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = rustls_server(&programs.bin(server_name), &certs.path);
    let mut profiler = Profiler::start(&[port], &[]);
    let cases = [
        ("rsclient", "h1", "qh1"),
        ("rsclient", "h2", "qh2"),
        ("rsureq", "h1", "uh1"),
    ];
    for (client, proto, prefix) in cases {
        let binary = programs.bin(client);
        let run = RustlsClient {
            binary: &binary,
            certs: &certs.path,
            port,
        };
        // Each binary's first run is hooked at its exec.
        let counts = if proto == "h2" {
            run.run(N, prefix, proto)
        } else {
            run.run_hooked(&mut profiler, N, prefix, proto)
        };
        assert_eq!(counts["ok"], N, "{client} {proto}: {counts}");
    }
    let (records, stderr) = profiler.stop();
    check_tls_records(&records, &stderr);
    for (client, proto, prefix) in cases {
        for (role, comm) in [("client", client), ("server", server_name)] {
            let captured = check_tls_side(&records, role, comm, prefix, "rustls", N);
            note(
                &format!("rustls {client} {proto} -> {server_name}: {role}"),
                N,
                captured,
            );
        }
    }
    let h2 = records.iter().filter(|r| r["proto"] == "h2").count();
    // One h2 run, seen from both sides: a request and a response record per exchange each.
    assert_eq!(h2, 4 * N, "{records:#?}");
}

#[apply(root_test!)]
fn clients_against_the_aws_lc_rs_server() {
    every_client_against("rsserver");
}

#[apply(root_test!)]
fn clients_against_the_ring_server() {
    every_client_against("rsserver-ring");
}

/// Every probe on the test programs sits on an instruction the kernel emulates: one it
/// single-steps costs a second trap per hit, which took a third of the server's throughput.
#[apply(root_test!)]
fn no_probe_on_the_test_programs_is_single_stepped() {
    let programs = rustls_programs();
    for name in ["rsserver", "rsserver-ring", "rsclient", "rsureq"] {
        let binary = httpscope_capture::tls::rustls::inspect(&programs.bin(name)).unwrap();
        let probes = binary.probes.unwrap();
        let stepped: Vec<_> = probes.iter().filter(|p| p.single_stepped).collect();
        assert!(stepped.is_empty(), "{name}: {stepped:?}");
    }
}

/// A client whose binary was never run before capture started: hooked at its exec.
#[apply(root_test!)]
fn rustls_client_started_after_capture() {
    let programs = rustls_programs();
    let certs = TempDir::new();
    make_certs(&certs.path);
    let late = copy_as(&programs.bin("rsclient"), &certs.path, "late-rsclient");
    let (_server, port) = rustls_server(&programs.bin("rsserver"), &certs.path);
    let mut profiler = Profiler::start(&[port], &[]);
    let client = RustlsClient {
        binary: &late,
        certs: &certs.path,
        port,
    };
    let counts = client.run_hooked(&mut profiler, N, "late", "h2");
    let (records, stderr) = profiler.stop();
    assert_eq!(counts["ok"], N, "{counts}");
    check_tls_records(&records, &stderr);
    eprintln!("{}", hooked_late(&stderr, "late-rsclient"));
    for (role, comm) in [("client", "late-rsclient"), ("server", "rsserver")] {
        let captured = check_tls_side(&records, role, comm, "late", "rustls", N);
        note(
            &format!("rustls client started after capture: {role}"),
            N,
            captured,
        );
    }
}

/// An h2 connection open before capture starts: the exchanges after are captured on both
/// sides (their headers as far as HPACK allows: entries from before are flagged), the
/// ones before are not, and nothing is guessed.
#[apply(root_test!)]
fn late_attach_to_an_open_rustls_h2_connection() {
    let programs = rustls_programs();
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = rustls_server(&programs.bin("rsserver"), &certs.path);
    let (before, total) = (4, 4 + 2 * N);
    let mut profiler = None;
    let binary = programs.bin("rsclient");
    let client = RustlsClient {
        binary: &binary,
        certs: &certs.path,
        port,
    };
    let counts = client.run_held((before, total), "open", "h2", || {
        profiler = Some(Profiler::start(&[port], &[]))
    });
    let (records, stderr) = profiler.unwrap().stop();
    assert_eq!(counts["ok"], total, "{counts}");
    let mut want: Vec<String> = (before..total).map(|i| format!("open{i}")).collect();
    want.sort();
    for (role, comm) in [("client", "rsclient"), ("server", "rsserver")] {
        let side = Side::of(&records, role, comm);
        for r in side.requests.iter().chain(&side.responses) {
            assert_eq!(r["proto"], "h2", "{r}");
            assert_eq!(r["tls_lib"], "rustls", "{r}");
            let id = r["url"].as_str().and_then(url_id);
            if let (Some(id), Some(echo)) = (id, header(r, "x-request-id")) {
                assert_eq!(id, echo, "{r}");
            }
        }
        let ids = side.paired_url_ids();
        assert_ids(&ids, &want, &format!("{role} paired ({stderr})"));
        note(
            &format!("rustls late attach, open h2 connection: {role}"),
            want.len(),
            ids.len(),
        );
    }
    assert_pairing_exact(&records);
}

/// A stripped and an LTO build of the server: doctor and the log say why they are not
/// hooked, their connections are counted as TLS, and the hooked client is still exact.
#[apply(root_test!)]
fn stripped_and_lto_servers_are_counted() {
    let programs = rustls_programs();
    let certs = TempDir::new();
    make_certs(&certs.path);
    let stripped = copy_as(&programs.stripped_server, &certs.path, "rsserver-strip");
    let lto = copy_as(&programs.lto_server, &certs.path, "rsserver-lto");
    let (_stripped, stripped_port) = rustls_server(&stripped, &certs.path);
    let (_lto, lto_port) = rustls_server(&lto, &certs.path);

    let doctor = Command::new(bin("httpscope"))
        .arg("doctor")
        .output()
        .unwrap();
    let doctor = String::from_utf8_lossy(&doctor.stdout).into_owned();
    let says =
        |path: &Path, why: &str| format!("{} (rustls found, not hookable: {why})", path.display());
    assert!(doctor.contains(&says(&stripped, "stripped")), "{doctor}");
    assert!(doctor.contains(&says(&lto, "inlined")), "{doctor}");

    let mut profiler = Profiler::start(&[stripped_port, lto_port], &[]);
    let binary = programs.bin("rsclient");
    for (port, prefix) in [(stripped_port, "st"), (lto_port, "lt")] {
        let client = RustlsClient {
            binary: &binary,
            certs: &certs.path,
            port,
        };
        let counts = if prefix == "st" {
            client.run_hooked(&mut profiler, N, prefix, "h1")
        } else {
            client.run(N, prefix, "h1")
        };
        assert_eq!(counts["ok"], N, "{counts}");
    }
    let (records, stderr) = profiler.stop();
    let log = strip_ansi(&stderr);
    for (path, why) in [(&stripped, "stripped"), (&lto, "inlined")] {
        assert!(log.contains(&says(path, why)), "{log}");
    }
    for prefix in ["st", "lt"] {
        let captured = check_tls_side(&records, "client", "rsclient", prefix, "rustls", N);
        note(
            &format!("rustls client -> unhookable server ({prefix})"),
            N,
            captured,
        );
    }
    let servers = records
        .iter()
        .filter(|r| r["comm"] == "rsserver-strip" || r["comm"] == "rsserver-lto")
        .count();
    assert_eq!(servers, 0, "{records:#?}");
    // Each server connection stayed ciphertext: logged once as TLS and counted, never
    // decoded (reqwest may open more than one connection per run).
    let server_conns = |comm: &str| {
        log.lines()
            .filter(|l| l.contains("is not HTTP (TLS") && l.contains(&format!("comm={comm} ")))
            .count()
    };
    let (strip_conns, lto_conns) = (server_conns("rsserver-strip"), server_conns("rsserver-lto"));
    assert!(strip_conns >= 1 && lto_conns >= 1, "{log}");
    let counted = summary(&stderr, "tls_conns") as usize;
    assert!(counted >= strip_conns + lto_conns, "{log}");
    note(
        "rustls stripped + LTO server connections counted",
        strip_conns + lto_conns,
        counted,
    );
}
