//! `gateway serve` as a child process: started on a configuration file, its
//! JSON log appended to a file the test reads, SIGTERM or SIGKILL on demand,
//! killed on drop. Restarting on the same configuration (and so the same
//! store) is starting another one.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `gateway serve`.
pub struct GatewayProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin listener's `http://127.0.0.1:PORT`, if it has one.
    pub admin_url: Option<String>,
    log: PathBuf,
}

impl GatewayProcess {
    /// Starts `binary serve --config config`, appending its JSON log to `log`,
    /// and waits until it says where it listens.
    pub fn start(binary: &Path, config: &Path, log: &Path) -> GatewayProcess {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let mut child = Command::new(binary)
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("the gateway starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("the gateway says where it listens");
        let addr = first_line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("unexpected first line `{first_line}`; log:\n{log}")
            })
            .to_string();
        let admin_url = first_line
            .split("admin on http://")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c == ')' || c.is_whitespace()).next())
            .map(|admin| format!("http://{admin}"));
        GatewayProcess {
            child,
            url: format!("http://{addr}"),
            admin_url,
            log: log.to_path_buf(),
        }
    }

    /// One sample of `/metrics` on the admin listener: the value of the series
    /// whose line starts with `series` (name and labels as printed), if any.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let admin = self
            .admin_url
            .as_ref()
            .expect("the gateway has an admin listener");
        let text = reqwest::get(format!("{admin}/metrics"))
            .await
            .and_then(|answer| answer.error_for_status())
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics is text");
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    /// Kills the process outright (SIGKILL): no drain, no cleanup.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        self.child.wait().expect("the gateway exits")
    }

    /// The log so far (every process started on the same log file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until a log line contains every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
            {
                return line.to_string();
            }
            assert!(
                started.elapsed() < timeout,
                "no log line with {needles:?} within {timeout:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `executing` record of the misbehave plugin, from the gateway's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    pub operation: String,
    pub subject: String,
    pub idempotency_key: String,
    pub attempt: u32,
}

/// Every execution of the misbehave plugin on `subject` (an order or
/// instance id) in `log`.
pub fn executions(log: &str, subject: &str) -> Vec<Execution> {
    let wanted = format!("subject=\\\"{subject}\\\"");
    log.lines()
        .filter(|line| line.contains("\"executing\"") && line.contains(&wanted))
        .map(|line| Execution {
            operation: plugin_field(line, "operation"),
            subject: plugin_field(line, "subject"),
            idempotency_key: plugin_field(line, "idempotency_key"),
            attempt: plugin_field(line, "attempt").parse().unwrap_or(0),
        })
        .collect()
}

/// A plugin log field (`key=\"value\"` inside the JSON line's `fields`).
fn plugin_field(line: &str, key: &str) -> String {
    let marker = format!("{key}=\\\"");
    line.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split("\\\"").next())
        .unwrap_or_default()
        .to_string()
}

/// One number from a gateway's SQLite store, opened read-only: `sql` with
/// `bind` as `$1`.
pub async fn store_number(database: &Path, sql: &'static str, bind: &str) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(database, flags)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", database.display()));
    conn.query_row(sql, [bind], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
