//! Where a server's CPU goes, thread by thread: its threads' CPU time and
//! context switches read from `/proc/{pid}/task` before and after a run
//! (`loadgen run --threads`). Threads are grouped by name (tokio's workers
//! share one), so the table says which kind of thread pays, per callback.

use std::collections::BTreeMap;

/// A clock tick (USER_HZ, 100 on Linux) in microseconds.
pub const MICROS_PER_TICK: u64 = 10_000;

/// One thread's counters so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    /// User + system CPU time, in clock ticks.
    ticks: u64,
    /// Times it gave up its core (waiting: a lock, I/O, a wake-up).
    voluntary: u64,
    /// Times it was preempted.
    involuntary: u64,
}

/// Every thread of a process, by thread id: its name and counters.
#[derive(Debug, Default)]
pub struct Snapshot(BTreeMap<u32, (String, Counters)>);

/// Reads every thread of process `pid` (threads it cannot read are left out).
pub fn snapshot(pid: u32) -> Snapshot {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Snapshot(threads);
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).ok();
        let (Some(name), Some(stat), Some(status)) = (read("comm"), read("stat"), read("status"))
        else {
            continue;
        };
        threads.insert(tid, (name.trim().to_string(), counters(&stat, &status)));
    }
    Snapshot(threads)
}

/// User + system CPU time in a `/proc/…/stat` line, in clock ticks (0 if
/// it cannot be read).
pub fn cpu_ticks(stat: &str) -> u64 {
    // After the parenthesised command: utime is field 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn counters(stat: &str, status: &str) -> Counters {
    let line = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Counters {
        ticks: cpu_ticks(stat),
        voluntary: line("voluntary_ctxt_switches:"),
        involuntary: line("nonvoluntary_ctxt_switches:"),
    }
}

/// What each kind of thread spent between `before` and `after`, per one of
/// `callbacks`: a Markdown table, busiest first. Threads that spent nothing
/// and hardly switched are left out.
pub fn table(before: &Snapshot, after: &Snapshot, callbacks: usize) -> String {
    let mut kinds: BTreeMap<&str, (usize, Counters)> = BTreeMap::new();
    for (tid, (name, now)) in &after.0 {
        let then = before.0.get(tid).map(|(_, c)| *c).unwrap_or_default();
        let kind = kinds.entry(name.as_str()).or_default();
        kind.0 += 1;
        kind.1.ticks += now.ticks.saturating_sub(then.ticks);
        kind.1.voluntary += now.voluntary.saturating_sub(then.voluntary);
        kind.1.involuntary += now.involuntary.saturating_sub(then.involuntary);
    }
    let mut rows: Vec<_> = kinds
        .into_iter()
        .filter(|(_, (_, c))| c.ticks > 0 || c.voluntary > callbacks as u64 / 100)
        .collect();
    rows.sort_by_key(|(_, (_, c))| std::cmp::Reverse(c.ticks));
    let per = |n: u64| n as f64 / callbacks.max(1) as f64;
    let mut out = String::from(
        "| threads | how many | CPU / callback | voluntary switches / callback | preempted / callback |\n\
         |---|---|---|---|---|\n",
    );
    for (name, (count, c)) in rows {
        out.push_str(&format!(
            "| {name} | {count} | {:.0} µs | {:.2} | {:.2} |\n",
            per(c.ticks * MICROS_PER_TICK),
            per(c.voluntary),
            per(c.involuntary)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_stat_and_status() {
        let stat = "42 (tokio-rt (x) worker) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0";
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t500\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(
            counters(stat, status),
            Counters {
                ticks: 150,
                voluntary: 500,
                involuntary: 7
            }
        );
    }

    #[test]
    fn the_table_groups_threads_by_name_and_divides_by_callbacks() {
        let thread = |name: &str, ticks, voluntary| {
            (
                name.to_string(),
                Counters {
                    ticks,
                    voluntary,
                    involuntary: 0,
                },
            )
        };
        let before = Snapshot(BTreeMap::from([
            (1, thread("worker", 100, 1000)),
            (2, thread("worker", 100, 1000)),
            (3, thread("writer", 0, 0)),
        ]));
        let after = Snapshot(BTreeMap::from([
            (1, thread("worker", 200, 2000)),
            (2, thread("worker", 200, 2000)),
            (3, thread("writer", 50, 500)),
            (4, thread("idle", 0, 0)),
        ]));
        let table = table(&before, &after, 1000);
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(
            rows,
            [
                "| worker | 2 | 2000 µs | 2.00 | 0.00 |",
                "| writer | 1 | 500 µs | 0.50 | 0.00 |"
            ]
        );
    }
}
