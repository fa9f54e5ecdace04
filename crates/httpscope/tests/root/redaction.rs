//! Secrets never reach the output unless asked for.

use std::process::Command;

use macro_rules_attribute::apply;

use crate::support::*;

fn capture_secret_request(extra: &[&str]) -> String {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], extra);
    let status = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-H",
            "Authorization: Bearer sekrit-bearer",
        ])
        .args([
            "-H",
            "Cookie: session=sekrit-cookie",
            "-H",
            "X-Api-Key: sekrit-key",
        ])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"message":"hi","password":"sekrit-pass"}"#,
        ])
        .arg(format!(
            "http://127.0.0.1:{port}/echo?token=sekrit-query&page=2"
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let (records, _) = profiler.stop();
    assert!(!records.is_empty());
    records
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[apply(root_test!)]
fn credentials_are_redacted_by_default() {
    let text = capture_secret_request(&[]);
    for secret in ["sekrit-bearer", "sekrit-cookie", "sekrit-key"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("[REDACTED]"));
    // Not asked for: query parameters and JSON keys stay.
    assert!(text.contains("sekrit-query") && text.contains("sekrit-pass"));
}

#[apply(root_test!)]
fn user_patterns_and_no_body() {
    let text = capture_secret_request(&["--redact", "token", "--redact", "pass*"]);
    for secret in [
        "sekrit-bearer",
        "sekrit-cookie",
        "sekrit-key",
        "sekrit-query",
        "sekrit-pass",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("page=2"), "other parameters stay: {text}");

    let text = capture_secret_request(&["--no-body"]);
    assert!(
        !text.contains("sekrit-pass") && !text.contains("\\\"message\\\""),
        "{text}"
    );

    let text = capture_secret_request(&["--no-redact"]);
    assert!(
        text.contains("sekrit-bearer"),
        "--no-redact keeps everything: {text}"
    );
}
