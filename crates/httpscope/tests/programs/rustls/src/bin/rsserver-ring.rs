//! The rustls test server on the ring provider.
fn main() -> rustls_programs::Result<()> {
    rustls_programs::serve(rustls::crypto::ring::default_provider())
}
