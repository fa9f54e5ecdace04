//! The SDK's tracer and meter providers, wired to an OTLP exporter per signal
//! over the protocol [`OtlpTargets`] chose.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry_otlp::{
    MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
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
        let exporter = match target.protocol {
            OtlpProtocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&target.url)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::HttpProtobuf => SpanExporter::builder()
                .with_http()
                .with_http_client(http_client())
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(&target.url)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        }
        .with_context(|| exporter_context("span", target))?;
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
        let exporter = match target.protocol {
            OtlpProtocol::Grpc => MetricExporter::builder()
                .with_tonic()
                .with_endpoint(&target.url)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::HttpProtobuf => MetricExporter::builder()
                .with_http()
                .with_http_client(http_client())
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(&target.url)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        }
        .with_context(|| exporter_context("metric", target))?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(METRIC_INTERVAL)
            .build();
        meter_provider = meter_provider.with_reader(reader);
    }
    Ok((tracer_provider.build(), meter_provider.build()))
}

fn exporter_context(what: &str, target: &SignalTarget) -> String {
    format!(
        "building the OTLP {what} exporter for {} over {}",
        target.url, target.protocol
    )
}
