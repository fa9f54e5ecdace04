//! Routes of the demo service.

use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request};
use axum::http::header::{HeaderName, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::Config;

/// Largest request body `POST /echo` accepts; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest body `/bytes/<n>` and `/chunked/<n>` generate; larger `n` gets 400.
pub const MAX_GENERATED_BYTES: usize = 64 * 1024 * 1024;
/// Upper bound of one chunk of `/chunked/<n>`.
const MAX_CHUNK_BYTES: usize = 16 * 1024;
/// Generated bodies repeat this line.
const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\n";
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TEXT: &str = "text/plain; charset=utf-8";

/// Builds the demo router (see the crate README for the routes).
pub fn router(config: Config) -> Router {
    let delay = config.slow_delay;
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/echo", post(echo))
        .route("/slow", get(move || slow(delay)))
        .route("/bytes/{n}", get(bytes))
        .route("/chunked/{n}", get(chunked))
        .route("/status/{code}", get(status))
        // Must come after the routes: it applies to those already added.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
}

/// Current UTC time in RFC 3339 format.
fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Echoes `X-Request-Id` and logs each request at debug level.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request.headers().get(&X_REQUEST_ID).cloned();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let start = Instant::now();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    tracing::debug!(%method, path, status = response.status().as_u16(), elapsed = ?start.elapsed());
    response
}

async fn root() -> Response {
    ([(CONTENT_TYPE, TEXT)], format!("ok {}", now())).into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok", "time": now() })).into_response()
}

/// Echoes the `message` of a JSON object body; absent and `null` count as missing.
async fn echo(body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) {
        Ok(mut object) => match object.remove("message") {
            Some(message) if !message.is_null() => {
                Json(json!({ "message": message })).into_response()
            }
            _ => error(StatusCode::BAD_REQUEST, "missing field `message`"),
        },
        Err(err) => error(
            StatusCode::BAD_REQUEST,
            format!("body must be a JSON object: {err}"),
        ),
    }
}

async fn slow(delay: Duration) -> Response {
    tokio::time::sleep(delay).await;
    (
        [(CONTENT_TYPE, TEXT)],
        format!("delayed {}ms", delay.as_millis()),
    )
        .into_response()
}

/// Parses the `<n>` of `/bytes/<n>` and `/chunked/<n>`; the error is a 400 message.
fn parse_size(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n <= MAX_GENERATED_BYTES => Ok(n),
        Ok(_) => Err(format!(
            "size {raw} exceeds the limit of {MAX_GENERATED_BYTES} bytes"
        )),
        Err(_) => Err(format!("invalid size `{raw}`")),
    }
}

/// `len` bytes of the repeating [`PATTERN`], starting `offset` bytes into it.
fn pattern(offset: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = offset % PATTERN.len();
    while out.len() < len {
        let take = (PATTERN.len() - pos).min(len - out.len());
        out.extend_from_slice(&PATTERN[pos..pos + take]);
        pos = 0;
    }
    out
}

async fn bytes(Path(raw): Path<String>) -> Response {
    match parse_size(&raw) {
        Ok(n) => ([(CONTENT_TYPE, TEXT)], pattern(0, n)).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// Streams `n` bytes without a length, so HTTP/1.1 uses chunked encoding.
async fn chunked(Path(raw): Path<String>) -> Response {
    let n = match parse_size(&raw) {
        Ok(n) => n,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // At least four chunks when there are enough bytes.
    let chunk = n.div_ceil(4).clamp(1, MAX_CHUNK_BYTES);
    let chunks = (0..n)
        .step_by(chunk)
        .map(move |start| Ok::<_, Infallible>(Bytes::from(pattern(start, chunk.min(n - start)))));
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    ([(CONTENT_TYPE, TEXT)], body).into_response()
}

async fn status(Path(raw): Path<String>) -> Response {
    let code = raw
        .parse::<u16>()
        .ok()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok());
    match code {
        Some(code @ (StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)) => code.into_response(),
        Some(code) => (code, [(CONTENT_TYPE, TEXT)], code.to_string()).into_response(),
        None => error(
            StatusCode::BAD_REQUEST,
            format!("invalid status code `{raw}` (expected 200-599)"),
        ),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}
