//! Measurements as JSON lines, for `scripts/plot-scaling` to draw: one
//! object per measured run, appended to the file named by `--results`.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

/// Where results go, and what the runs vary (`concurrency`, `merchants`,
/// `store_records`).
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    pub file: Option<PathBuf>,
    pub dimension: Option<String>,
    /// The value of the dimension for the whole invocation (wins over the
    /// run's own, e.g. the concurrency of a store-size run).
    pub x: Option<f64>,
}

impl Recorder {
    /// Appends one run: `mix` against `server`, at `x` (or the recorder's).
    pub fn record(
        &self,
        mix: &str,
        server: &str,
        x: Option<f64>,
        per_second: f64,
        p99_ms: f64,
        cpu_us: Option<f64>,
    ) -> anyhow::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let line: Value = json!({
            "dimension": self.dimension.as_deref().unwrap_or("concurrency"),
            "x": self.x.or(x),
            "mix": mix,
            "server": server,
            "per_second": per_second,
            "p99_ms": p99_ms,
            "cpu_us": cpu_us,
        });
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?;
        writeln!(out, "{line}")?;
        Ok(())
    }
}
