//! Small helpers shared by the tests that drive real tools: finding a tool, one raw
//! exchange, one GET.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether `tool` is on PATH; under CI=true a missing tool is a failure.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    super::skip_unless_ci(
        test,
        &format!("{tool} is missing (scripts/setup.sh --test installs it)"),
    );
    false
}

/// Sends `request` as is on a new connection; returns all the server answers until it closes.
pub fn exchange_raw(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// GET `path` on its own connection; returns the whole answer, head and body.
pub fn fetch(port: u16, path: &str) -> String {
    exchange_raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
}

/// One request on its own connection; returns the status code.
pub fn get(port: u16, path: &str) -> u16 {
    let response = exchange_raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    );
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {response:?}"))
}
