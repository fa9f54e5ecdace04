//! [`Observation`]: one HTTP message, owned, as the endpoint table takes it in,
//! built from a live [`ExchangeRecord`] or from a line of `--format json` output.

use serde_json::Value;

use crate::http::MessageKind;
use crate::record::ExchangeRecord;

/// One request or response, with just what the endpoint table keeps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    pub unix_ns: i64,
    pub is_response: bool,
    pub interim: bool,
    pub role: String,
    pub comm: String,
    /// The container's full id; empty outside containers (or unknown).
    pub container: String,
    pub pid: u32,
    pub conn: u64,
    pub exchange: Option<u64>,
    /// The server's port: the request's destination, the response's source.
    pub port: u16,
    /// `http/1.0`, `http/1.1` or `h2`.
    pub proto: String,
    pub method: String,
    pub url: String,
    /// The url's route; empty when unknown (JSON lines written without one).
    pub route: String,
    pub status: Option<u16>,
    /// A gRPC call (`content-type: application/grpc*`).
    pub grpc: bool,
    /// Responses of gRPC calls: `grpc-status`, None when the call ended without one.
    pub grpc_status: Option<u32>,
    pub latency_ns: Option<u64>,
    pub wire_bytes: u64,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub body_truncated: bool,
    pub partial: bool,
}

impl Observation {
    /// Path without the query string: what endpoints group by.
    pub fn path(&self) -> &str {
        self.url.split(['?', '#']).next().unwrap_or(&self.url)
    }

    pub fn from_record(record: &ExchangeRecord<'_>) -> Self {
        let message = record.message;
        let is_response = message.kind == MessageKind::Response;
        let port = if is_response {
            record.src().port()
        } else {
            record.dst().port()
        };
        Self {
            unix_ns: record.unix_ns,
            is_response,
            interim: message.interim,
            role: record.role.map_or("-", |r| r.as_str()).to_owned(),
            comm: record.conn.comm.clone(),
            container: record
                .conn
                .cgroup
                .as_ref()
                .and_then(|c| c.container_id.as_deref())
                .unwrap_or_default()
                .to_owned(),
            pid: record.conn.tgid,
            conn: record.conn.conn_id,
            exchange: message.exchange,
            port,
            proto: message.proto.as_str().to_owned(),
            method: message.method.as_deref().unwrap_or_default().to_owned(),
            url: message.url.as_deref().unwrap_or_default().to_owned(),
            route: record.route.unwrap_or_default().to_owned(),
            status: message.status,
            grpc: message.grpc.is_some(),
            grpc_status: message.grpc.as_deref().and_then(|g| g.status),
            latency_ns: message.latency_ns,
            wire_bytes: message.wire_bytes,
            headers: message
                .headers
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            body: String::from_utf8_lossy(&message.body).into_owned(),
            body_truncated: message.body_truncated,
            partial: message.partial,
        }
    }

    /// From one object of httpscope's JSON lines output; None if it is not one.
    pub fn from_json(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
        let number = |key: &str| value.get(key).and_then(Value::as_u64);
        let kind = text("kind");
        if kind != "request" && kind != "response" {
            return None;
        }
        let is_response = kind == "response";
        let port_of = |addr: &str| {
            addr.rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        };
        let port = port_of(if is_response {
            text("src")
        } else {
            text("dst")
        });
        let headers = match value.get("headers") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            _ => Vec::new(),
        };
        let latency_ns = value
            .get("latency_ms")
            .and_then(Value::as_f64)
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| (ms * 1e6).round() as u64);
        Some(Self {
            unix_ns: parse_rfc3339_ns(text("ts")).unwrap_or(0),
            is_response,
            interim: value
                .get("interim")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            role: value
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_owned(),
            comm: text("comm").to_owned(),
            container: text("container_id").to_owned(),
            pid: number("pid")
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
            conn: number("conn").unwrap_or(0),
            exchange: number("exchange"),
            port,
            // Files written before `proto` existed hold HTTP/1 only.
            proto: match (text("proto"), text("http_version")) {
                ("", "1.0") => "http/1.0".to_owned(),
                ("", _) => "http/1.1".to_owned(),
                (proto, _) => proto.to_owned(),
            },
            method: text("method").to_owned(),
            url: text("url").to_owned(),
            route: text("route").to_owned(),
            status: number("status").and_then(|s| u16::try_from(s).ok()),
            grpc: value.get("grpc_service").is_some(),
            grpc_status: number("grpc_status").and_then(|s| u32::try_from(s).ok()),
            latency_ns,
            wire_bytes: number("bytes").unwrap_or(0),
            headers,
            body: text("body").to_owned(),
            body_truncated: value
                .get("body_truncated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            partial: value
                .get("partial")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` to Unix ns (UTC only, as httpscope writes it).
pub fn parse_rfc3339_ns(ts: &str) -> Option<i64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || frac.len() > 9 {
        return None;
    }
    let frac_ns = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32)
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}
