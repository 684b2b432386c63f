//! Exporting spans over OTLP/HTTP (protobuf), when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. The exporter reads the
//! other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`,
//! `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`, ...); `OTEL_SERVICE_NAME`
//! defaults to the binary's name. Only the [`SPANS`] spans are exported.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::trace_context::SPANS;

const ENDPOINTS: [&str; 2] = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];

/// The running exporter.
pub struct Otlp {
    provider: SdkTracerProvider,
}

impl Otlp {
    /// Exports the spans still buffered (within the exporter's timeout) and
    /// stops. Call it outside any async runtime: it blocks.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OTLP: spans may have been lost at shutdown");
        }
    }
}

/// The layer that exports the [`SPANS`] spans, and the exporter to shut down
/// on exit; `None` when no OTLP endpoint is set. The exporter sends from a
/// thread of its own: build it before any async runtime starts.
pub fn layer<S>(default_service: &str) -> Result<Option<(impl Layer<S>, Otlp)>, ExporterBuildError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    if !ENDPOINTS.iter().any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty())) {
        return Ok(None);
    }
    let exporter =
        SpanExporter::builder().with_http().with_protocol(opentelemetry_otlp::Protocol::HttpBinary).build()?;
    let service = std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.is_empty());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service.unwrap_or_else(|| default_service.into())).build())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("bertstream"))
        .with_filter(Targets::new().with_target(SPANS, tracing::Level::TRACE));
    Ok(Some((layer, Otlp { provider })))
}
