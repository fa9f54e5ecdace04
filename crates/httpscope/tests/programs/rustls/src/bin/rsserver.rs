//! The rustls test server on the aws-lc-rs provider (rustls's default).
fn main() -> rustls_programs::Result<()> {
    rustls_programs::serve(rustls::crypto::aws_lc_rs::default_provider())
}
