//! Gateway-assigned identifiers.
//!
//! The marketplace demands that the same order line always yields the same
//! instance id. The gateway therefore derives it, deterministically, from
//! who is asking and for what: a UUIDv5 of merchant, order id and order line
//! id (or product id for pay-per-use orders), under a namespace fixed forever.

use uuid::Uuid;

/// The namespace of every instance id this gateway assigns. Never change it:
/// doing so would give existing orders new ids.
const INSTANCE_NAMESPACE: Uuid = Uuid::from_u128(0x6b6f_6f67_616c_6c65_7279_2d69_6e73_7431);

/// The instance id for an order line. `line` is the orderLineId, or the
/// productId for pay-per-use orders (which key on order + product).
pub fn instance_id(merchant: &str, order_id: &str, line: Option<&str>) -> String {
    // NUL separators keep ("ab","c") and ("a","bc") apart.
    let name = format!("{merchant}\0{order_id}\0{}", line.unwrap_or(""));
    Uuid::new_v5(&INSTANCE_NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_order_line_same_id_and_different_lines_differ() {
        let a = instance_id("acme", "CS1", Some("CS1-000001"));
        assert_eq!(a, instance_id("acme", "CS1", Some("CS1-000001")));
        assert_ne!(a, instance_id("acme", "CS1", Some("CS1-000002")));
        assert_ne!(a, instance_id("other", "CS1", Some("CS1-000001")));
        assert_ne!(
            instance_id("m", "ab", Some("c")),
            instance_id("m", "a", Some("bc"))
        );
        assert_eq!(a.len(), 36, "fits the marketplace's 64-character limit");
        assert_eq!(
            Uuid::parse_str(&a).map(|u| u.get_version_num()).ok(),
            Some(5)
        );
    }
}
