//! One measured run against one server (or several replicas of one): which callbacks (the mix), how they
//! are paced (closed loop: N senders, each sending the next as soon as the
//! last is answered; open loop: a fixed rate, each request's latency counted
//! from its scheduled time so that a stalled server is not excused), and
//! what came out (throughput, latency percentiles, the server's CPU per
//! callback, and every answer that failed a check).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::client::{Callback, Checked, Connection};

/// Which callbacks a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Retries of creates that completed before the run.
    Replays,
    /// A new order every time.
    Creates,
    /// 40 % new creates, 30 % retries, 20 % renewals, 10 % queries.
    Mixed,
}

impl Mix {
    /// Orders created before the run (for replays, renewals and queries).
    pub fn warm_orders(self) -> usize {
        match self {
            Mix::Creates => 0,
            Mix::Replays | Mix::Mixed => 1000,
        }
    }

    fn callback(self, merchant: &str, run: &str, sender: usize, n: usize) -> Callback {
        let fresh = || format!("LG{run}S{sender:03}N{n:09}");
        let warm = || {
            warm_order(
                run,
                (sender * 7919 + n * 104_729) % self.warm_orders().max(1),
            )
        };
        match (self, n % 10) {
            (Mix::Creates, _) | (Mix::Mixed, 0..=3) => Callback::create(merchant, &fresh()),
            (Mix::Replays, _) | (Mix::Mixed, 4..=6) => Callback::create(merchant, &warm()),
            (Mix::Mixed, 7 | 8) => Callback::renew(merchant, &warm(), &format!("R{}", fresh())),
            (Mix::Mixed, _) => Callback::query(merchant, &warm()),
        }
    }
}

/// The order id of warm order `i` of a run.
pub fn warm_order(run: &str, i: usize) -> String {
    format!("LG{run}W{i:06}")
}

/// How a run is paced.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    Closed { in_flight: usize },
    Open { per_second: u64, connections: usize },
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Measured {
    pub answered: usize,
    pub wall: Duration,
    pub latencies: Vec<Duration>,
    /// Answers other than 000000, by code.
    pub refused: BTreeMap<String, usize>,
    pub broken: Vec<String>,
    pub server_cpu: Duration,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.answered as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    pub fn cpu_per_callback(&self) -> Duration {
        self.server_cpu / u32::try_from(self.answered.max(1)).unwrap_or(u32::MAX)
    }
}

/// The `p` quantile of `samples` (0 when there are none).
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(at).copied().unwrap_or_default()
}

/// A server under load: where to send, and which process to charge.
pub struct Target<'a> {
    /// One server, or several replicas: sender k sends to `urls[k % n]`.
    pub urls: &'a [String],
    pub key: &'a str,
    pub merchant: &'a str,
    /// The servers' processes: their CPU time together is the run's.
    pub pids: &'a [u32],
}

impl Target<'_> {
    fn url(&self, sender: usize) -> &str {
        &self.urls[sender % self.urls.len().max(1)]
    }

    fn cpu(&self) -> Duration {
        self.pids.iter().map(|&pid| process_cpu(pid)).sum()
    }
}

/// Creates the mix's warm orders (not measured).
pub async fn warm_up(target: &Target<'_>, mix: Mix, run: &str) -> anyhow::Result<()> {
    let mut connection = Connection::open(target.url(0), target.key).await?;
    for i in 0..mix.warm_orders() {
        let callback = Callback::create(target.merchant, &warm_order(run, i));
        let (_, checked) = connection.send(&callback, Instant::now()).await?;
        if !matches!(checked, Checked::Ok) {
            anyhow::bail!("warm-up create {i} failed: {checked:?}");
        }
    }
    Ok(())
}

/// Runs `mix` at `pace` for `length` against `target`.
pub async fn run(
    target: &Target<'_>,
    mix: Mix,
    pace: Pace,
    length: Duration,
    run: &str,
) -> anyhow::Result<Measured> {
    let (senders, interval) = match pace {
        Pace::Closed { in_flight } => (in_flight, None),
        Pace::Open {
            per_second,
            connections,
        } => {
            let each = Duration::from_secs_f64(connections as f64 / per_second.max(1) as f64);
            (connections, Some(each))
        }
    };
    let cpu_before = target.cpu();
    let started = Instant::now();
    let stop_at = started + length;
    let mut tasks = Vec::with_capacity(senders);
    for sender in 0..senders {
        let mut connection = Connection::open(target.url(sender), target.key).await?;
        let (merchant, run) = (target.merchant.to_string(), run.to_string());
        // Open loop: sender k's i-th request is due at start + (i + k/senders) × interval.
        let offset = interval.map(|each| each.mul_f64(sender as f64 / senders as f64));
        tasks.push(tokio::spawn(async move {
            let mut measured = Measured::default();
            let mut n = 0;
            loop {
                let due = match (interval, offset) {
                    (Some(each), Some(offset)) => started + offset + each * n as u32,
                    _ => Instant::now(),
                };
                if due >= stop_at {
                    break;
                }
                // Never a timer when due: tokio's timers tick by the
                // millisecond, which would pace a closed loop.
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let callback = mix.callback(&merchant, &run, sender, n);
                let (took, checked) = connection.send(&callback, due).await?;
                measured.latencies.push(took);
                match checked {
                    Checked::Ok => {}
                    Checked::Refused(code) => *measured.refused.entry(code).or_default() += 1,
                    Checked::Broken(why) => measured.broken.push(why),
                }
                n += 1;
            }
            anyhow::Ok(measured)
        }));
    }
    let mut total = Measured::default();
    for task in tasks {
        let measured = task.await??;
        total.answered += measured.latencies.len();
        total.latencies.extend(measured.latencies);
        for (code, count) in measured.refused {
            *total.refused.entry(code).or_default() += count;
        }
        total.broken.extend(measured.broken);
    }
    total.wall = started.elapsed();
    total.server_cpu = target.cpu().saturating_sub(cpu_before);
    Ok(total)
}

/// User + system CPU time of process `pid` so far (all its threads).
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    Duration::from_micros(crate::threads::cpu_ticks(&stat) * crate::threads::MICROS_PER_TICK)
}
