//! Where and how OTLP data goes: the protocol and the URL of each signal,
//! resolved from the flags and the `OTEL_EXPORTER_OTLP_*` variables the way
//! OpenTelemetry SDKs resolve them (flag, then the signal's own variable,
//! then the general one).

use clap::ValueEnum;

use crate::cli::OtlpProtocol;

/// The port collectors listen on for OTLP over HTTP.
const OTLP_HTTP_PORT: u16 = 4318;

/// The two signals httpscope exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn env_suffix(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    /// The path OTLP/HTTP appends to a general endpoint.
    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// Where one signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTarget {
    pub protocol: OtlpProtocol,
    /// gRPC: the collector's address; HTTP: the full URL to POST to.
    pub url: String,
}

/// Where the spans and the metrics go; `None` when no endpoint names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTargets {
    pub traces: Option<SignalTarget>,
    pub metrics: Option<SignalTarget>,
}

impl OtlpTargets {
    /// Resolves both signals from the flags (which win) and the environment
    /// (`env` looks a variable up). A signal with no endpoint of its own and no
    /// general endpoint is not exported. Without any protocol setting, an
    /// endpoint on port 4318 (OTLP/HTTP's port) means http/protobuf, any other gRPC.
    pub fn resolve(
        endpoint_flag: Option<&str>,
        protocol_flag: Option<OtlpProtocol>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let protocol_var = |name: &str| -> Result<Option<OtlpProtocol>, String> {
            var(name)
                .map(|value| {
                    OtlpProtocol::from_str(value.trim(), false).map_err(|_| {
                        format!("{name}={value}: the protocols are grpc and http/protobuf")
                    })
                })
                .transpose()
        };
        let general_endpoint = endpoint_flag
            .map(str::to_string)
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let general_protocol = protocol_var("OTEL_EXPORTER_OTLP_PROTOCOL")?;
        let target = |signal: Signal| -> Result<Option<SignalTarget>, String> {
            let suffix = signal.env_suffix();
            let protocol = match protocol_flag {
                Some(protocol) => Some(protocol),
                None => protocol_var(&format!("OTEL_EXPORTER_OTLP_{suffix}_PROTOCOL"))?
                    .or(general_protocol),
            };
            // A signal's own endpoint is used as is; the general one gets the signal's path.
            let signal_endpoint = var(&format!("OTEL_EXPORTER_OTLP_{suffix}_ENDPOINT"));
            let (endpoint, is_general) = match (endpoint_flag, signal_endpoint) {
                (Some(flag), _) => (flag.to_string(), true),
                (None, Some(own)) => (own, false),
                (None, None) => match &general_endpoint {
                    Some(general) => (general.clone(), true),
                    None => return Ok(None),
                },
            };
            let protocol = protocol.unwrap_or_else(|| default_protocol(&endpoint));
            let url = match (protocol, is_general) {
                (OtlpProtocol::HttpProtobuf, true) => {
                    format!("{}{}", endpoint.trim_end_matches('/'), signal.http_path())
                }
                _ => endpoint,
            };
            Ok(Some(SignalTarget { protocol, url }))
        };
        Ok(OtlpTargets {
            traces: target(Signal::Traces)?,
            metrics: target(Signal::Metrics)?,
        })
    }
}

impl OtlpTargets {
    /// `traces: URL (protocol), metrics: URL (protocol)`, for logs.
    pub fn describe(&self) -> String {
        let one = |target: &Option<SignalTarget>| match target {
            Some(target) => format!("{} ({})", target.url, target.protocol),
            None => "off".to_string(),
        };
        format!(
            "traces: {}, metrics: {}",
            one(&self.traces),
            one(&self.metrics)
        )
    }

    pub fn any(&self) -> bool {
        self.traces.is_some() || self.metrics.is_some()
    }
}

/// The protocol an endpoint's port implies when nothing says which.
fn default_protocol(endpoint: &str) -> OtlpProtocol {
    if endpoint_port(endpoint) == Some(OTLP_HTTP_PORT) {
        OtlpProtocol::HttpProtobuf
    } else {
        OtlpProtocol::Grpc
    }
}

/// The explicit port of a `scheme://host:port/...` URL.
fn endpoint_port(endpoint: &str) -> Option<u16> {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let (_, port) = authority.rsplit_once(':')?;
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        flag: Option<&str>,
        protocol: Option<OtlpProtocol>,
        vars: &[(&str, &str)],
    ) -> OtlpTargets {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpTargets::resolve(flag, protocol, |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .expect("valid settings")
    }

    fn target(protocol: OtlpProtocol, url: &str) -> Option<SignalTarget> {
        Some(SignalTarget {
            protocol,
            url: url.to_string(),
        })
    }

    #[test]
    fn no_endpoint_exports_nothing() {
        let none = resolve(None, None, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(none.traces, None);
        assert_eq!(none.metrics, None);
    }

    #[test]
    fn grpc_endpoint_is_used_as_is() {
        let targets = resolve(Some("http://c:4317"), None, &[]);
        assert_eq!(targets.traces, target(OtlpProtocol::Grpc, "http://c:4317"));
        assert_eq!(targets.metrics, target(OtlpProtocol::Grpc, "http://c:4317"));
    }

    #[test]
    fn http_protobuf_appends_the_signal_paths() {
        let targets = resolve(
            None,
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:9999/base/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        );
        let http = OtlpProtocol::HttpProtobuf;
        assert_eq!(targets.traces, target(http, "http://c:9999/base/v1/traces"));
        assert_eq!(
            targets.metrics,
            target(http, "http://c:9999/base/v1/metrics")
        );
    }

    #[test]
    fn port_4318_means_http_unless_a_protocol_is_set() {
        let http = OtlpProtocol::HttpProtobuf;
        let implied = resolve(Some("http://c:4318"), None, &[]);
        assert_eq!(implied.traces, target(http, "http://c:4318/v1/traces"));
        let explicit = resolve(Some("http://c:4318"), Some(OtlpProtocol::Grpc), &[]);
        assert_eq!(explicit.traces, target(OtlpProtocol::Grpc, "http://c:4318"));
    }

    #[test]
    fn the_flags_win_over_the_environment() {
        let targets = resolve(
            Some("http://flag:4000"),
            Some(OtlpProtocol::HttpProtobuf),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:1/x"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
        );
        let http = OtlpProtocol::HttpProtobuf;
        assert_eq!(targets.traces, target(http, "http://flag:4000/v1/traces"));
    }

    #[test]
    fn signal_variables_win_over_the_general_ones() {
        let targets = resolve(
            None,
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "http://m:4318/custom",
                ),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ],
        );
        assert_eq!(targets.traces, target(OtlpProtocol::Grpc, "http://c:4317"));
        assert_eq!(
            targets.metrics,
            target(OtlpProtocol::HttpProtobuf, "http://m:4318/custom")
        );
        let traces_only = resolve(
            None,
            None,
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317")],
        );
        assert_eq!(traces_only.metrics, None);
    }

    #[test]
    fn an_unknown_protocol_is_an_error() {
        let err = OtlpTargets::resolve(Some("http://c:4317"), None, |name| {
            (name == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".to_string())
        });
        assert!(
            matches!(&err, Err(message) if message.contains("grpc and http/protobuf")),
            "{err:?}"
        );
    }
}
