//! `gateway simulate`: the marketplace's side of a callback, like the seller
//! console's interface debugger. Builds a V2 (POST JSON) or V1 (GET query)
//! callback of any activity, signs it with an access key, sends it, prints
//! the answer, checks its `Body-Sign` and decrypts `appInfo` credentials.
//!
//! Exit codes: 0 the answer is 000000 and correctly signed; 1 transport
//! error, an answer that is not the protocol's JSON, or a missing or wrong
//! `Body-Sign`; 3 a correctly signed answer with another result code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value, json};

use koogallery_protocol::{
    Activity, EncryptType, Generation, credentials, marketplace, signing, time,
};

use crate::invoke::parse_key_value;

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The activity, as the marketplace names it: newInstance, queryInstance,
    /// refreshInstance, updateInstanceStatus, releaseInstance,
    /// upgradeInstance, changeInstanceCheck, getLicenseAsync (V2);
    /// newInstance, refreshInstance, expireInstance, releaseInstance,
    /// upgrade, instanceStatus, queryInstance, getLicense (V1).
    activity: String,
    /// The merchant's callback URL, e.g. http://127.0.0.1:8080/callbacks/demo.
    #[arg(long)]
    url: String,
    /// The access key to sign with (the merchant's key from the seller console).
    #[arg(long, env = "GATEWAY_SIMULATE_ACCESS_KEY", hide_env_values = true)]
    access_key: String,
    /// Send a V1 callback (GET with authToken) instead of V2.
    #[arg(long)]
    v1: bool,
    /// A request field, `NAME=VALUE`; repeatable. JSON objects and arrays
    /// are sent as such in V2 (`productInfo={"productId":"P1"}`).
    #[arg(long = "field", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    fields: Vec<(String, String)>,
    /// Request fields from a JSON object file (applied before --field).
    #[arg(long)]
    body: Option<PathBuf>,
    /// Mark the callback as a test (testFlag=1), as the debugger does.
    #[arg(long)]
    test: bool,
    /// Shift the signed timestamp, in seconds (to try the time window).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    clock_offset_secs: i64,
    /// The encryptType to decrypt credentials with when the answer names none.
    #[arg(long, default_value_t = 1)]
    encrypt_type: u8,
    /// Print the signed request as a curl command instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

/// A signed request, ready to send.
struct SignedRequest {
    method: &'static str,
    url: String,
    body: Option<Vec<u8>>,
}

pub(crate) fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let encrypt_type = EncryptType::try_from(args.encrypt_type).map_err(anyhow::Error::msg)?;
    let fields = request_fields(args)?;
    let now_ms = time::now_ms() + args.clock_offset_secs * 1000;
    let request = if args.v1 {
        sign_v1(&args.url, &args.access_key, fields, now_ms)
    } else {
        sign_v2(&args.url, &args.access_key, fields, now_ms)?
    };
    if args.dry_run {
        println!("{}", curl_command(&request));
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (body_sign, bytes) = runtime.block_on(send(&request))?;
    report(&args.access_key, encrypt_type, body_sign.as_deref(), &bytes)
}

/// The activity's usual fields, then --body, then --field.
fn request_fields(args: &SimulateArgs) -> anyhow::Result<Map<String, Value>> {
    let mut fields = default_fields(&args.activity, args.v1);
    fields.insert("activity".into(), json!(args.activity));
    if args.test {
        fields.insert("testFlag".into(), json!("1"));
    }
    if let Some(path) = &args.body {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => fields.extend(map),
            Ok(_) => bail!("{} must hold a JSON object", path.display()),
            Err(e) => bail!("{} is not JSON: {e}", path.display()),
        }
    }
    for (name, value) in &args.fields {
        let structured = (value.starts_with('{') || value.starts_with('['))
            .then(|| serde_json::from_str::<Value>(value).ok())
            .flatten();
        fields.insert(name.clone(), structured.unwrap_or_else(|| json!(value)));
    }
    Ok(fields)
}

/// Fields a real callback of `activity` would carry, with fresh order ids.
/// An activity the generation does not know gets none (to try 000002).
fn default_fields(activity: &str, v1: bool) -> Map<String, Value> {
    let generation = if v1 { Generation::V1 } else { Generation::V2 };
    let order = format!("CS{}", marketplace::random_token(15));
    let line = format!("{order}-000001");
    let business = marketplace::random_token(32).to_lowercase();
    let customer = marketplace::random_token(32).to_lowercase();
    let next_year = time::format_compact(time::now_ms() / 1000 + 365 * 86_400);
    let fields = match (generation, Activity::from_wire(generation, activity)) {
        (Generation::V2, Some(Activity::NewInstance)) => {
            json!({"orderId": order, "orderLineId": line, "businessId": business})
        }
        (Generation::V2, Some(Activity::RefreshInstance)) => json!({
            "orderId": order, "orderLineId": line, "scene": "RENEWAL", "expireTime": next_year
        }),
        (Generation::V2, Some(Activity::UpdateInstanceStatus)) => json!({"status": "FREEZE"}),
        (Generation::V2, Some(Activity::UpgradeInstance)) => {
            json!({"orderId": order, "orderLineId": line})
        }
        (Generation::V2, Some(Activity::GetLicenseAsync)) => json!({
            "eventId": business,
            "effectiveTime": format!("{} z", time::format_compact(time::now_ms() / 1000)),
        }),
        (Generation::V1, Some(Activity::NewInstance)) => json!({
            "orderId": order, "businessId": business, "customerId": customer,
            "productId": "00301-666666-0--0", "expireTime": next_year
        }),
        (Generation::V1, Some(Activity::RefreshInstance)) => {
            json!({"orderId": order, "expireTime": next_year})
        }
        (Generation::V1, Some(Activity::ExpireInstance | Activity::ReleaseInstance)) => {
            json!({"orderId": order})
        }
        (Generation::V1, Some(Activity::Upgrade)) => {
            json!({"orderId": order, "productId": "00301-666666-0--0", "skuCode": "sku-pro"})
        }
        (Generation::V1, Some(Activity::InstanceStatus)) => json!({"instanceStatus": "FREEZE"}),
        (Generation::V1, Some(Activity::GetLicense)) => json!({
            "orderId": order, "customerId": customer, "productId": "00301-666666-0--0"
        }),
        // The rest take only what the caller gives (an instance id…).
        _ => json!({}),
    };
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn with_query(url: &str, query: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}

fn sign_v2(
    url: &str,
    key: &str,
    fields: Map<String, Value>,
    now_ms: i64,
) -> anyhow::Result<SignedRequest> {
    let body = serde_json::to_vec(&Value::Object(fields))?;
    let query = marketplace::v2_query(key, &body, now_ms, &marketplace::random_nonce());
    Ok(SignedRequest {
        method: "POST",
        url: with_query(url, &query),
        body: Some(body),
    })
}

fn sign_v1(url: &str, key: &str, fields: Map<String, Value>, now_ms: i64) -> SignedRequest {
    let params: Vec<(String, String)> = fields
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect();
    SignedRequest {
        method: "GET",
        url: with_query(url, &marketplace::v1_query(key, &params, now_ms)),
        body: None,
    }
}

fn curl_command(request: &SignedRequest) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    match &request.body {
        Some(body) => format!(
            "curl -si -X POST -H 'Content-Type: application/json;charset=UTF-8' --data-binary {} {}",
            quote(&String::from_utf8_lossy(body)),
            quote(&request.url)
        ),
        None => format!("curl -si {}", quote(&request.url)),
    }
}

async fn send(request: &SignedRequest) -> anyhow::Result<(Option<String>, Vec<u8>)> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let builder = match &request.body {
        Some(body) => client
            .post(&request.url)
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(body.clone()),
        None => client.get(&request.url),
    };
    println!("> {} {}", request.method, request.url);
    if let Some(body) = &request.body {
        println!("> {}", String::from_utf8_lossy(body));
    }
    let response = builder
        .send()
        .await
        .with_context(|| format!("sending to {}", request.url))?;
    let status = response.status();
    let body_sign = response
        .headers()
        .get(signing::BODY_SIGN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response.bytes().await?.to_vec();
    println!("< HTTP {status}");
    if let Some(sign) = &body_sign {
        println!("< Body-Sign: {sign}");
    }
    println!("< {}", String::from_utf8_lossy(&bytes));
    if !status.is_success() {
        bail!("the gateway answered HTTP {status}; the marketplace expects 200");
    }
    Ok((body_sign, bytes))
}

/// Checks the answer as the marketplace would, and prints what it finds.
fn report(
    key: &str,
    default_encrypt_type: EncryptType,
    body_sign: Option<&str>,
    bytes: &[u8],
) -> anyhow::Result<ExitCode> {
    let answer: Value = serde_json::from_slice(bytes).context("the answer is not JSON")?;
    let Some(code) = answer.get("resultCode").and_then(Value::as_str) else {
        bail!("the answer has no resultCode");
    };
    match body_sign {
        None => bail!("the answer has no Body-Sign header"),
        Some(header) => {
            signing::verify_body_sign(key, bytes, header).map_err(|e| {
                anyhow::anyhow!(
                    "{e}: the gateway signs with the merchant's key (is --access-key the merchant's key?)"
                )
            })?;
            println!("Body-Sign: valid");
        }
    }
    let encrypt_type = match answer.get("encryptType").and_then(Value::as_str) {
        Some("2") => EncryptType::Aes128,
        Some(_) => EncryptType::Aes256,
        None => default_encrypt_type,
    };
    let mut app_infos = vec![("appInfo".to_string(), answer.get("appInfo"))];
    if let Some(Value::Array(info)) = answer.get("info") {
        for (i, item) in info.iter().enumerate() {
            app_infos.push((format!("info[{i}].appInfo"), item.get("appInfo")));
        }
    }
    for (path, app_info) in app_infos {
        for field in ["userName", "password"] {
            if let Some(wire) = app_info.and_then(|a| a.get(field)).and_then(Value::as_str) {
                match credentials::decrypt(key, encrypt_type, wire) {
                    Ok(plain) => println!("{path}.{field} (decrypted): {plain}"),
                    Err(e) => bail!("{path}.{field} does not decrypt with this key: {e}"),
                }
            }
        }
    }
    println!("resultCode: {code}");
    Ok(if code == "000000" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
