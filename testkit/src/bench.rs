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

/// CPU time (user + system, in clock ticks) of a process and its live children, per process:
/// take one before and one after a measured window and subtract with [`CpuTicks::since`]. CPU
/// time, unlike throughput, barely depends on what else the machine runs, so it compares two
/// ways of doing the same work on a shared machine.
#[derive(Clone, Debug, Default)]
pub struct CpuTicks(std::collections::HashMap<u32, u64>);

impl CpuTicks {
    /// `pid` and every process whose parent is `pid` (a Postgres postmaster and its backends).
    pub fn of_tree(pid: u32) -> CpuTicks {
        let mut ticks = std::collections::HashMap::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return CpuTicks(ticks);
        };
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, t)) = stat_ticks(p) {
                if p == pid || ppid == pid {
                    ticks.insert(p, t);
                }
            }
        }
        CpuTicks(ticks)
    }

    /// This process.
    pub fn of_self() -> CpuTicks {
        let pid = std::process::id();
        CpuTicks(stat_ticks(pid).map(|(_, t)| (pid, t)).into_iter().collect())
    }

    /// Seconds of CPU used between `earlier` and now (processes born since count in full).
    pub fn since(&self, earlier: &CpuTicks) -> f64 {
        let ticks: u64 = self
            .0
            .iter()
            .map(|(pid, t)| t.saturating_sub(earlier.0.get(pid).copied().unwrap_or(0)))
            .sum();
        ticks as f64 / clock_ticks_per_second()
    }
}

/// The parent pid and utime + stime of `/proc/<pid>/stat`.
fn stat_ticks(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields from 3 on: state(3) ppid(4) … utime(14) stime(15).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `/proc` reports CPU time in USER_HZ, which Linux fixes at 100 on every architecture it
/// exports to user space (`sysconf(_SC_CLK_TCK)`).
fn clock_ticks_per_second() -> f64 {
    100.0
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
