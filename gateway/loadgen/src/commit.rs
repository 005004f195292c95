//! The other half of a create's CPU baseline: one durable commit, measured
//! alone.
//!
//! Issue 15 holds a first-time create to 1.5× (the native handler's CPU +
//! one durable commit's): the native handler keeps nothing, and a create
//! must keep its order line durably before it answers. What a merchant's
//! own handler would pay for that is measured here, in a process of its own
//! (so that the load generator's work is not charged to it), at the open
//! loop's rate: [`gateway_store::order_log`]'s one synced SQLite
//! transaction per order line, under a random-looking key.

use std::path::Path;
use std::time::{Duration, Instant};

use gateway_store::order_log::OrderLog;

use crate::load::process_cpu;

/// What [`run`] measured.
#[derive(Debug)]
pub struct Committed {
    pub commits: u64,
    pub wall: Duration,
    /// The process's CPU time (user + system) over the commits.
    pub cpu: Duration,
}

impl Committed {
    pub fn cpu_per_commit(&self) -> Duration {
        self.cpu / u32::try_from(self.commits.max(1)).unwrap_or(u32::MAX)
    }

    /// The line `loadgen commit` prints and [`Committed::parse`] reads.
    pub fn line(&self) -> String {
        format!(
            "commits {} wall_us {} cpu_us {}",
            self.commits,
            self.wall.as_micros(),
            self.cpu.as_micros()
        )
    }

    pub fn parse(line: &str) -> anyhow::Result<Committed> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |name: &str| -> anyhow::Result<u64> {
            let at = words
                .iter()
                .position(|w| *w == name)
                .ok_or_else(|| anyhow::anyhow!("no `{name}` in `{line}`"))?;
            let value = words
                .get(at + 1)
                .ok_or_else(|| anyhow::anyhow!("no value after `{name}` in `{line}`"))?;
            Ok(value.parse()?)
        };
        Ok(Committed {
            commits: number("commits")?,
            wall: Duration::from_micros(number("wall_us")?),
            cpu: Duration::from_micros(number("cpu_us")?),
        })
    }
}

/// Commits one order at a time at `per_second` for `length`, in a new
/// database under `dir`.
pub fn run(dir: &Path, per_second: u64, length: Duration) -> anyhow::Result<Committed> {
    let log = OrderLog::create(&dir.join("orders.db"))?;
    let interval = Duration::from_secs_f64(1.0 / per_second.max(1) as f64);
    let cpu_before = process_cpu(std::process::id());
    let started = Instant::now();
    let mut commits = 0u64;
    loop {
        let due = started + interval * u32::try_from(commits).unwrap_or(u32::MAX);
        if due >= started + length {
            break;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // A random-looking key, as an order line's is to a B-tree.
        let key = format!("{:016x}", commits.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        log.commit(&key, &format!("i-{key}"))?;
        commits += 1;
    }
    Ok(Committed {
        commits,
        wall: started.elapsed(),
        cpu: process_cpu(std::process::id()).saturating_sub(cpu_before),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_at_the_rate_asked_and_reports_it_in_one_line() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let committed = run(dir.path(), 200, Duration::from_millis(250))?;
        assert_eq!(committed.commits, 50);
        let read = Committed::parse(&committed.line())?;
        assert_eq!(read.commits, 50);
        assert_eq!(
            read.cpu,
            Duration::from_micros(committed.cpu.as_micros() as u64)
        );
        Ok(())
    }

    #[test]
    fn a_line_without_its_figures_is_an_error() {
        assert!(Committed::parse("commits 5 wall_us 10").is_err());
        assert!(Committed::parse("commits x wall_us 10 cpu_us 3").is_err());
    }
}
