//! The HTTP client of the OTLP/HTTP exporters: hyper, driven on httpscope's
//! OTLP Tokio runtime. The SDK's batch span processor and periodic metric
//! reader poll exports from their own threads, outside any runtime, so each
//! request is spawned onto the runtime and only its join handle is awaited
//! there (a join handle can be polled by any executor).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;

#[derive(Clone)]
pub struct RuntimeHttpClient {
    client: Arc<HyperClient>,
    runtime: Handle,
}

impl RuntimeHttpClient {
    /// Each request (connect included) gives up after `timeout`.
    pub fn new(runtime: Handle, timeout: Duration) -> Self {
        Self {
            client: Arc::new(HyperClient::with_default_connector(timeout, None)),
            runtime,
        }
    }
}

impl fmt::Debug for RuntimeHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RuntimeHttpClient")
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = Arc::clone(&self.client);
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|err| HttpError::from(format!("the OTLP HTTP request task failed: {err}")))?
    }
}
