//! The command line: every subcommand, flag and value type, as clap parses them. The rest
//! of the crate reads these types; this module uses nothing of it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use httpscope_core::route::{RouteRules, DEFAULT_MAX_ROUTES};

/// See every HTTP exchange this machine's processes make or serve, from their socket syscalls.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub record: RecordArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture live traffic (the default).
    Record(RecordArgs),
    /// Run a saved event file through the pipeline.
    Replay(ReplayArgs),
    /// Check what this kernel and this process allow.
    Doctor,
    /// Live terminal view of endpoints (takes the capture flags of `record`;
    /// writes records to a file only with --output).
    Top(RecordArgs),
    /// Endpoint table and latency histograms of a JSON output file or a saved event file.
    Stats(StatsArgs),
    /// A self-contained HTML report (inline SVG and CSS: works offline, can be mailed) of a
    /// JSON output file or a saved event file.
    Report(ReportArgs),
    /// Man pages and shell completions, for packagers.
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub target: GenerateTarget,
}

#[derive(Debug, Clone, Subcommand)]
pub enum GenerateTarget {
    /// Man pages: httpscope.1 and one per subcommand.
    Man {
        /// Directory to write them into (e.g. /usr/local/share/man/man1).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Shell completions: one shell's on stdout, or bash, zsh and fish under a `share` directory.
    #[command(group = clap::ArgGroup::new("where").required(true))]
    Completions {
        /// Print this shell's completions on stdout.
        #[arg(group = "where")]
        shell: Option<clap_complete::Shell>,
        /// Write bash, zsh and fish completions at their usual places under this
        /// directory (e.g. /usr/local/share).
        #[arg(long, value_name = "SHARE_DIR", group = "where")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Logfmt,
    Json,
}

/// Where records go and how they look.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output file, appended to; `-` for stdout. When recording, SIGHUP reopens
    /// it (logrotate's postrotate). [default: output/ebpf_http.log when recording,
    /// stdout when replaying]
    #[arg(short, long, env = "OUTPUT_PATH")]
    pub output: Option<PathBuf>,

    /// Output format: one logfmt or JSON line per HTTP message.
    #[arg(long, value_enum, default_value_t = Format::Logfmt)]
    pub format: Format,

    /// Body bytes kept per message.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub body_limit: u32,

    /// Raw wire bytes kept per message.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=65_536))]
    pub raw_limit: u32,

    /// Don't print the per-endpoint summary to stderr at exit.
    #[arg(long)]
    pub no_summary: bool,

    /// Also redact this header, query parameter and JSON key (case-insensitive, `*` wildcards; repeatable).
    #[arg(long = "redact", value_name = "PATTERN")]
    pub redact: Vec<String>,

    /// Turn off the default redaction of Authorization, Cookie, Set-Cookie, API-key and token headers.
    #[arg(long)]
    pub no_redact: bool,

    /// Keep only metadata: no bodies in `body` or `raw`.
    #[arg(long)]
    pub no_body: bool,

    /// Prometheus metrics and pcapng output.
    #[command(flatten)]
    pub integrations: IntegrationArgs,
}

/// Prometheus metrics, pcapng output and OTLP export.
#[derive(Debug, Clone, Args)]
pub struct IntegrationArgs {
    /// Serve Prometheus/OpenMetrics metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464),
    /// and /healthz and /readyz (whether capture is attached and draining) beside it.
    #[arg(long, value_name = "ADDR", env = "HTTPSCOPE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    #[command(flatten)]
    pub routes: RouteArgs,

    /// Also write every captured connection as TCP segments to this pcapng file
    /// (truncated; mode 0600; NOT redacted: it holds credentials in clear text).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// Export each exchange as an OpenTelemetry span, and duration histograms,
    /// over OTLP to this collector (e.g. http://127.0.0.1:4317 for gRPC,
    /// http://127.0.0.1:4318 for HTTP). Else OTEL_EXPORTER_OTLP_ENDPOINT, or
    /// OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT for one signal.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// OTLP protocol: grpc, or http/protobuf (POST to the endpoint's /v1/traces
    /// and /v1/metrics). Else OTEL_EXPORTER_OTLP_PROTOCOL (or the signal's
    /// own _PROTOCOL variable); unset, an endpoint on port 4318 means
    /// http/protobuf and any other grpc.
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<OtlpProtocol>,
}

/// How paths become routes, in every output.
#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// Route template, e.g. '/users/{name}/repos' (a {…} segment matches any one
    /// segment; repeatable); tried before inference, which turns ids, UUIDs, hex,
    /// tokens, dates, e-mail and IP addresses in paths into {id} anyway.
    #[arg(long = "route", value_name = "PATTERN")]
    pub templates: Vec<String>,

    /// Distinct routes kept; later new ones are reported as {other}.
    #[arg(long, default_value_t = DEFAULT_MAX_ROUTES)]
    pub max_routes: usize,
}

impl RouteArgs {
    pub fn rules(&self) -> RouteRules {
        RouteRules {
            templates: self.templates.clone(),
            max_routes: self.max_routes,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// TCP port to watch, as local or remote port (repeatable). [default: 8080;
    /// with --all-ports: every port]
    #[arg(short, long = "port", env = "HTTP_PORT", value_delimiter = ',')]
    pub ports: Vec<u16>,

    /// Every TCP connection is a candidate: the kernel keeps a connection when
    /// its first bytes are HTTP/1.x, HTTP/2 or TLS read by the TLS hooks, and
    /// drops it otherwise. --port, if given, narrows the candidates.
    #[arg(long)]
    pub all_ports: bool,

    /// Only this process (thread group id).
    #[arg(long)]
    pub pid: Option<u32>,

    /// Only processes with this name (as in /proc/PID/comm).
    #[arg(long)]
    pub comm: Option<String>,

    /// Only processes in the container whose id starts with this (1 to 64 hex
    /// digits, e.g. the 12 that `docker ps` or `podman ps` show), filtered in
    /// the kernel by cgroup; containers started later are picked up within a second.
    #[arg(long, value_name = "ID_OR_PREFIX", value_parser = parse_container_prefix)]
    pub container: Option<String>,

    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,

    /// Bytes copied from each syscall at most; the true length is always reported.
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=32768))]
    pub capture_bytes: u32,

    /// Copy every body whole (up to --capture-bytes per syscall) instead of each HTTP
    /// message's head and first --body-limit body bytes, the rest only counted.
    #[arg(long)]
    pub no_capture_budget: bool,

    /// Kernel ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub ring_mb: u32,

    /// Capture HTTPS plaintext from the TLS libraries found (OpenSSL libssl); on by default.
    #[arg(long, overrides_with = "no_tls")]
    pub tls: bool,

    /// Don't hook TLS libraries: HTTPS connections are only counted.
    #[arg(long, overrides_with = "tls")]
    pub no_tls: bool,

    /// Where the kernel side sees socket traffic: `socket` (socket send/receive
    /// tracepoints, Linux 6.3+), `syscall` (the sys_exit tracepoint, any kernel with
    /// BTF), or `auto` (socket where the kernel has it).
    #[arg(long, value_enum, default_value_t = CaptureBackendArg::Auto)]
    pub capture_backend: CaptureBackendArg,

    /// Also save the raw kernel events to this file, for `httpscope replay`.
    #[arg(long)]
    pub save_events: Option<PathBuf>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Event file written by `record --save-events`.
    pub file: PathBuf,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// A `--format json` output file or a `--save-events` event file.
    pub file: PathBuf,

    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Only endpoints in the container whose id starts with this (1 to 64 hex digits).
    #[arg(long, value_name = "ID_OR_PREFIX", value_parser = parse_container_prefix)]
    pub container: Option<String>,

    #[command(flatten)]
    pub routes: RouteArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A `--format json` output file or a `--save-events` event file.
    pub file: PathBuf,

    /// The HTML file to write (replaced if it exists).
    #[arg(short, long, default_value = "report.html")]
    pub output: PathBuf,

    /// Routes drawn over time: the busiest this many.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub top: u8,

    #[command(flatten)]
    pub routes: RouteArgs,
}

impl RecordArgs {
    /// The ports given, sorted and deduplicated; 8080 when none is given
    /// (none at all with --all-ports: every port).
    pub fn watched_ports(&self) -> Vec<u16> {
        let mut ports = self.ports.clone();
        if ports.is_empty() && !self.all_ports {
            ports.push(8080);
        }
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

fn parse_container_prefix(value: &str) -> Result<String, String> {
    if (1..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err("a container id or its prefix: 1 to 64 hex digits".to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureBackendArg {
    Auto,
    Socket,
    Syscall,
}

/// OTLP's wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    /// protobuf over gRPC (collectors listen on port 4317)
    #[value(name = "grpc")]
    Grpc,
    /// protobuf over HTTP POST to `/v1/traces` and `/v1/metrics` (port 4318)
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        })
    }
}
