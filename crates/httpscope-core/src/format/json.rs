//! JSON lines: one object per record, the logfmt fields plus headers.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{lossless_text, rfc3339_millis};
use crate::event::TlsLib;
use crate::record::ExchangeRecord;

#[derive(Serialize)]
struct JsonRecord<'a> {
    ts: String,
    pid: u32,
    tid: u32,
    comm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    k8s_pod_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    dir: &'static str,
    src: &'a str,
    dst: &'a str,
    conn: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_lib: Option<&'static str>,
    kind: &'static str,
    proto: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authority: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    http_version: &'static str,
    headers: Headers<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trailers: Option<Headers<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    unknown_headers: u32,
    bytes: u64,
    body: std::borrow::Cow<'a, str>,
    body_bytes: u64,
    body_truncated: bool,
    body_captured: bool,
    raw: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    partial: bool,
    interim: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_messages: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Headers as an object; repeated names are joined with ", " (RFC 9110 5.3).
struct Headers<'a>(&'a crate::http::Headers);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut joined: Vec<(String, String)> = Vec::with_capacity(self.0.len());
        for (name, value) in self.0.iter() {
            let key = name.to_ascii_lowercase();
            match joined.iter_mut().find(|(k, _)| *k == key) {
                Some((_, existing)) => {
                    existing.push_str(", ");
                    existing.push_str(value);
                }
                None => joined.push((key, value.to_owned())),
            }
        }
        let mut map = serializer.serialize_map(Some(joined.len()))?;
        for (name, value) in &joined {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Appends one record as a JSON line, newline included.
pub fn write_line(record: &ExchangeRecord<'_>, out: &mut Vec<u8>) {
    let message = record.message;
    let grpc = message.grpc.as_deref();
    let cgroup = record.conn.cgroup.as_deref();
    let mut ts = String::with_capacity(24);
    rfc3339_millis(record.unix_ns, &mut ts);
    let json = JsonRecord {
        ts,
        pid: record.conn.tgid,
        tid: record.tid,
        comm: &record.conn.comm,
        cgroup: cgroup.map(|c| &*c.path),
        container_id: cgroup.and_then(|c| c.container_id.as_deref()),
        k8s_pod_uid: cgroup.and_then(|c| c.pod_uid.as_deref()),
        role: record.role.map(|r| r.as_str()),
        dir: record.direction().as_str(),
        src: record.src_text(),
        dst: record.dst_text(),
        conn: record.conn.conn_id,
        tls: record.conn.tls,
        tls_lib: record.conn.tls_lib.map(TlsLib::as_str),
        kind: message.kind.as_str(),
        proto: message.proto.as_str(),
        stream: message.stream.map(|id| id.get()),
        exchange: message.exchange,
        method: message.method.as_deref(),
        url: message.url.as_deref(),
        route: record.route,
        authority: message.authority(),
        status: message.status,
        http_version: message.proto.version(),
        headers: Headers(&message.headers),
        trailers: message.trailers().map(Headers),
        unknown_headers: message.unknown_headers(),
        bytes: message.wire_bytes,
        body: lossless_text(&message.body),
        body_bytes: message.body_len,
        body_truncated: message.body_truncated,
        body_captured: message.body_captured,
        raw: lossless_text(&message.raw),
        latency_ms: record.latency_ms(),
        partial: message.partial,
        interim: message.interim,
        reset_code: message.reset_code(),
        grpc_service: grpc.map(|g| &*g.service),
        grpc_method: grpc.map(|g| &*g.method),
        grpc_status: grpc.and_then(|g| g.status),
        grpc_message: grpc.and_then(|g| g.message.as_deref()),
        grpc_messages: grpc.map(|g| g.messages),
    };
    // Serializing this struct into memory cannot fail: no maps with non-string keys.
    let start = out.len();
    match serde_json::to_writer(&mut *out, &json) {
        Ok(()) => out.push(b'\n'),
        Err(_) => out.truncate(start),
    }
}
