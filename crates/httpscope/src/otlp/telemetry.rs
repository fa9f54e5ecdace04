//! What one exchange becomes in OpenTelemetry: an HTTP span and `http.*.request.duration`
//! sample, or for a gRPC call an RPC span (`{service}/{method}`, `rpc.*` attributes) and
//! `rpc.*.call.duration` sample.

use std::time::SystemTime;

use httpscope_core::http::Role;
use opentelemetry::KeyValue;

/// One finished exchange, owned, as the exporter thread needs it.
pub(super) struct Exchange {
    pub(super) role: Role,
    pub(super) start: SystemTime,
    pub(super) end: SystemTime,
    pub(super) method: String,
    pub(super) method_original: Option<String>,
    pub(super) path: String,
    pub(super) route: String,
    /// HTTP status; None only for a gRPC call reset before its response head.
    pub(super) status: Option<u16>,
    pub(super) rpc: Option<Rpc>,
    pub(super) scheme: &'static str,
    pub(super) version: &'static str,
    pub(super) server_ip: String,
    pub(super) server_port: u16,
    pub(super) client_ip: String,
    pub(super) client_port: u16,
    pub(super) peer_ip: String,
    pub(super) peer_port: u16,
    pub(super) pid: u32,
    pub(super) tid: u32,
    pub(super) comm: String,
    pub(super) container_id: Option<Box<str>>,
    pub(super) pod_uid: Option<Box<str>>,
}

/// A gRPC call's RPC identity and outcome.
pub(super) struct Rpc {
    pub(super) service: String,
    pub(super) method: String,
    /// `grpc-status`; None when the call ended without one (reset, loss).
    pub(super) status: Option<u32>,
}

/// What one exchange becomes: its span and the attributes of its duration sample.
pub(super) struct Telemetry {
    pub(super) name: String,
    pub(super) role: Role,
    /// A gRPC call (RPC conventions), else HTTP.
    pub(super) rpc: bool,
    pub(super) error: bool,
    pub(super) span_attrs: Vec<KeyValue>,
    pub(super) metric_attrs: Vec<KeyValue>,
}

impl Telemetry {
    pub(super) fn of(exchange: Exchange) -> Telemetry {
        let mut telemetry = match &exchange.rpc {
            Some(rpc) => Self::rpc(exchange.role, rpc, &exchange.comm),
            None => Self::http(&exchange),
        };
        // Semantic conventions: container.id and k8s.pod.uid, on spans and durations.
        for (key, value) in [
            ("container.id", exchange.container_id),
            ("k8s.pod.uid", exchange.pod_uid),
        ] {
            if let Some(value) = value {
                telemetry
                    .metric_attrs
                    .push(KeyValue::new(key, String::from(value)));
            }
        }
        let mut attrs = telemetry.metric_attrs.clone();
        if telemetry.rpc {
            // The HTTP/2 request underneath, for those who look.
            attrs.push(KeyValue::new("url.path", exchange.path));
            if let Some(status) = exchange.status {
                attrs.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
        } else {
            attrs.push(KeyValue::new("url.path", exchange.path));
            if let Some(original) = exchange.method_original {
                attrs.push(KeyValue::new("http.request.method_original", original));
            }
        }
        attrs.extend([
            KeyValue::new("network.protocol.name", "http"),
            KeyValue::new("network.transport", "tcp"),
            KeyValue::new("server.address", exchange.server_ip),
            KeyValue::new("server.port", i64::from(exchange.server_port)),
            KeyValue::new("client.address", exchange.client_ip),
            KeyValue::new("client.port", i64::from(exchange.client_port)),
            KeyValue::new("network.peer.address", exchange.peer_ip),
            KeyValue::new("network.peer.port", i64::from(exchange.peer_port)),
            KeyValue::new("process.pid", i64::from(exchange.pid)),
            KeyValue::new("thread.id", i64::from(exchange.tid)),
        ]);
        telemetry.span_attrs = attrs;
        telemetry
    }

    fn http(exchange: &Exchange) -> Telemetry {
        let status = exchange.status.unwrap_or_default();
        let error = match exchange.role {
            Role::Server => status >= 500,
            Role::Client => status >= 400,
        };
        let mut metric_attrs = vec![
            KeyValue::new("http.request.method", exchange.method.clone()),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("http.route", exchange.route.clone()),
            KeyValue::new("url.scheme", exchange.scheme),
            KeyValue::new("network.protocol.version", exchange.version),
            KeyValue::new("process.executable.name", exchange.comm.clone()),
        ];
        if error {
            metric_attrs.push(KeyValue::new("error.type", status.to_string()));
        }
        Telemetry {
            name: format!("{} {}", exchange.method, exchange.route),
            role: exchange.role,
            rpc: false,
            error,
            span_attrs: Vec::new(),
            metric_attrs,
        }
    }

    /// RPC conventions for gRPC: a server span is an error only for the codes that mean a
    /// server fault; a client span for every code but OK; a call without a status for both.
    fn rpc(role: Role, rpc: &Rpc, comm: &str) -> Telemetry {
        const SERVER_FAULTS: [u32; 6] = [2, 4, 12, 13, 14, 15];
        let error = match (rpc.status, role) {
            (None, _) => true,
            (Some(code), Role::Server) => SERVER_FAULTS.contains(&code),
            (Some(code), Role::Client) => code != 0,
        };
        let mut metric_attrs = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", rpc.service.clone()),
            KeyValue::new("rpc.method", rpc.method.clone()),
            KeyValue::new("network.protocol.version", "2"),
            KeyValue::new("process.executable.name", comm.to_string()),
        ];
        match rpc.status {
            Some(code) => {
                metric_attrs.push(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
                if error {
                    metric_attrs.push(KeyValue::new("error.type", code.to_string()));
                }
            }
            None => metric_attrs.push(KeyValue::new("error.type", "_OTHER")),
        }
        Telemetry {
            name: format!("{}/{}", rpc.service, rpc.method),
            role,
            rpc: true,
            error,
            span_attrs: Vec::new(),
            metric_attrs,
        }
    }
}

/// Semconv method: one of the standard methods, else `_OTHER` plus the original.
pub(super) fn method_label(method: Option<&str>) -> (String, Option<String>) {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    match method {
        Some(m) if KNOWN.contains(&m) => (m.to_string(), None),
        Some(m) => ("_OTHER".to_string(), Some(m.to_string())),
        None => ("_OTHER".to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn exchange(role: Role, status: Option<u16>, rpc: Option<Rpc>) -> Exchange {
        Exchange {
            role,
            start: UNIX_EPOCH,
            end: UNIX_EPOCH + Duration::from_millis(3),
            method: "POST".into(),
            method_original: None,
            path: "/pkg.Echo/Say".into(),
            route: "/pkg.Echo/Say".into(),
            status,
            rpc,
            scheme: "http",
            version: "2",
            server_ip: "127.0.0.1".into(),
            server_port: 50051,
            client_ip: "127.0.0.1".into(),
            client_port: 40000,
            peer_ip: "127.0.0.1".into(),
            peer_port: 40000,
            pid: 1,
            tid: 1,
            comm: "srv".into(),
            container_id: None,
            pod_uid: None,
        }
    }

    fn rpc(status: Option<u32>) -> Option<Rpc> {
        Some(Rpc {
            service: "pkg.Echo".into(),
            method: "Say".into(),
            status,
        })
    }

    fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn grpc_spans_follow_the_rpc_conventions() {
        let t = Telemetry::of(exchange(Role::Server, Some(200), rpc(Some(5))));
        assert_eq!(t.name, "pkg.Echo/Say");
        assert!(t.rpc);
        assert!(!t.error, "NOT_FOUND is not a server fault");
        for (key, value) in [
            ("rpc.system", "grpc"),
            ("rpc.service", "pkg.Echo"),
            ("rpc.method", "Say"),
            ("rpc.grpc.status_code", "5"),
        ] {
            assert_eq!(attr(&t.metric_attrs, key).as_deref(), Some(value), "{key}");
            assert_eq!(attr(&t.span_attrs, key).as_deref(), Some(value), "{key}");
        }
        assert_eq!(attr(&t.metric_attrs, "http.route"), None);
        assert!(Telemetry::of(exchange(Role::Client, Some(200), rpc(Some(5)))).error);
        assert!(Telemetry::of(exchange(Role::Server, Some(200), rpc(Some(14)))).error);
        let reset = Telemetry::of(exchange(Role::Server, None, rpc(None)));
        assert!(reset.error);
        assert_eq!(attr(&reset.metric_attrs, "rpc.grpc.status_code"), None);
        assert_eq!(
            attr(&reset.metric_attrs, "error.type").as_deref(),
            Some("_OTHER")
        );
    }

    #[test]
    fn http_spans_are_named_by_method_and_route() {
        let t = Telemetry::of(exchange(Role::Client, Some(404), None));
        assert_eq!(t.name, "POST /pkg.Echo/Say");
        assert!(!t.rpc && t.error);
        assert_eq!(
            attr(&t.metric_attrs, "network.protocol.version").as_deref(),
            Some("2")
        );
        assert_eq!(attr(&t.span_attrs, "rpc.system"), None);
    }

    #[test]
    fn container_and_pod_follow_the_semantic_conventions() {
        let host = Telemetry::of(exchange(Role::Server, Some(200), None));
        assert_eq!(attr(&host.span_attrs, "container.id"), None);
        let id = "68a4a772d6b8bc9439064d0f9f70d2889824298afbed8cac908bcb9dc9dcbd6e";
        let pod = "0d4c2a3e-79a8-4d6f-9c9f-1f2b3c4d5e6f";
        let t = Telemetry::of(Exchange {
            container_id: Some(id.into()),
            pod_uid: Some(pod.into()),
            ..exchange(Role::Server, Some(200), rpc(Some(0)))
        });
        for attrs in [&t.span_attrs, &t.metric_attrs] {
            assert_eq!(attr(attrs, "container.id").as_deref(), Some(id));
            assert_eq!(attr(attrs, "k8s.pod.uid").as_deref(), Some(pod));
        }
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(Some("GET")), ("GET".to_string(), None));
        assert_eq!(
            method_label(Some("BREW")),
            ("_OTHER".to_string(), Some("BREW".to_string()))
        );
    }
}
