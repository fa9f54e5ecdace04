//! `httpscope generate`: man pages and shell completions, from the clap definitions.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, GenerateArgs, GenerateTarget};

const BIN: &str = "httpscope";

/// Where each shell looks for completions, under an installation prefix's `share`.
const COMPLETION_PATHS: [(Shell, &str); 3] = [
    (Shell::Bash, "bash-completion/completions/httpscope"),
    (Shell::Zsh, "zsh/site-functions/_httpscope"),
    (Shell::Fish, "fish/vendor_completions.d/httpscope.fish"),
];

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    match &args.target {
        GenerateTarget::Man { out } => man_pages(out),
        GenerateTarget::Completions { shell, out } => match (shell, out) {
            (Some(shell), _) => {
                clap_complete::generate(*shell, &mut Cli::command(), BIN, &mut io::stdout());
                Ok(())
            }
            (None, Some(share)) => completions(share),
            (None, None) => anyhow::bail!("give a shell, or --out SHARE_DIR"),
        },
    }
}

/// `httpscope.1` and one page per visible subcommand (`httpscope-record.1`, ...).
fn man_pages(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}

/// Bash, zsh and fish completions at their usual places under `share`.
fn completions(share: &Path) -> anyhow::Result<()> {
    for (shell, relative) in COMPLETION_PATHS {
        let path = share.join(relative);
        let write = || -> io::Result<()> {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut file = io::BufWriter::new(fs::File::create(&path)?);
            clap_complete::generate(shell, &mut Cli::command(), BIN, &mut file);
            file.flush()
        };
        write().with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn man_pages_cover_the_commands_and_their_flags() {
        let dir = std::env::temp_dir().join(format!("httpscope-man-{}", std::process::id()));
        man_pages(&dir).unwrap();
        let main = fs::read_to_string(dir.join("httpscope.1")).unwrap();
        assert!(main.starts_with(".ie"), "not roff: {}", &main[..80]);
        assert!(main.contains(".TH httpscope 1"), "{main}");
        let record = fs::read_to_string(dir.join("httpscope-record.1")).unwrap();
        assert!(record.contains("all\\-ports"), "{record}");
        assert!(record.contains("SIGHUP"), "{record}");
        assert!(dir.join("httpscope-doctor.1").exists());
        // The generator itself is not for users.
        assert!(!dir.join("httpscope-generate.1").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn completions_land_where_each_shell_looks() {
        let share = std::env::temp_dir().join(format!("httpscope-compl-{}", std::process::id()));
        completions(&share).unwrap();
        for (shell, relative) in COMPLETION_PATHS {
            let text = fs::read_to_string(share.join(relative)).unwrap();
            assert!(text.contains("--all-ports"), "{shell}: {text}");
            assert!(text.contains("record"), "{shell}");
        }
        fs::remove_dir_all(&share).unwrap();
    }
}
