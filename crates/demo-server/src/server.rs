//! HTTP/1.1 accept loop with keep-alive, pipelining and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::{router, Config};

/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the demo routes on `listener` until `shutdown` resolves.
///
/// Logs `listening on <addr>` once ready. After `shutdown` resolves it stops
/// accepting, lets in-flight requests finish (up to 30 s) and returns.
pub async fn serve<F>(listener: TcpListener, config: Config, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()>,
{
    let addr = listener.local_addr()?;
    info!("listening on {addr}");

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true)
        .pipeline_flush(config.pipeline_flush);
    let service = TowerToHyperService::new(router(config));
    let graceful = GracefulShutdown::new();

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!("accept failed: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%peer, "cannot set TCP_NODELAY: {err}");
        }
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                debug!(%peer, "connection closed with error: {err}");
            }
        });
    }

    drop(listener);
    info!("waiting for in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some connections were still busy after {SHUTDOWN_GRACE:?}");
    }
    info!("server stopped");
    Ok(())
}

/// Binds `addr` (use port 0 for an ephemeral port) and serves in a background task.
///
/// Handy for tests: the server stops gracefully when [`RunningServer::shutdown`]
/// is called or the handle is dropped.
pub async fn spawn(addr: SocketAddr, config: Config) -> io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, async {
        // Either an explicit stop or a dropped handle ends the server.
        let _ = stopped.await;
    }));
    Ok(RunningServer { addr, stop, task })
}

/// A server started by [`spawn`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// The address the server actually listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL such as `http://127.0.0.1:34567` (IPv6 hosts are bracketed).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, waits for in-flight requests, and returns the serve result.
    pub async fn shutdown(self) -> io::Result<()> {
        // The receiver only disappears once the server has already stopped.
        let _ = self.stop.send(());
        self.task.await.map_err(io::Error::other)?
    }
}
