//! Shapes drawn with text: a rate sparkline and a latency histogram's bars.

use httpscope_core::analysis::{latency_buckets, EndpointStats};

/// Block characters from lowest to highest; idle stretches are blank.
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Per-second counts (oldest first) as `width` characters, each summing an equal stretch,
/// scaled to the busiest stretch.
pub fn sparkline(counts: &[u32], width: usize) -> String {
    if width == 0 || counts.is_empty() {
        return String::new();
    }
    let per_char = counts.len().div_ceil(width);
    let sums: Vec<u64> = counts
        .chunks(per_char)
        .map(|chunk| chunk.iter().map(|n| u64::from(*n)).sum())
        .collect();
    let max = sums.iter().copied().max().unwrap_or(0);
    sums.iter()
        .map(|&sum| match sum {
            0 => ' ',
            _ => {
                let level = (sum * LEVELS.len() as u64).div_ceil(max.max(1)) - 1;
                LEVELS[level.min(LEVELS.len() as u64 - 1) as usize]
            }
        })
        .collect()
}

/// The endpoint's latency histogram, one line per log-spaced bucket: bound, count, bar.
pub fn histogram_lines(stats: &EndpointStats, bar_width: usize) -> Vec<String> {
    let buckets = latency_buckets(stats);
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    buckets
        .iter()
        .map(|bucket| {
            let label = bucket
                .le_ms
                .map_or_else(|| "     more".to_owned(), |ms| format!("≤{ms:>8.2}"));
            let bar = (bucket.count * bar_width as u64).div_ceil(max) as usize;
            format!("{label} ms {:>7} {}", bucket.count, "█".repeat(bar))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_busiest_stretch() {
        let mut counts = [0u32; 60];
        counts[56..].copy_from_slice(&[8, 8, 8, 8]);
        counts[0] = 16;
        assert_eq!(sparkline(&counts, 15), "▄             █");
        assert_eq!(sparkline(&[0; 60], 15), " ".repeat(15));
        assert_eq!(sparkline(&[1, 2, 3, 4, 5, 6, 7, 8], 8), "▁▂▃▄▅▆▇█");
    }
}
