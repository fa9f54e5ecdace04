//! A load the kernel refused, told in one sentence that names what the kernel lacks where
//! the verifier says so; the verifier's whole log goes into a file the sentence names.

use std::path::PathBuf;

use aya::programs::ProgramError;

/// Why the kernel refused a program, and where its verifier log was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub log: Option<PathBuf>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(log) = &self.log {
            write!(f, " (the verifier's log is in {})", log.display())?;
        }
        Ok(())
    }
}

impl Refusal {
    /// A program's load or attach error; a verifier log is saved for `program`.
    pub(crate) fn of_program(program: &str, err: &ProgramError) -> Self {
        let ProgramError::LoadError {
            io_error,
            verifier_log,
        } = err
        else {
            return Self {
                reason: err.to_string(),
                log: None,
            };
        };
        let text = format!("{verifier_log:?}");
        Self {
            reason: missing_feature(&text).unwrap_or_else(|| {
                format!(
                    "the verifier rejected it ({io_error}): {}",
                    last_word(&text)
                )
            }),
            log: save_log(program, &text),
        }
    }
}

/// What the verifier's words say the kernel lacks, when they say it.
fn missing_feature(log: &str) -> Option<String> {
    for marker in ["unknown func ", "invalid func ", "cannot use helper "] {
        if let Some(at) = log.find(marker) {
            let helper: String = log[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Some(format!("this kernel lacks the BPF helper {helper}"));
        }
    }
    if log.contains("unrecognized bpf_ld_imm64") {
        return Some("this kernel lacks BPF callback functions (bpf_loop's)".into());
    }
    if log.contains("invalid atomic") || log.contains("BPF_ATOMIC uses invalid") {
        return Some("this kernel lacks BPF atomic fetch instructions".into());
    }
    None
}

/// The verifier's last line that says something (its statistics lines do not).
fn last_word(log: &str) -> &str {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|line| {
            !line.is_empty()
                && !line.starts_with("processed ")
                && !line.starts_with("verification time")
                && !line.starts_with("stack depth")
        })
        .unwrap_or("no log")
}

fn save_log(program: &str, text: &str) -> Option<PathBuf> {
    if text.trim().is_empty() {
        return None;
    }
    let path = std::env::temp_dir().join(format!("httpscope-verifier-{program}.log"));
    match std::fs::write(&path, text) {
        Ok(()) => Some(path),
        Err(err) => {
            tracing::debug!(%err, path = %path.display(), "the verifier's log could not be saved");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_helper_an_old_kernel_lacks() {
        let log = "0: (85) call bpf_loop#181\nunknown func bpf_loop#181\nprocessed 3 insns";
        assert_eq!(
            missing_feature(log).as_deref(),
            Some("this kernel lacks the BPF helper bpf_loop")
        );
    }

    #[test]
    fn otherwise_quotes_the_verifiers_last_word() {
        let log = "R3 min value is negative, either use unsigned or 'var &= const'\nprocessed 900 insns (limit 1000000)\n";
        assert_eq!(missing_feature(log), None);
        assert_eq!(
            last_word(log),
            "R3 min value is negative, either use unsigned or 'var &= const'"
        );
    }
}
