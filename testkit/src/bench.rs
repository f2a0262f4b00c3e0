//! The small harness the benchmark binaries share: environment knobs, section selection, the
//! `bench: <name> <value> <unit>` output lines and order statistics.

use std::str::FromStr;

/// `name` from the environment, parsed, or `default` when unset or blank.
pub fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid number")),
        _ => Ok(default),
    }
}

/// The sections named on the command line (`cargo bench` passes `--bench`; any other argument
/// names a section). None named: every section runs.
#[derive(Clone, Debug, Default)]
pub struct Sections(Vec<String>);

impl Sections {
    pub fn from_args() -> Sections {
        Sections(
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .collect(),
        )
    }

    pub fn runs(&self, section: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|s| section.contains(s.as_str()))
    }
}

/// Prints one machine-readable result line.
pub fn report(name: &str, value: f64, unit: &str) {
    match unit {
        "ops/s" | "us" => println!("bench: {name} {value:.0} {unit}"),
        _ => println!("bench: {name} {value:.2} {unit}"),
    }
}

/// Nearest-rank percentile of sorted samples (0 for none).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB, from `/proc/<pid>/status`.
pub fn process_memory_kib(pid: u32) -> Result<(f64, f64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Result<f64, String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Sorts `samples` and returns the middle one.
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&sorted, 0.5), 50);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert!(Sections::default().runs("anything"));
        assert!(Sections(vec!["list".into()]).runs("list_10k"));
        assert!(!Sections(vec!["list".into()]).runs("watch"));
    }
}
