//! Checks of h2 and gRPC records against what each client sent, and of the RPC metrics.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use super::programs::{sorted, GrpcCall, BIG_PAGE, GRPC_SERVICE, PAGE_SIZES};
use crate::support::matrix::{assert_ids, header, note, url_id, Side};

/// The ids (`id=` of the URL) of a list of records, sorted.
pub fn url_ids(records: &[&Value]) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .filter_map(|r| r["url"].as_str().and_then(url_id).map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// --body-limit of the profilers the tests start (the default).
const BODY_LIMIT: u64 = 1024;

/// A body not wholly captured although it fits --body-limit: bytes were lost. (A longer one
/// is cut on purpose: the kernel's capture budget copies its first --body-limit bytes.)
fn body_lost(r: &Value) -> bool {
    r["body_captured"] == false && r["body_bytes"].as_u64().is_some_and(|n| n <= BODY_LIMIT)
}

/// Asserts that one side (`role`, `comm`) logged exactly the h2 exchanges `want` (ids in the
/// URLs): one request and one paired final response each, every record `proto=h2` on an odd
/// (client-opened) stream, none partial, no header left unknown. Returns the paired count.
pub fn assert_h2_side(records: &[Value], role: &str, comm: &str, want: &[String]) -> usize {
    let (paired, flagged) = check_h2_side(records, role, comm, want);
    assert_eq!(paired, want.len(), "{comm} {role}: paired");
    assert_eq!(
        flagged, 0,
        "{comm} {role}: records flagged partial or unknown"
    );
    paired
}

/// Like [`assert_h2_side`] where capture loses bytes (a syscall over `--capture-bytes`): every
/// request is there, and every response logged is paired with its own request, but responses
/// may be missing or flagged (`partial`, `body_captured=false`, `unknown_headers`). Returns
/// (paired, flagged) for the report.
pub fn check_h2_side(records: &[Value], role: &str, comm: &str, want: &[String]) -> (usize, usize) {
    let side = Side::of(records, role, comm);
    let want = sorted(want);
    let mut flagged = 0;
    for r in side.requests.iter().chain(&side.responses) {
        assert_eq!(r["proto"], "h2", "{comm} {role}: {r}");
        assert!(
            r["stream"].as_u64().is_some_and(|s| s % 2 == 1),
            "{comm} {role}: no client stream id: {r}"
        );
        let unknown = r["unknown_headers"].as_u64().unwrap_or(0) > 0;
        flagged += usize::from(r["partial"] == true || body_lost(r) || unknown);
    }
    assert_ids(
        &url_ids(&side.requests),
        &want,
        &format!("{comm} {role} requests"),
    );
    let paired = side.paired_url_ids();
    let mut unique = paired.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        paired.len(),
        "{comm} {role}: an id paired twice"
    );
    assert!(
        paired.iter().all(|id| want.binary_search(id).is_ok()),
        "{comm} {role}: a response paired with an id never sent: {paired:?}"
    );
    (paired.len(), flagged)
}

/// Asserts that every paired response of `comm` (in `role`) to a page GET carries that page's
/// body length, and every echoed upload the length of its request's body (where captured).
pub fn assert_page_bodies(records: &[Value], role: &str, comm: &str) {
    let side = Side::of(records, role, comm);
    let requests: BTreeMap<(u64, u64), &Value> = side
        .requests
        .iter()
        .filter_map(|r| Some(((r["conn"].as_u64()?, r["exchange"].as_u64()?), *r)))
        .collect();
    for resp in side
        .paired()
        .into_iter()
        .filter(|r| r["partial"] != true && !body_lost(r))
    {
        let key = (
            resp["conn"].as_u64().unwrap(),
            resp["exchange"].as_u64().unwrap(),
        );
        let want = if resp["method"] == "POST" {
            match requests.get(&key) {
                Some(req) => req["body_bytes"].as_u64().unwrap(),
                None => continue,
            }
        } else if resp["url"].as_str().unwrap().starts_with("/big.txt") {
            BIG_PAGE as u64
        } else {
            let path = resp["url"].as_str().unwrap().split('?').next().unwrap();
            let k = PAGE_SIZES
                .iter()
                .enumerate()
                .find(|(k, _)| path == format!("/p{k}.txt"))
                .unwrap_or_else(|| panic!("{comm} {role}: unknown page {path}: {resp}"))
                .0;
            PAGE_SIZES[k] as u64
        };
        assert_eq!(
            resp["body_bytes"].as_u64(),
            Some(want),
            "{comm} {role}: response body of another request? {resp}"
        );
    }
}

/// Checks one pair's capture on both sides against the ids the client completed, and notes
/// the counts for the report. `case` names the pair.
pub fn check_pair(records: &[Value], case: &str, client: &str, server: &str, sent: &[String]) {
    for (role, comm) in [("client", client), ("server", server)] {
        let paired = assert_h2_side(records, role, comm, sent);
        note(&format!("{case}: {comm} {role} side"), sent.len(), paired);
    }
}

/// Asserts that one side (`role`, `comm`) logged each gRPC call of `calls` exactly once, with
/// the service, method, status and message counts the client saw. Returns the paired count.
pub fn assert_grpc_side(records: &[Value], role: &str, comm: &str, calls: &[GrpcCall]) -> usize {
    let side = Side::of(records, role, comm);
    let by_id: BTreeMap<&str, &Value> = side
        .requests
        .iter()
        .filter_map(|r| Some((header(r, "x-request-id")?, *r)))
        .collect();
    assert_eq!(
        side.requests.len(),
        calls.len(),
        "{comm} {role}: requests logged vs calls made"
    );
    let responses: BTreeMap<(u64, u64), &Value> = side
        .paired()
        .into_iter()
        .map(|r| {
            (
                (r["conn"].as_u64().unwrap(), r["exchange"].as_u64().unwrap()),
                r,
            )
        })
        .collect();
    let mut paired = 0;
    for call in calls {
        let req = by_id
            .get(call.id.as_str())
            .unwrap_or_else(|| panic!("{comm} {role}: no request for {call:?}"));
        let path = format!("/{GRPC_SERVICE}/{}", call.method);
        assert_eq!(req["proto"], "h2", "{req}");
        assert_eq!(req["method"], "POST", "{req}");
        assert_eq!(req["url"], path.as_str(), "{req}");
        assert_eq!(req["grpc_service"], GRPC_SERVICE, "{req}");
        assert_eq!(req["grpc_method"], call.method.as_str(), "{req}");
        assert_eq!(req["grpc_messages"], call.sent, "{call:?}: {req}");
        let key = (
            req["conn"].as_u64().unwrap(),
            req["exchange"].as_u64().unwrap(),
        );
        let resp = responses
            .get(&key)
            .unwrap_or_else(|| panic!("{comm} {role}: no response for {call:?}: {req}"));
        assert_eq!(resp["url"], path.as_str(), "{resp}");
        assert_eq!(resp["stream"], req["stream"], "{resp}");
        assert_eq!(resp["status"], 200, "{resp}");
        assert_eq!(resp["grpc_status"], call.status, "{call:?}: {resp}");
        assert_eq!(resp["grpc_messages"], call.received, "{call:?}: {resp}");
        assert_eq!(resp["partial"], false, "{resp}");
        if call.status != 0 {
            assert!(resp["grpc_message"].is_string(), "{call:?}: {resp}");
        }
        paired += 1;
    }
    paired
}

/// `GET /metrics` from httpscope's `--metrics-addr`, as text.
pub fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The `_count` samples of an RPC duration histogram (`rpc_server_call_duration_seconds`),
/// summed per `rpc_grpc_status_code`, for `rpc_service`/`rpc_method` of [`GRPC_SERVICE`].
pub fn rpc_counts(metrics: &str, histogram: &str) -> BTreeMap<String, u64> {
    let prefix = format!("{histogram}_count{{");
    let service = format!("rpc_service=\"{GRPC_SERVICE}\"");
    let mut counts = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        assert!(labels.contains("rpc_system=\"grpc\""), "{line}");
        if !labels.contains(&service) {
            continue;
        }
        let status = labels
            .split("rpc_grpc_status_code=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no status code in {line}"));
        *counts.entry(status.to_owned()).or_default() += value.parse::<u64>().unwrap();
    }
    counts
}
