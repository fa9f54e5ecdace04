//! Helpers of the HTTP/2 and gRPC tests (issue #12): the real programs and their ground
//! truth ([`programs`]), and the checks of h2 records against what each client sent
//! ([`checks`]).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

mod checks;
mod programs;

pub use checks::*;
pub use programs::*;
