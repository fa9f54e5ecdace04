//! Thin HTTP/1.1 keep-alive client that times whole request/response exchanges.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::TokioExecutor;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled client; clones share the pool.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pool: Pool<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Client {
    /// A client keeping up to `max_idle` idle connections and giving each
    /// exchange `timeout` to complete.
    pub(crate) fn new(max_idle: usize, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let pool = Pool::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Self { pool, timeout }
    }

    /// Sends one request with `X-Request-Id: id` and reads the whole response.
    ///
    /// Returns the time until the last body byte arrived (or the failure) and
    /// the status.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &Uri,
        id: u64,
        json_body: Option<Bytes>,
    ) -> (Duration, anyhow::Result<StatusCode>) {
        let start = Instant::now();
        let result =
            match tokio::time::timeout(self.timeout, self.exchange(method, uri, id, json_body))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(anyhow!("timed out after {:?}", self.timeout)),
            };
        (start.elapsed(), result)
    }

    async fn exchange(
        &self,
        method: Method,
        uri: &Uri,
        id: u64,
        json_body: Option<Bytes>,
    ) -> anyhow::Result<StatusCode> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri.clone())
            .header(X_REQUEST_ID, HeaderValue::from(id));
        if json_body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(json_body.unwrap_or_default()))?;
        let response = self.pool.request(request).await?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .context("reading the response body")?;
        Ok(status)
    }
}

/// Formats a latency as milliseconds with one decimal, e.g. `1.2ms`.
pub(crate) fn millis(latency: Duration) -> String {
    format!("{:.1}ms", latency.as_secs_f64() * 1000.0)
}
