//! Measuring one merchant's latency while another merchant's plugins
//! misbehave: the well-behaved merchant's signed creates, one at a time, in
//! quiet and attacked phases that alternate (so that a drift of the
//! machine's own load falls on both), the attack sent from a runtime of its
//! own (so that the measuring client never waits behind it for a worker).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use test_support::callbacks::{post, signed_v2};
use test_support::process::GatewayProcess;

use super::{KEY, order, timed_create};

/// How the hostile merchant's plugin misbehaves (its order id: `loop`,
/// `sleep`, `bomb`…) and how many of its callbacks are in flight for each.
pub type Hostile = [(&'static str, usize)];

/// The well-behaved merchant's p99, quiet and attacked.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub quiet: Duration,
    pub attacked: Duration,
}

/// `rounds` of a quiet phase and an attacked phase of `samples` creates
/// each (every one must succeed).
pub async fn measure(
    gateway: &GatewayProcess,
    hostile: &'static Hostile,
    rounds: usize,
    samples: usize,
) -> Measured {
    let client = reqwest::Client::new();
    good_latencies(&client, gateway, 30).await; // warm up
    let (mut quiet, mut attacked) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        quiet.extend(good_latencies(&client, gateway, samples).await);
        let attack = Attack::start(&gateway.url, hostile);
        tokio::time::sleep(Duration::from_millis(300)).await;
        attacked.extend(good_latencies(&client, gateway, samples).await);
        attack.stop().await;
    }
    Measured {
        quiet: p99(quiet),
        attacked: p99(attacked),
    }
}

/// The hostile merchant's callbacks, each task sending the next as soon as
/// the last was answered.
struct Attack {
    stop: Arc<AtomicBool>,
    runner: std::thread::JoinHandle<()>,
}

impl Attack {
    fn start(base: &str, hostile: &'static Hostile) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let (base, stopped) = (base.to_string(), stop.clone());
        let runner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the attack's runtime");
            runtime.block_on(async move {
                let client = reqwest::Client::new();
                let tasks: Vec<_> = hostile
                    .iter()
                    .flat_map(|&(behaviour, tasks)| std::iter::repeat_n(behaviour, tasks))
                    .map(|behaviour| {
                        let (base, stop, client) = (base.clone(), stopped.clone(), client.clone());
                        tokio::spawn(async move {
                            while !stop.load(Ordering::Relaxed) {
                                let body = serde_json::json!({"activity": "newInstance",
                                    "orderId": behaviour, "orderLineId": order()});
                                let (url, bytes) = signed_v2(&base, "evil", KEY, &body);
                                post(&client, &url, bytes).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("a hostile task ended cleanly");
                }
            });
        });
        Attack { stop, runner }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || self.runner.join())
            .await
            .expect("joined")
            .expect("the attack ended cleanly");
    }
}

/// Signed creates of the well-behaved merchant, one at a time; every one
/// succeeds.
async fn good_latencies(
    client: &reqwest::Client,
    gateway: &GatewayProcess,
    count: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let (took, code) = timed_create(client, &gateway.url, "good").await;
        assert_eq!(code, "000000");
        samples.push(took);
    }
    samples
}

/// The 99th percentile of `samples`.
fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}
