//! Every identifier the gateway derives and keeps, in one place, because
//! none of them may ever change.
//!
//! - The **instance id** of an order line is the marketplace's contract
//!   (same orderId + orderLineId ⇒ same instanceId, forever): a new formula
//!   would give existing orders second instances.
//! - The **business key** names one business operation across every retry;
//!   the **idempotency key** (derived from it) is what plugins pass to their
//!   backends, and what the store keys operation records on. Changing either
//!   orphans every record still within retention (a retry would run the
//!   plugin again) and makes merchants' backends see new keys for old work.
//! - The **fingerprint** of a request is stored with its record; a retry
//!   whose fingerprint differs is refused as a different order (000002), so
//!   a new formula would refuse every retry of work recorded before it.
//! - The **stored kind names** are values in the store's `kind` column.
//!
//! The golden tests at the bottom pin each formula to outputs recorded from
//! the gateway that first stored them. If one fails, the change is wrong,
//! not the test.

use koogallery_contract::{CallContext, OperationRequest, Product, StatusChange};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The namespace of every instance id this gateway assigns.
const INSTANCE_NAMESPACE: Uuid = Uuid::from_u128(0x6b6f_6f67_616c_6c65_7279_2d69_6e73_7431);

/// The instance id for an order line. `line` is the orderLineId, or the
/// productId for V1 orders (which key on order + product).
pub fn instance_id(merchant: &str, order_id: &str, line: Option<&str>) -> String {
    // NUL separators keep ("ab","c") and ("a","bc") apart.
    let name = format!("{merchant}\0{order_id}\0{}", line.unwrap_or(""));
    Uuid::new_v5(&INSTANCE_NAMESPACE, name.as_bytes()).to_string()
}

/// The idempotency key plugins receive: scoped by merchant and test flag,
/// derived from the business key and nothing else.
pub fn idempotency_key(merchant: &str, test: bool, business_key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(merchant)
        .chain_update([0, u8::from(test)])
        .chain_update(business_key)
        .finalize();
    format!("kg-{}", &hex::encode(digest)[..32])
}

/// The business key of each activity family: the fields that stay the same
/// across every marketplace retry of one operation (never `businessId`,
/// signatures, timestamps or nonces), NUL-separated.
pub mod business_key {
    use super::*;

    /// newInstance: the order line (V1: the product).
    pub fn create(order_id: &str, line: &str) -> String {
        format!("create\0{order_id}\0{line}")
    }

    /// queryInstance: the ids asked for (reads are not recorded).
    pub fn query(instance_ids: &[String]) -> String {
        format!("query\0{}", instance_ids.join(","))
    }

    /// refreshInstance: the instance and the renewal order.
    pub fn renew(instance_id: &str, order_id: &str, order_line_id: Option<&str>) -> String {
        format!(
            "renew\0{instance_id}\0{order_id}\0{}",
            order_line_id.unwrap_or("")
        )
    }

    /// Freeze or unfreeze. The change is spelled as the first gateway's
    /// debug output spelled it.
    pub fn status(instance_id: &str, change: StatusChange, order_id: Option<&str>) -> String {
        let change = match change {
            StatusChange::Freeze => "StatusChange::Freeze",
            StatusChange::Unfreeze => "StatusChange::Unfreeze",
        };
        format!(
            "status\0{instance_id}\0{change}\0{}",
            order_id.unwrap_or("")
        )
    }

    /// releaseInstance: the instance alone (released once).
    pub fn release(instance_id: &str) -> String {
        format!("release\0{instance_id}")
    }

    /// upgrade: the instance and the upgrade order.
    pub fn upgrade(instance_id: &str, order_id: &str, order_line_id: Option<&str>) -> String {
        format!(
            "upgrade\0{instance_id}\0{order_id}\0{}",
            order_line_id.unwrap_or("")
        )
    }

    /// changeInstanceCheck: the instance and the target product (a read).
    pub fn change_check(instance_id: &str, product: &Product) -> String {
        let linear = match product.linear_value {
            Some(value) => format!("Some({value})"),
            None => "None".to_string(),
        };
        format!(
            "change-check\0{instance_id}\0{}\0{}\0{linear}",
            product.product_id.as_deref().unwrap_or(""),
            product.sku_code.as_deref().unwrap_or(""),
        )
    }

    /// A license: the same order (V1) or event (V2) always gets the same one.
    pub fn license(
        instance_id: Option<&str>,
        order_id: Option<&str>,
        event_id: Option<&str>,
    ) -> String {
        format!(
            "license\0{}\0{}\0{}",
            instance_id.unwrap_or(""),
            order_id.unwrap_or(""),
            event_id.unwrap_or("")
        )
    }
}

/// sha256 (hex) over the canonical business fields: the request's persisted
/// serde form (see `koogallery_contract`) with the call context blanked and
/// `extensions` emptied, since those hold what changes between retries
/// (request id, attempt) or what the gateway cannot tell from transport.
pub fn fingerprint(request: &OperationRequest) -> String {
    fingerprint_in_place(&mut request.clone())
}

/// [`fingerprint`], computed on `request` itself: its call context and
/// extensions are set aside while it is hashed, then put back (the callback
/// path owns its copy of the request; this spares it a second one).
pub fn fingerprint_in_place(request: &mut OperationRequest) -> String {
    let blank = CallContext {
        idempotency_key: String::new(),
        attempt: 0,
        test: false,
        request_id: String::new(),
    };
    let call = std::mem::replace(request.call_mut(), blank);
    let extensions = request.extensions_mut().map(std::mem::take);
    let mut hasher = HashWriter(Sha256::new());
    // Serialising plain data into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, &*request);
    *request.call_mut() = call;
    if let (Some(slot), Some(extensions)) = (request.extensions_mut(), extensions) {
        *slot = extensions;
    }
    hex::encode(hasher.0.finalize())
}

/// Feeds serialised bytes straight into the digest.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The names of recorded operation kinds in the store's `kind` column.
/// Metric labels are separate (they may be renamed; these may not).
pub mod stored_kind {
    pub const CREATE: &str = "create";
    pub const RENEW: &str = "renew";
    pub const FREEZE: &str = "status:freeze";
    pub const UNFREEZE: &str = "status:unfreeze";
    pub const RELEASE: &str = "release";
    pub const UPGRADE: &str = "upgrade";
    pub const LICENSE: &str = "license";
}

#[cfg(test)]
mod tests {
    //! Golden values, recorded from the gateway that first stored them
    //! (before the crates were split). Never edit an expected value.
    use super::*;
    use koogallery_contract::{Operation, OperationRequest};

    #[test]
    fn instance_ids_are_pinned() {
        assert_eq!(
            instance_id("acme", "CS1", Some("CS1-1")),
            "3760d64e-327c-529e-9bf9-41f4d5fdeca6"
        );
        assert_eq!(
            instance_id("acme", "CS3", Some("P")),
            "18157fa7-413f-5391-8021-d3931df30194"
        );
        assert_eq!(
            instance_id("reference", "CSFIXTURE1", Some("CSFIXTURE1-000001")),
            "3fefb756-a89a-5a0c-81fd-1d5d2d16c783"
        );
        assert_ne!(
            instance_id("m", "ab", Some("c")),
            instance_id("m", "a", Some("bc"))
        );
    }

    #[test]
    fn business_and_idempotency_keys_are_pinned() {
        let product = Product {
            product_id: Some("P2".into()),
            sku_code: None,
            linear_value: Some(3),
        };
        let cases: [(String, bool, &str); 12] = [
            (
                business_key::create("CS1", "CS1-1"),
                false,
                "kg-fe2f475678fddf08a3ca20cb832d71a2",
            ),
            (
                business_key::create("CS2", "CS2-1"),
                true,
                "kg-5eb70d160fb67877e69466a47f478e77",
            ),
            (
                business_key::create("CS3", "P"),
                false,
                "kg-ffc7f5d0943770df2f27e6f0da605d07",
            ),
            (
                business_key::query(&["i-1".into(), "i-2".into()]),
                false,
                "kg-544f397c9e965fae48ef0de83a8c7f5e",
            ),
            (
                business_key::renew("i-1", "CS4", Some("CS4-1")),
                false,
                "kg-d1fd75c0a40c12e201828f9125f7773f",
            ),
            (
                business_key::renew("i-1", "CS4", None),
                false,
                "kg-fb96f8bde6f060d0478b860ef088ada5",
            ),
            (
                business_key::status("i-1", StatusChange::Freeze, None),
                false,
                "kg-533f425dcf10ea00ecbe1effa501a254",
            ),
            (
                business_key::status("i-1", StatusChange::Freeze, Some("CS1")),
                false,
                "kg-bc2c2f570bc3f94c016e8973cd70ca4c",
            ),
            (
                business_key::status("i-1", StatusChange::Unfreeze, None),
                false,
                "kg-c3fc096d1fa324293ed3a2073237480d",
            ),
            (
                business_key::release("i-1"),
                false,
                "kg-e742843c99b1cccff86b444c4b651f1a",
            ),
            (
                business_key::change_check("i-1", &product),
                false,
                "kg-dd64c8929fdd7e3bd1c7976b79d0c66a",
            ),
            (
                business_key::license(None, Some("CS6"), None),
                false,
                "kg-8256a0ec3bf188cfd27965dd40844647",
            ),
        ];
        for (key, test, expected) in cases {
            assert_eq!(idempotency_key("acme", test, &key), expected, "{key:?}");
        }
        assert_eq!(
            business_key::upgrade("i-1", "CS5", Some("CS5-1")),
            "upgrade\0i-1\0CS5\0CS5-1"
        );
        assert_eq!(
            idempotency_key("acme", false, &business_key::upgrade("i-1", "CS5", None)),
            "kg-05e6cd1b3e27134ef4d1084ac304ba5b"
        );
        assert_eq!(
            idempotency_key(
                "acme",
                false,
                &business_key::license(Some("i-1"), None, Some("E1"))
            ),
            "kg-0b0ff2c59166d06f3045090309b0e420"
        );
    }

    #[test]
    fn fingerprints_are_pinned() {
        let cases = [
            (
                Operation::Create,
                r#"{"call":{"idempotency_key":"kg-5eb70d160fb67877e69466a47f478e77","attempt":1,"test":true,"request_id":"r-1"},"instance_id":"a99ee550-681c-5faf-a691-613912eede73","order_id":"CS2","order_line_id":"CS2-1","kind":"Purchase","customer":{"id":"c-1","name":"Zhang","user_id":null,"user_name":null,"mobile_phone":null,"email":null},"product":{"product_id":"P-1","sku_code":"s-1","linear_value":20},"charging_mode":"Period","period":{"unit":"Month","count":5},"expire_at":{"unix_seconds":1671911109},"extensions":[{"name":"e","value":"v"}]}"#,
                "d262f2621f1d9c9973c3dcdceadbba53da62eabf3738ebd44617fb15a2fd5920",
            ),
            (
                Operation::Renew,
                r#"{"call":{"idempotency_key":"kg-d1fd75c0a40c12e201828f9125f7773f","attempt":1,"test":false,"request_id":"r-1"},"instance_id":"i-1","order_id":"CS4","order_line_id":"CS4-1","scene":"Renewal","product_id":null,"expire_at":{"unix_seconds":1924991999},"extensions":[]}"#,
                "d798dca3d0d68636962b9aef07015e3378c392cd5bfc6234a8c50181da981c0f",
            ),
            (
                Operation::UpdateStatus,
                r#"{"call":{"idempotency_key":"kg-bc2c2f570bc3f94c016e8973cd70ca4c","attempt":1,"test":false,"request_id":"r-1"},"instance_id":"i-1","order_id":"CS1","change":"Freeze","cause":"Expired"}"#,
                "1efef3e53cb2fdf894b03f7ae03b87407e02a6343777870c35e6c3e47e9ccdf4",
            ),
            (
                Operation::Release,
                r#"{"call":{"idempotency_key":"kg-e742843c99b1cccff86b444c4b651f1a","attempt":1,"test":false,"request_id":"r-1"},"instance_id":"i-1","order_id":"CS1","order_line_id":null}"#,
                "ee484b1a9e71e1cbc1695c2b6dd94c7263fa8c8802c18511f9301a5f8de09a6b",
            ),
            (
                Operation::Upgrade,
                r#"{"call":{"idempotency_key":"kg-05e6cd1b3e27134ef4d1084ac304ba5b","attempt":1,"test":false,"request_id":"r-1"},"instance_id":"i-1","order_id":"CS5","order_line_id":null,"product":{"product_id":"P2","sku_code":"s","linear_value":null},"extensions":[]}"#,
                "68cb672bf1f53b91d4674e83d89ab0b6ce9ce6a466aba828d96fbd3c487fe2f1",
            ),
            (
                Operation::IssueLicense,
                r#"{"call":{"idempotency_key":"kg-8256a0ec3bf188cfd27965dd40844647","attempt":1,"test":false,"request_id":"r-1"},"instance_id":null,"order_id":"CS6","event_id":null,"customer":{"id":"c","name":null,"user_id":null,"user_name":null,"mobile_phone":null,"email":null},"product":{"product_id":"P","sku_code":null,"linear_value":null},"effective_at":null,"expire_at":null,"device_fingerprint":null,"extensions":[]}"#,
                "594c34a200e8d1e3c0a9905c12786e566dadfd0258f022ff4f23e559dc11bc32",
            ),
        ];
        for (operation, json, expected) in cases {
            let value = serde_json::from_str(json).expect("JSON");
            let request = OperationRequest::from_json(operation, value).expect("a request");
            assert_eq!(
                serde_json::to_string(&request).expect("serialises"),
                json,
                "{operation}: the persisted form round-trips byte for byte"
            );
            assert_eq!(fingerprint(&request), expected, "{operation}");
            let mut in_place = request.clone();
            assert_eq!(fingerprint_in_place(&mut in_place), expected, "{operation}");
            assert_eq!(in_place, request, "{operation}: put back as it was");
        }
    }

    #[test]
    fn stored_kind_names_are_pinned() {
        assert_eq!(
            [
                stored_kind::CREATE,
                stored_kind::RENEW,
                stored_kind::FREEZE,
                stored_kind::UNFREEZE,
                stored_kind::RELEASE,
                stored_kind::UPGRADE,
                stored_kind::LICENSE,
            ],
            [
                "create",
                "renew",
                "status:freeze",
                "status:unfreeze",
                "release",
                "upgrade",
                "license"
            ]
        );
    }
}
