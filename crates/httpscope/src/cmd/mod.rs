//! The subcommands, one module each, named after the command it runs.

pub mod doctor;
pub mod generate;
pub mod record;
pub mod replay;
pub mod report;
pub mod stats;
pub mod top;
