//! The SDK's tracer and meter providers, wired to an OTLP exporter per signal
//! over the protocol [`OtlpTargets`] chose.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry_otlp::{
    ExporterBuildError, HttpExporterBuilderSet, MetricExporter, MetricExporterBuilder, Protocol,
    SpanExporter, SpanExporterBuilder, TonicExporterBuilderSet, WithExportConfig, WithHttpConfig,
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tokio::runtime::Handle;

use super::http_client::RuntimeHttpClient;
use super::target::{OtlpTargets, SignalTarget};
use crate::cli::OtlpProtocol;

/// Spans queued in the SDK batch processor; beyond this the SDK drops them.
const SPAN_QUEUE: usize = 4096;
/// One export call (connect + send) gives up after this.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the duration histograms are exported.
const METRIC_INTERVAL: Duration = Duration::from_secs(10);

/// Builds both providers (a malformed endpoint fails here). A signal without a
/// target gets a provider with no exporter. Must run inside `runtime`.
pub fn build(
    targets: &OtlpTargets,
    runtime: &Handle,
) -> anyhow::Result<(SdkTracerProvider, SdkMeterProvider)> {
    let resource = Resource::builder().with_service_name("httpscope").build();
    let http_client = || RuntimeHttpClient::new(runtime.clone(), EXPORT_TIMEOUT);

    let mut tracer_provider = SdkTracerProvider::builder().with_resource(resource.clone());
    if let Some(target) = &targets.traces {
        let exporter: SpanExporter = exporter(target, http_client(), "span")?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(SPAN_QUEUE)
            .with_scheduled_delay(Duration::from_secs(1))
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        tracer_provider = tracer_provider.with_span_processor(processor);
    }

    let mut meter_provider = SdkMeterProvider::builder().with_resource(resource);
    if let Some(target) = &targets.metrics {
        let exporter: MetricExporter = exporter(target, http_client(), "metric")?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(METRIC_INTERVAL)
            .build();
        meter_provider = meter_provider.with_reader(reader);
    }
    Ok((tracer_provider.build(), meter_provider.build()))
}

/// The exporter of one signal to `target`: protobuf over gRPC, or over HTTP through
/// `http_client`, with the same timeout either way.
fn exporter<E: Exporter>(
    target: &SignalTarget,
    http_client: RuntimeHttpClient,
    what: &str,
) -> anyhow::Result<E> {
    match target.protocol {
        OtlpProtocol::Grpc => E::build_grpc(
            E::grpc()
                .with_endpoint(&target.url)
                .with_timeout(EXPORT_TIMEOUT),
        ),
        OtlpProtocol::HttpProtobuf => E::build_http(
            E::http()
                .with_http_client(http_client)
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(&target.url)
                .with_timeout(EXPORT_TIMEOUT),
        ),
    }
    .with_context(|| {
        format!(
            "building the OTLP {what} exporter for {} over {}",
            target.url, target.protocol
        )
    })
}

/// A signal's exporter as the SDK builds it, over either protocol.
trait Exporter: Sized {
    type Grpc: WithExportConfig;
    type Http: WithExportConfig + WithHttpConfig;
    fn grpc() -> Self::Grpc;
    fn http() -> Self::Http;
    fn build_grpc(builder: Self::Grpc) -> Result<Self, ExporterBuildError>;
    fn build_http(builder: Self::Http) -> Result<Self, ExporterBuildError>;
}

/// `Exporter` for a signal's exporter and builder types: alike for every signal.
macro_rules! impl_exporter {
    ($exporter:ident, $builder:ident) => {
        impl Exporter for $exporter {
            type Grpc = $builder<TonicExporterBuilderSet>;
            type Http = $builder<HttpExporterBuilderSet>;
            fn grpc() -> Self::Grpc {
                $exporter::builder().with_tonic()
            }
            fn http() -> Self::Http {
                $exporter::builder().with_http()
            }
            fn build_grpc(builder: Self::Grpc) -> Result<Self, ExporterBuildError> {
                builder.build()
            }
            fn build_http(builder: Self::Http) -> Result<Self, ExporterBuildError> {
                builder.build()
            }
        }
    };
}

impl_exporter!(SpanExporter, SpanExporterBuilder);
impl_exporter!(MetricExporter, MetricExporterBuilder);
