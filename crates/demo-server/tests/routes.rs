//! Route behaviour, exercised over one keep-alive connection per test.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use demo_server::{spawn, Config, RunningServer, MAX_BODY_BYTES};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("response is not JSON")
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn start() -> anyhow::Result<RunningServer> {
    let config = Config {
        slow_delay: Duration::from_millis(50),
        ..Config::default()
    };
    Ok(spawn(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?)
}

async fn connect(server: &RunningServer) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(server.local_addr()).await?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> anyhow::Result<Reply> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test")
        .body(Full::new(body.into()))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

async fn get(sender: &mut SendRequest<Full<Bytes>>, path: &str) -> anyhow::Result<Reply> {
    send(sender, Method::GET, path, Bytes::new()).await
}

#[tokio::test]
async fn basic_routes_share_one_connection() -> anyhow::Result<()> {
    let server = start().await?;
    let mut conn = connect(&server).await?;

    let root = get(&mut conn, "/").await?;
    assert_eq!(root.status, StatusCode::OK);
    assert!(root.content_type().starts_with("text/plain"));
    let time = root.text();
    let time = time.strip_prefix("ok ").context("body starts with `ok `")?;
    humantime::parse_rfc3339(time)?;

    let health = get(&mut conn, "/healthz").await?;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.content_type(), "application/json");
    let json = health.json()?;
    assert_eq!(json["status"], "ok");
    humantime::parse_rfc3339(json["time"].as_str().context("time is a string")?)?;

    let slow = get(&mut conn, "/slow").await?;
    assert_eq!(
        (slow.status, slow.text().as_str()),
        (StatusCode::OK, "delayed 50ms")
    );

    let head = send(&mut conn, Method::HEAD, "/healthz", Bytes::new()).await?;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());

    // Still the same connection after all of the above.
    assert_eq!(get(&mut conn, "/").await?.status, StatusCode::OK);
    drop(conn);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn echo_round_trips_and_rejects_bad_bodies() -> anyhow::Result<()> {
    let server = start().await?;
    let mut conn = connect(&server).await?;

    let ok = send(&mut conn, Method::POST, "/echo", r#"{"message":"hello-1"}"#).await?;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()?, serde_json::json!({ "message": "hello-1" }));

    let nested = send(
        &mut conn,
        Method::POST,
        "/echo",
        r#"{"message":{"a":[1,2]}}"#,
    )
    .await?;
    assert_eq!(nested.json()?["message"]["a"][1], 2);

    for bad in [
        "not json",
        r#"{"msg":"x"}"#,
        r#"{"message":null}"#,
        "[1]",
        "",
    ] {
        let reply = send(&mut conn, Method::POST, "/echo", bad).await?;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "body {bad:?}");
        assert!(reply.json()?["error"].is_string());
    }

    // Exactly at the limit is fine (the JSON is invalid, hence 400, not 413).
    let at_limit = send(&mut conn, Method::POST, "/echo", vec![b' '; MAX_BODY_BYTES]).await?;
    assert_eq!(at_limit.status, StatusCode::BAD_REQUEST);

    let mut big = br#"{"message":""#.to_vec();
    big.resize(MAX_BODY_BYTES + 1, b'x');
    let mut conn = connect(&server).await?;
    let too_big = send(&mut conn, Method::POST, "/echo", big).await?;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_big.json()?["error"].is_string());

    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn generated_bodies() -> anyhow::Result<()> {
    let server = start().await?;
    let mut conn = connect(&server).await?;

    for n in [0, 1, 100, 70_000] {
        let fixed = get(&mut conn, &format!("/bytes/{n}")).await?;
        assert_eq!(fixed.status, StatusCode::OK);
        assert_eq!(fixed.body.len(), n);
        assert_eq!(fixed.headers["content-length"], n.to_string().as_str());
        assert!(fixed.body.is_ascii());

        let chunked = get(&mut conn, &format!("/chunked/{n}")).await?;
        assert_eq!(chunked.status, StatusCode::OK);
        assert_eq!(chunked.headers[TRANSFER_ENCODING], "chunked");
        assert_eq!(chunked.body, fixed.body, "same pattern for n={n}");
    }

    for bad in ["/bytes/-1", "/bytes/abc", "/bytes/67108865", "/chunked/1e3"] {
        assert_eq!(
            get(&mut conn, bad).await?.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn status_route() -> anyhow::Result<()> {
    let server = start().await?;
    let mut conn = connect(&server).await?;
    for code in [200u16, 201, 204, 304, 404, 418, 500, 503] {
        let reply = get(&mut conn, &format!("/status/{code}")).await?;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.body.is_empty(), code == 204 || code == 304, "{code}");
    }
    for bad in ["/status/99", "/status/101", "/status/600", "/status/ok"] {
        let reply = get(&mut conn, bad).await?;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn unknown_paths_and_methods() -> anyhow::Result<()> {
    let server = start().await?;
    let mut conn = connect(&server).await?;

    let missing = get(&mut conn, "/nope").await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()?["error"].is_string());

    let wrong = send(&mut conn, Method::POST, "/healthz", Bytes::new()).await?;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong.json()?["error"].is_string());

    let wrong = get(&mut conn, "/echo").await?;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.headers["allow"], "POST");
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn request_id_is_echoed() -> anyhow::Result<()> {
    let server = start().await?;
    let mut conn = connect(&server).await?;
    for (i, path) in ["/", "/nope", "/status/503"].into_iter().enumerate() {
        let id = format!("req-{i}");
        let request = Request::get(path)
            .header("host", "test")
            .header("x-request-id", &id)
            .body(Full::new(Bytes::new()))?;
        let response = conn.send_request(request).await?;
        assert_eq!(response.headers()["x-request-id"], id.as_str());
        response.into_body().collect().await?;
    }
    let without = get(&mut conn, "/").await?;
    assert!(!without.headers.contains_key("x-request-id"));
    server.shutdown().await?;
    Ok(())
}
