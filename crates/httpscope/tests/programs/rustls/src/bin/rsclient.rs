//! The rustls test client on reqwest with its default features (rustls on aws-lc-rs),
//! HTTP/1.1 or h2 by ALPN.
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustls_programs::{ClientArgs, Planned, Result, Tally};

fn main() -> Result<ExitCode> {
    let args = ClientArgs::parse()?;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&args.ca)?)?;
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10));
    if !args.h2 {
        builder = builder.http1_only();
    }
    let client = builder.build()?;
    let stop = rustls_programs::stop_on_sigint();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tally = runtime.block_on(async {
        let (mut tally, started) = (Tally::default(), Instant::now());
        let mut i = 0;
        while let Some(planned) = args.request(i, started, &stop) {
            tally.record(&planned, send(&client, &planned).await);
            i += 1;
        }
        tally
    });
    Ok(tally.finish())
}

async fn send(
    client: &reqwest::Client,
    planned: &Planned,
) -> Result<(u16, Option<String>, String)> {
    let request = match &planned.body {
        Some(body) => client.post(&planned.url).body(body.clone()),
        None => client.get(&planned.url),
    };
    let response = request.header("x-request-id", &planned.id).send().await?;
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, id, response.text().await?))
}
