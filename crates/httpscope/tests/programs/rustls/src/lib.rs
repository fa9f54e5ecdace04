//! What the rustls test programs share: the HTTPS server (axum over hyper and tokio-rustls,
//! HTTP/1.1 and h2 by ALPN) and the clients' request plan and tally.
//!
//! Servers: `PROGRAM CERT KEY`, print "listening on PORT" on stderr, serve until SIGINT
//! (on an ephemeral port, or RUSTLS_PROGRAMS_PORT).
//! They answer GET /?id=X with "hello X" and POST with "echo:" + body, echoing X-Request-Id.
//!
//! Clients: `PROGRAM CA PORT N PREFIX h1|h2 [SECONDS]`: N requests one at a time on one
//! keep-alive connection (ids PREFIX0.., every third a POST of "body-" + id), or with SECONDS
//! as many as fit in that time (0: until SIGINT). RUSTLS_PROGRAMS_START_DELAY_MS makes the
//! client wait before its first request; RUSTLS_PROGRAMS_HOLD_AFTER=K makes it print "held"
//! on stderr after K requests and wait for a line on stdin before the next ones, on the same
//! connection. They print {"requests","ok","mismatch"} as JSON.

use std::collections::HashMap;
use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, Method, Response};
use axum::routing::any;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Runs the test server with `provider` as rustls's crypto.
pub fn serve(provider: CryptoProvider) -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cert, key] = args.as_slice() else {
        return Err("usage: SERVER CERT KEY".into());
    };
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<std::result::Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(accept_loop(TlsAcceptor::from(Arc::new(config))))
}

async fn accept_loop(acceptor: TlsAcceptor) -> Result<()> {
    let port = std::env::var("RUSTLS_PROGRAMS_PORT").unwrap_or_else(|_| "0".to_owned());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    eprintln!("listening on {}", listener.local_addr()?.port());
    let app = Router::new().route("/", any(answer));
    // One listener for the whole run: a SIGINT between two accepts is not missed.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut interrupted => return Ok(()),
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn answer(
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response<Body> {
    let text = if method == Method::POST {
        [b"echo:".as_slice(), &body].concat()
    } else {
        let id = query.get("id").map(String::as_str).unwrap_or_default();
        format!("hello {id}").into_bytes()
    };
    let mut response = Response::new(Body::from(text));
    let out = response.headers_mut();
    out.insert("content-type", "text/plain".parse().expect("static header"));
    if let Some(id) = headers.get("x-request-id") {
        out.insert("x-request-id", id.clone());
    }
    response
}

/// A client's command line.
pub struct ClientArgs {
    pub ca: String,
    pub port: u16,
    pub count: usize,
    pub prefix: String,
    pub h2: bool,
    /// Run for this long instead of `count` requests; `Duration::MAX` until SIGINT.
    pub duration: Option<Duration>,
    /// Wait for a line on stdin before request `hold_after`.
    pub hold_after: Option<usize>,
}

impl ClientArgs {
    pub fn parse() -> Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if !(5..=6).contains(&args.len()) {
            return Err("usage: CLIENT CA PORT N PREFIX h1|h2 [SECONDS]".into());
        }
        let duration = match args.get(5).map(|s| s.parse::<u64>()).transpose()? {
            None => None,
            Some(0) => Some(Duration::MAX),
            Some(s) => Some(Duration::from_secs(s)),
        };
        if let Ok(ms) = std::env::var("RUSTLS_PROGRAMS_START_DELAY_MS") {
            std::thread::sleep(Duration::from_millis(ms.parse()?));
        }
        Ok(ClientArgs {
            ca: args[0].clone(),
            port: args[1].parse()?,
            count: args[2].parse()?,
            prefix: args[3].clone(),
            h2: args[4] == "h2",
            duration,
            hold_after: std::env::var("RUSTLS_PROGRAMS_HOLD_AFTER")
                .ok()
                .map(|k| k.parse())
                .transpose()?,
        })
    }

    /// The request with index `i`, or None when the run is over.
    pub fn request(&self, i: usize, started: Instant, stop: &AtomicBool) -> Option<Planned> {
        let more = match self.duration {
            None => i < self.count,
            Some(d) => started.elapsed() < d && !stop.load(Ordering::Relaxed),
        };
        if more && self.hold_after == Some(i) {
            eprintln!("held");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        more.then(|| Planned::new(&self.prefix, i, self.port))
    }
}

/// One request of the plan and the answer it expects.
pub struct Planned {
    pub id: String,
    pub url: String,
    /// The POST body, for every third request.
    pub body: Option<String>,
    pub want: String,
}

impl Planned {
    fn new(prefix: &str, i: usize, port: u16) -> Self {
        let id = format!("{prefix}{i}");
        let body = (i % 3 == 2).then(|| format!("body-{id}"));
        let want = match &body {
            Some(b) => format!("echo:{b}"),
            None => format!("hello {id}"),
        };
        let url = format!("https://127.0.0.1:{port}/?id={id}");
        Planned {
            id,
            url,
            body,
            want,
        }
    }
}

/// Requests made, answered as expected, and not.
#[derive(Default)]
pub struct Tally {
    pub requests: usize,
    pub ok: usize,
    pub mismatch: usize,
}

impl Tally {
    pub fn record(&mut self, planned: &Planned, answer: Result<(u16, Option<String>, String)>) {
        self.requests += 1;
        match answer {
            Ok((200, Some(id), body)) if id == planned.id && body == planned.want => self.ok += 1,
            Ok(other) => {
                eprintln!("request {}: unexpected {other:?}", planned.id);
                self.mismatch += 1;
            }
            Err(e) => {
                eprintln!("request {}: {e}", planned.id);
                self.mismatch += 1;
            }
        }
    }

    /// Prints the JSON line and gives the exit code.
    pub fn finish(&self) -> std::process::ExitCode {
        let line = serde_json::json!({
            "requests": self.requests, "ok": self.ok, "mismatch": self.mismatch
        });
        println!("{line}");
        std::process::ExitCode::from(u8::from(self.mismatch > 0))
    }
}

/// A flag raised by SIGINT, for the clients that run until interrupted.
pub fn stop_on_sigint() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    stop
}
