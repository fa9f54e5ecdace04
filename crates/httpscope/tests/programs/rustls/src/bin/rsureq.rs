//! The rustls test client on ureq 3 (blocking, rustls on ring), HTTP/1.1 only.
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_programs::{ClientArgs, Planned, Result, Tally};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

fn main() -> Result<ExitCode> {
    let args = ClientArgs::parse()?;
    if args.h2 {
        return Err("ureq speaks HTTP/1.1 only".into());
    }
    let ca = Certificate::from_pem(&std::fs::read(&args.ca)?)?;
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let stop = rustls_programs::stop_on_sigint();
    let (mut tally, started) = (Tally::default(), Instant::now());
    let mut i = 0;
    while let Some(planned) = args.request(i, started, &stop) {
        tally.record(&planned, send(&agent, &planned));
        i += 1;
    }
    Ok(tally.finish())
}

fn send(agent: &ureq::Agent, planned: &Planned) -> Result<(u16, Option<String>, String)> {
    let mut response = match &planned.body {
        Some(body) => agent
            .post(&planned.url)
            .header("x-request-id", &planned.id)
            .send(body.as_str())?,
        None => agent
            .get(&planned.url)
            .header("x-request-id", &planned.id)
            .call()?,
    };
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, id, response.body_mut().read_to_string()?))
}
