//! Writes starting corpora for the fuzz targets from the replay fixtures of httpscope-core:
//! `cargo run --bin seeds -- CORPUS_DIR` (fuzz/run.sh does it).

use std::fs;
use std::path::{Path, PathBuf};

use httpscope_core::eventlog::{EventFileReader, EventRecord};

/// Fuzz inputs stay small: libFuzzer mutates short inputs much faster.
const MAX_SEED: usize = 8 * 1024;

fn main() -> std::io::Result<()> {
    let corpus = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/httpscope-core/tests/fixtures");
    let mut seeds = 0;
    for entry in fs::read_dir(&fixtures)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "events") {
            continue;
        }
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let bytes = fs::read(&path)?;
        write(
            &corpus.join("eventlog"),
            &name,
            &bytes[..bytes.len().min(MAX_SEED)],
        )?;
        // decode: groups of consecutive records, each behind a u16 length prefix.
        let Ok(mut reader) = EventFileReader::new(bytes.as_slice()) else {
            continue;
        };
        let (mut group, mut n) = (Vec::new(), 0);
        while let Ok(Some(record)) = reader.next_record() {
            let EventRecord::KernelEvent(raw) = record else {
                continue;
            };
            let raw = &raw[..raw.len().min(usize::from(u16::MAX))];
            if group.len() + raw.len() + 2 > MAX_SEED && !group.is_empty() {
                write(&corpus.join("decode"), &format!("{name}-{n}"), &group)?;
                group.clear();
                n += 1;
            }
            group.extend_from_slice(&(raw.len() as u16).to_le_bytes());
            group.extend_from_slice(raw);
        }
        if !group.is_empty() {
            write(&corpus.join("decode"), &format!("{name}-{n}"), &group)?;
        }
        seeds += n + 2;
    }
    eprintln!("wrote about {seeds} seeds under {}", corpus.display());
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(format!("seed-{name}")), bytes)
}
