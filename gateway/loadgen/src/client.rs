//! The marketplace's side of one callback, as lean as a client can be (one
//! HTTP/1.1 connection per sender, no pool, no redirects), so that the
//! client's own cost moves the gateway's and the baseline's figures alike
//! and as little as possible: every request signed with a fresh nonce and
//! timestamp, every answer's `Body-Sign` verified, its code and, for a
//! create, its instance id checked.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use koogallery_protocol::{ids, marketplace, signing, time};
use serde_json::Value;

/// One callback to send, and what its answer must carry.
pub struct Callback {
    pub body: Value,
    /// For a create: the instance id every answer for its order line must carry.
    pub expect_instance: Option<String>,
}

impl Callback {
    /// A newInstance for `order` (line `-000001`), first time or retry alike.
    pub fn create(merchant: &str, order: &str) -> Callback {
        let line = format!("{order}-000001");
        Callback {
            expect_instance: Some(ids::instance_id(merchant, order, Some(&line))),
            body: serde_json::json!({"activity": "newInstance", "orderId": order,
                "orderLineId": line, "businessId": marketplace::random_token(32)}),
        }
    }

    /// A renewal of the instance of `order` by the order `renewal`.
    pub fn renew(merchant: &str, order: &str, renewal: &str) -> Callback {
        let instance = ids::instance_id(merchant, order, Some(&format!("{order}-000001")));
        let expire = time::format_compact(time::now_ms() / 1000 + 365 * 86_400);
        Callback {
            expect_instance: None,
            body: serde_json::json!({"activity": "refreshInstance", "instanceId": instance,
                "orderId": renewal, "orderLineId": format!("{renewal}-000001"),
                "scene": "RENEWAL", "expireTime": expire}),
        }
    }

    /// A queryInstance of the instance of `order`.
    pub fn query(merchant: &str, order: &str) -> Callback {
        let instance = ids::instance_id(merchant, order, Some(&format!("{order}-000001")));
        Callback {
            expect_instance: None,
            body: serde_json::json!({"activity": "queryInstance", "instanceId": instance}),
        }
    }
}

/// What one answer said, as far as the benchmark cares.
#[derive(Debug)]
pub enum Checked {
    Ok,
    /// Well-formed and signed, but not 000000 (`resultCode`).
    Refused(String),
    /// Unsigned, badly signed, not JSON, or a create's instance id changed.
    Broken(String),
}

/// A keep-alive HTTP/1.1 connection to `authority` (`host:port`), Nagle off.
pub async fn http1(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One sender's connection to a server.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    base_path: String,
    key: String,
}

impl Connection {
    /// Connects to `url` (`http://host:port/callbacks/{merchant}`).
    pub async fn open(url: &str, key: &str) -> anyhow::Result<Connection> {
        let uri: hyper::Uri = url.parse()?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("{url} has no host:port"))?
            .to_string();
        Ok(Connection {
            sender: http1(&authority).await?,
            authority,
            base_path: uri.path().to_string(),
            key: key.to_string(),
        })
    }

    /// Sends the next callbacks to `merchant` on the same connection.
    pub fn set_merchant(&mut self, merchant: &str) {
        self.base_path = format!("/callbacks/{merchant}");
    }

    /// Sends `callback` signed now and checks its answer; the latency
    /// counts from `since` (the scheduled time in an open loop).
    pub async fn send(
        &mut self,
        callback: &Callback,
        since: Instant,
    ) -> anyhow::Result<(Duration, Checked)> {
        let body = serde_json::to_vec(&callback.body)?;
        let query = marketplace::v2_query(
            &self.key,
            &body,
            time::now_ms(),
            &marketplace::random_nonce(),
        );
        let request = hyper::Request::post(format!("{}?{query}", self.base_path))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let sign = response
            .headers()
            .get(signing::BODY_SIGN_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let bytes = response.into_body().collect().await?.to_bytes();
        let took = since.elapsed();
        Ok((took, check(&self.key, callback, &bytes, sign.as_deref())))
    }
}

fn check(key: &str, callback: &Callback, bytes: &[u8], sign: Option<&str>) -> Checked {
    let Some(sign) = sign else {
        return Checked::Broken("no Body-Sign".into());
    };
    if signing::verify_body_sign(key, bytes, sign).is_err() {
        return Checked::Broken("Body-Sign does not verify".into());
    }
    let Ok(answer) = serde_json::from_slice::<Value>(bytes) else {
        return Checked::Broken("the answer is not JSON".into());
    };
    let code = answer["resultCode"].as_str().unwrap_or("none");
    if code != "000000" {
        return Checked::Refused(code.to_string());
    }
    match &callback.expect_instance {
        Some(expected) if answer["instanceId"].as_str() != Some(expected) => Checked::Broken(
            format!("instanceId {} instead of {expected}", answer["instanceId"]),
        ),
        _ => Checked::Ok,
    }
}
