//! The cost ladder's switch: `bench/run.sh --ladder` sets `HTTPSCOPE_BENCH_STAGE` so
//! that a capture stops after one step of its work, and each step's cost is measured
//! apart. Never a user-facing option: a capture stopped early writes nothing whole.

/// The environment variable the benchmark sets.
pub const BENCH_STAGE_ENV: &str = "HTTPSCOPE_BENCH_STAGE";

/// The last step a capture runs; the whole product (step 10) is no stage at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BenchStage(u8);

/// What each step adds, as the benchmark's table names it.
const STEPS: [&str; 9] = [
    "programs attached, returning at once",
    "plus the port check and the connection-state lookup",
    "plus describing the call and the capture budget's framing",
    "plus the copy from user memory",
    "plus the ring reserve, the record discarded unseen",
    "plus the reader draining the ring and dropping each record",
    "plus decoding events and keeping connections",
    "plus parsing, pairing, routes and the summary",
    "plus formatting each line, written nowhere",
];

impl BenchStage {
    /// The stage `HTTPSCOPE_BENCH_STAGE` asks for: 1 to 9; unset, empty or 10 is none.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(BENCH_STAGE_ENV).ok()?;
        match value.trim().parse::<u8>() {
            Ok(n @ 1..=9) => Some(Self(n)),
            Ok(10) => None,
            _ if value.trim().is_empty() => None,
            _ => {
                tracing::warn!(
                    value,
                    "{BENCH_STAGE_ENV} is not a stage from 1 to 10; ignored"
                );
                None
            }
        }
    }

    pub fn number(self) -> u8 {
        self.0
    }

    pub fn describe(self) -> &'static str {
        STEPS[usize::from(self.0 - 1)]
    }

    /// The BPF programs' `bench_stage`: where they stop, or 0 to run whole.
    pub(crate) fn kernel_stage(stage: Option<Self>) -> u32 {
        match stage {
            Some(Self(n @ 1..=5)) => u32::from(n),
            _ => 0,
        }
    }

    /// The reader drops each record without decoding it.
    pub fn drops_records(self) -> bool {
        self.0 <= 6
    }

    /// Events are decoded and their connections kept, their bytes never parsed.
    pub fn skips_parsing(self) -> bool {
        self.0 <= 7
    }

    /// No line is formatted.
    pub fn skips_lines(self) -> bool {
        self.0 <= 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_has_a_step_and_only_the_kernels_reach_the_programs() {
        for n in 1..=9 {
            assert!(!BenchStage(n).describe().is_empty());
        }
        assert_eq!(BenchStage::kernel_stage(None), 0);
        assert_eq!(BenchStage::kernel_stage(Some(BenchStage(5))), 5);
        assert_eq!(BenchStage::kernel_stage(Some(BenchStage(6))), 0);
        assert!(BenchStage(6).drops_records() && !BenchStage(7).drops_records());
        assert!(BenchStage(7).skips_parsing() && !BenchStage(8).skips_parsing());
        assert!(BenchStage(8).skips_lines() && !BenchStage(9).skips_lines());
    }
}
