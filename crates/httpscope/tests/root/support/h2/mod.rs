//! Helpers of the HTTP/2 and gRPC tests: the real programs and their ground
//! truth ([`programs`]), and the checks of h2 records against what each client sent
//! ([`checks`]).

mod checks;
mod programs;

pub use checks::*;
pub use programs::*;
