//! `gateway admin …` and `gateway plugin upload`: the admin API from the
//! command line, for people (readable tables) and scripts (`--output json`,
//! exit codes). Every command reads `--url`/`GATEWAY_ADMIN_URL` and
//! `--token`/`GATEWAY_ADMIN_TOKEN`.
//!
//! Exit codes: 0 done; 2 the API refused the request (a 4xx: the message
//! names the reason and its stable code); 3 the gateway could not be reached
//! or failed (a 5xx); 4 `plugin shadow` found a success that would become a
//! failure; 1 anything else (a file that cannot be read).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// The admin listener, e.g. http://127.0.0.1:9090.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_URL",
        global = true,
        default_value = "http://127.0.0.1:9090"
    )]
    url: String,
    /// An operator or merchant token.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    token: Option<String>,
    /// How to print answers.
    #[arg(long, value_enum, global = true, default_value = "table")]
    output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Merchants: list, show, create, update.
    #[command(subcommand)]
    Merchants(MerchantCommand),
    /// Access keys: add, retire.
    #[command(subcommand)]
    Keys(KeyCommand),
    /// Plugin versions: list, show, activate, rollback, delete.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Merchant tokens: create, list, revoke (operator only).
    #[command(subcommand)]
    Tokens(TokenCommand),
    /// The callback log of a merchant, newest first (one record per
    /// callback: ids, result code, path, plugin version, attempt).
    Callbacks(CallbackSearch),
    /// One callback record in full: the plugin's log records and the
    /// request (the buyer's personal data masked).
    Callback {
        #[arg(long)]
        merchant: String,
        seq: i64,
    },
    /// Re-run a failed or parked operation (after activating a fixed
    /// version) with its idempotency key; its result is what the
    /// marketplace's next retry receives.
    Redrive {
        #[arg(long)]
        merchant: String,
        /// The operation's idempotency key (a callback record's).
        #[arg(long)]
        key: String,
        /// Also re-run an operation that has a final answer (audited).
        #[arg(long)]
        force: bool,
    },
    /// The merchant's parked operations (resume one with `redrive`).
    Parked {
        #[arg(long)]
        merchant: String,
    },
    /// The last hour's rate of non-000000 answers, the oldest unresolved
    /// failure and the parked operations of a merchant.
    Report {
        #[arg(long)]
        merchant: String,
    },
    /// The audit log of administrative changes, newest first.
    Audit {
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
struct CallbackSearch {
    #[arg(long)]
    merchant: String,
    #[arg(long)]
    order_id: Option<String>,
    #[arg(long)]
    instance_id: Option<String>,
    /// A six-digit result code, e.g. 000005.
    #[arg(long)]
    result_code: Option<String>,
    /// A wire activity name, e.g. newInstance.
    #[arg(long)]
    activity: Option<String>,
    /// executed, replayed_cache, replayed_store, in_progress, read, refused, …
    #[arg(long)]
    path: Option<String>,
    /// Records since: Unix milliseconds, or a span back from now (90s, 30m, 2h, 7d).
    #[arg(long, value_parser = parse_since)]
    since: Option<i64>,
    /// At most this many records (following the pages).
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

/// `--since`: Unix ms, or `<n>s|m|h|d` before now.
fn parse_since(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected Unix ms or a span like 30m, 2h, 7d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(now - number.saturating_mul(unit_ms))
}

#[derive(Debug, Subcommand)]
enum MerchantCommand {
    List,
    Show {
        id: String,
    },
    Create {
        id: String,
        /// Repeat for several keys.
        #[arg(long = "access-key", required = true)]
        access_keys: Vec<String>,
        /// The settings as JSON, e.g. '{"deadline_ms": 1500}'.
        #[arg(long)]
        settings: Option<String>,
    },
    Update {
        id: String,
        /// Replaces the settings (JSON).
        #[arg(long)]
        settings: Option<String>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    Add {
        merchant: String,
        access_key: String,
    },
    Retire {
        merchant: String,
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    List { merchant: String },
    Show { merchant: String, version: i64 },
    Activate { merchant: String, version: i64 },
    Rollback { merchant: String },
    Delete { merchant: String, version: i64 },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    Create { merchant: String },
    List,
    Revoke { token_id: String },
}

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// The plugin component (.wasm).
    file: PathBuf,
    #[arg(long)]
    merchant: String,
    /// Activate it once uploaded.
    #[arg(long)]
    activate: bool,
    #[command(flatten)]
    connection: Connection,
}

/// A request to the admin API.
struct Call {
    method: reqwest::Method,
    path: String,
    body: Option<Body>,
}

enum Body {
    Json(Value),
    Wasm(Vec<u8>),
}

impl Call {
    fn get(path: String) -> Call {
        Call {
            method: reqwest::Method::GET,
            path,
            body: None,
        }
    }

    fn post(path: String, body: Option<Value>) -> Call {
        Call {
            method: reqwest::Method::POST,
            path,
            body: Some(Body::Json(body.unwrap_or(json!({})))),
        }
    }
}

fn settings(text: Option<&str>) -> anyhow::Result<Option<Value>> {
    text.map(|t| serde_json::from_str(t).context("--settings is not JSON"))
        .transpose()
}

pub(crate) fn run(args: &AdminArgs) -> anyhow::Result<ExitCode> {
    let p = "/admin/v1";
    let call = match &args.command {
        AdminCommand::Merchants(MerchantCommand::List) => return list_merchants(&args.connection),
        AdminCommand::Merchants(MerchantCommand::Show { id }) => {
            Call::get(format!("{p}/merchants/{id}"))
        }
        AdminCommand::Merchants(MerchantCommand::Create {
            id,
            access_keys,
            settings: text,
        }) => Call::post(
            format!("{p}/merchants"),
            Some(
                json!({ "id": id, "access_keys": access_keys, "settings": settings(text.as_deref())? }),
            ),
        ),
        AdminCommand::Merchants(MerchantCommand::Update {
            id,
            settings: text,
            disable,
            enable,
        }) => {
            let disabled = match (disable, enable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            Call {
                method: reqwest::Method::PATCH,
                path: format!("{p}/merchants/{id}"),
                body: Some(Body::Json(
                    json!({ "settings": settings(text.as_deref())?, "disabled": disabled }),
                )),
            }
        }
        AdminCommand::Keys(KeyCommand::Add {
            merchant,
            access_key,
        }) => Call::post(
            format!("{p}/merchants/{merchant}/keys"),
            Some(json!({ "access_key": access_key })),
        ),
        AdminCommand::Keys(KeyCommand::Retire { merchant, key_id }) => Call {
            method: reqwest::Method::DELETE,
            path: format!("{p}/merchants/{merchant}/keys/{key_id}"),
            body: None,
        },
        AdminCommand::Plugins(PluginsCommand::List { merchant }) => {
            Call::get(format!("{p}/merchants/{merchant}/plugins"))
        }
        AdminCommand::Plugins(PluginsCommand::Show { merchant, version }) => {
            Call::get(format!("{p}/merchants/{merchant}/plugins/{version}"))
        }
        AdminCommand::Plugins(PluginsCommand::Activate { merchant, version }) => Call::post(
            format!("{p}/merchants/{merchant}/plugins/{version}/activate"),
            None,
        ),
        AdminCommand::Plugins(PluginsCommand::Rollback { merchant }) => {
            Call::post(format!("{p}/merchants/{merchant}/rollback"), None)
        }
        AdminCommand::Plugins(PluginsCommand::Delete { merchant, version }) => Call {
            method: reqwest::Method::DELETE,
            path: format!("{p}/merchants/{merchant}/plugins/{version}"),
            body: None,
        },
        AdminCommand::Tokens(TokenCommand::Create { merchant }) => {
            Call::post(format!("{p}/merchants/{merchant}/tokens"), None)
        }
        AdminCommand::Tokens(TokenCommand::List) => Call::get(format!("{p}/tokens")),
        AdminCommand::Tokens(TokenCommand::Revoke { token_id }) => Call {
            method: reqwest::Method::DELETE,
            path: format!("{p}/tokens/{token_id}"),
            body: None,
        },
        AdminCommand::Callbacks(search) => return list_callbacks(&args.connection, search),
        AdminCommand::Callback { merchant, seq } => {
            Call::get(format!("{p}/merchants/{merchant}/callbacks/{seq}"))
        }
        AdminCommand::Redrive {
            merchant,
            key,
            force,
        } => Call::post(
            format!("{p}/merchants/{merchant}/operations/redrive"),
            Some(json!({ "idempotency_key": key, "force": force })),
        ),
        AdminCommand::Parked { merchant } => {
            Call::get(format!("{p}/merchants/{merchant}/operations/parked"))
        }
        AdminCommand::Report { merchant } => Call::get(format!("{p}/merchants/{merchant}/report")),
        AdminCommand::Audit { merchant, limit } => match merchant {
            Some(m) => Call::get(format!("{p}/merchants/{m}/audit?limit={limit}")),
            None => Call::get(format!("{p}/audit?limit={limit}")),
        },
    };
    send(&args.connection, call)
}

pub(crate) fn upload(args: &UploadArgs) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let call = Call {
        method: reqwest::Method::POST,
        path: format!(
            "/admin/v1/merchants/{}/plugins?activate={}",
            args.merchant, args.activate
        ),
        body: Some(Body::Wasm(wasm)),
    };
    send(&args.connection, call)
}

fn send(connection: &Connection, call: Call) -> anyhow::Result<ExitCode> {
    match exchange(connection, call)? {
        Ok(body) => {
            print(connection.output, &body);
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

/// One request: its answer, or — reported here — the exit code of a
/// refusal (2) or of a gateway that is unreachable or failing (3).
fn exchange(connection: &Connection, call: Call) -> anyhow::Result<Result<Value, ExitCode>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(request(connection, call));
    let (status, body) = match answer {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!(
                "error: the gateway's admin API at {} could not be reached: {error}",
                connection.url
            );
            return Ok(Err(ExitCode::from(3)));
        }
    };
    if status.is_success() {
        return Ok(Ok(body));
    }
    let code = body["error"]["code"].as_str().unwrap_or("unknown");
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    match connection.output {
        Output::Json => println!("{body}"),
        Output::Table => eprintln!("error: {message} ({code}, HTTP {})", status.as_u16()),
    }
    Ok(Err(ExitCode::from(if status.is_client_error() {
        2
    } else {
        3
    })))
}

/// The callback log, following its pages: one line (or, with `--output
/// json`, one JSON object) per record, newest first.
fn list_callbacks(connection: &Connection, search: &CallbackSearch) -> anyhow::Result<ExitCode> {
    let mut query: Vec<(&str, String)> = Vec::new();
    let filters = [
        ("order_id", &search.order_id),
        ("instance_id", &search.instance_id),
        ("result_code", &search.result_code),
        ("activity", &search.activity),
        ("path", &search.path),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if let Some(since) = search.since {
        query.push(("since_ms", since.to_string()));
    }
    let mut left = search.limit as usize;
    let mut before: Option<i64> = None;
    let mut printed = 0;
    while left > 0 {
        let mut page_query = query.clone();
        page_query.push(("limit", left.min(1000).to_string()));
        if let Some(before) = before {
            page_query.push(("before", before.to_string()));
        }
        let encoded: Vec<String> = page_query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, QUERY)))
            .collect();
        let path = format!(
            "/admin/v1/merchants/{}/callbacks?{}",
            search.merchant,
            encoded.join("&")
        );
        let page = match exchange(connection, Call::get(path))? {
            Ok(page) => page,
            Err(code) => return Ok(code),
        };
        let records = page["records"].as_array().cloned().unwrap_or_default();
        for record in &records {
            match connection.output {
                Output::Json => println!("{record}"),
                Output::Table => println!("{}", one_line(record)),
            }
        }
        printed += records.len();
        left = left.saturating_sub(records.len());
        match page["next"].as_i64() {
            Some(next) if !records.is_empty() => before = Some(next),
            _ => break,
        }
    }
    if printed == 0 && matches!(connection.output, Output::Table) {
        println!("(none)");
    }
    Ok(ExitCode::SUCCESS)
}

/// What a query value must escape.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// `gateway plugin shadow`: the report, and exit 4 when a success would
/// become a failure.
pub(crate) fn shadow(args: &ShadowArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/admin/v1/merchants/{}/plugins/{}/shadow?count={}",
        args.merchant, args.version, args.count
    );
    let report = match exchange(&args.connection, Call::post(path, None))? {
        Ok(report) => report,
        Err(code) => return Ok(code),
    };
    let regressions = report["regressions"].as_u64().unwrap_or(0);
    match args.connection.output {
        Output::Json => println!("{report}"),
        Output::Table => print_shadow(&report),
    }
    Ok(if regressions > 0 {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_shadow(report: &Value) {
    println!(
        "version {}: {} requests compared, {} changed, {} regressions",
        scalar(&report["version"]),
        scalar(&report["compared"]),
        scalar(&report["changed"]),
        scalar(&report["regressions"])
    );
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let changed: Vec<&Value> = rows.iter().filter(|r| r["changed"] == true).collect();
    if changed.is_empty() {
        return;
    }
    println!(
        "{:>6}  {:<22} {:<20} {:>7} -> {:<7} {:>9} {:>9}  message",
        "seq", "activity", "order", "active", "new", "ms(old)", "ms(new)"
    );
    for row in changed {
        println!(
            "{:>6}  {:<22} {:<20} {:>7} -> {:<7} {:>9.1} {:>9.1}  {}{}",
            scalar(&row["seq"]),
            scalar(&row["activity"]),
            scalar(&row["order_id"]),
            scalar(&row["active_code"]),
            scalar(&row["candidate_code"]),
            row["active_latency_ms"].as_f64().unwrap_or(0.0),
            row["candidate_latency_ms"].as_f64().unwrap_or(0.0),
            scalar(&row["candidate_msg"]),
            if row["regression"] == true {
                "  (regression)"
            } else {
                ""
            },
        );
    }
}

#[derive(Debug, Args)]
pub(crate) struct ShadowArgs {
    /// The inactive plugin version to check.
    version: i64,
    #[arg(long)]
    merchant: String,
    /// How many of the latest recorded requests to replay (at most 1000).
    #[arg(long, default_value_t = 200)]
    count: u32,
    #[command(flatten)]
    connection: Connection,
}

/// Merchants asked for a page at a time.
const LIST_PAGE: usize = 1000;

/// Every merchant the token may see, following the pages of the list.
fn list_merchants(connection: &Connection) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/admin/v1/merchants?limit={LIST_PAGE}&after={after}");
        let page = match exchange(connection, Call::get(path))? {
            Ok(Value::Array(page)) => page,
            Ok(other) => anyhow::bail!("the gateway answered the list with {other}"),
            Err(code) => return Ok(code),
        };
        let full = page.len() == LIST_PAGE;
        // Ids are letters, digits, `-` and `_`: nothing to escape.
        after = match page.last().and_then(|m| m["id"].as_str()) {
            Some(id) => id.to_string(),
            None => break,
        };
        all.extend(page);
        if !full {
            break;
        }
    }
    print(connection.output, &Value::Array(all));
    Ok(ExitCode::SUCCESS)
}

async fn request(
    connection: &Connection,
    call: Call,
) -> reqwest::Result<(reqwest::StatusCode, Value)> {
    let client = reqwest::Client::new();
    let url = format!("{}{}", connection.url.trim_end_matches('/'), call.path);
    let mut request = client.request(call.method, url);
    if let Some(token) = &connection.token {
        request = request.bearer_auth(token);
    }
    request = match call.body {
        Some(Body::Json(value)) => request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(value.to_string()),
        Some(Body::Wasm(bytes)) => request
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes),
        None => request,
    };
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, body))
}

fn print(output: Output, body: &Value) {
    match output {
        Output::Json => println!("{body}"),
        Output::Table => match body {
            Value::Null => println!("done"),
            Value::Array(items) if items.is_empty() => println!("(none)"),
            Value::Array(items) => {
                for item in items {
                    println!("{}", one_line(item));
                }
            }
            Value::Object(fields) => {
                for (name, value) in fields {
                    println!("{name:>18}  {}", scalar(value));
                }
            }
            other => println!("{other}"),
        },
    }
}

fn one_line(item: &Value) -> String {
    match item {
        Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| !v.is_object())
            .map(|(k, v)| format!("{k}={}", scalar(v)))
            .collect::<Vec<_>>()
            .join("  "),
        other => scalar(other),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
            items.iter().map(scalar).collect::<Vec<_>>().join(",")
        }
        Value::Array(items) => format!(
            "\n{}",
            items
                .iter()
                .map(|i| format!("    {}", one_line(i)))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        other => other.to_string(),
    }
}
