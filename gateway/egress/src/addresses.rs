//! Which addresses a plugin may connect to, decided after DNS resolution.
//!
//! Three classes: **public** (globally routable), **private** (loopback,
//! RFC 1918, shared address space, IPv6 unique-local — reachable only when
//! the operator sets `allow_private_networks` for the merchant) and
//! **refused** (everything else: link-local, which holds the cloud metadata
//! service at 169.254.169.254, unspecified, broadcast, multicast,
//! documentation, benchmarking and reserved ranges — never reachable).
//! IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that address;
//! the local-use NAT64 prefix `64:ff9b:1::/48` embeds an address at a
//! length the host cannot know, so it counts as private.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ip_network::{Ipv4Network, Ipv6Network};

/// The class of a destination address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Private,
    Refused,
}

impl AddressClass {
    /// Whether a merchant may connect to an address of this class.
    pub fn reachable(self, allow_private_networks: bool) -> bool {
        match self {
            AddressClass::Public => true,
            AddressClass::Private => allow_private_networks,
            AddressClass::Refused => false,
        }
    }
}

/// The class of `ip`, after unwrapping an IPv4 address carried in IPv6.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Embedded::V4(v4) => classify_v4(v4),
            Embedded::Unknown => AddressClass::Private,
            Embedded::None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let Ok(net) = Ipv4Network::new(ip, 32) else {
        return AddressClass::Refused;
    };
    if net.is_loopback() || net.is_private() || net.is_shared_address_space() {
        AddressClass::Private
    } else if net.is_global() && !net.is_multicast() {
        AddressClass::Public
    } else {
        AddressClass::Refused
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let Ok(net) = Ipv6Network::new(ip, 128) else {
        return AddressClass::Refused;
    };
    // 100::/64 is discard-only (RFC 6666); ip_network counts it as global.
    let discard = ip.segments()[..4] == [0x100, 0, 0, 0];
    if net.is_loopback() || net.is_unique_local() {
        AddressClass::Private
    } else if net.is_unicast_global() && !discard {
        AddressClass::Public
    } else {
        AddressClass::Refused
    }
}

enum Embedded {
    V4(Ipv4Addr),
    /// Carries an IPv4 address the host cannot locate.
    Unknown,
    None,
}

fn embedded_v4(ip: Ipv6Addr) -> Embedded {
    let s = ip.segments();
    let last32 = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated;
        // not :: and ::1, which are judged as IPv6).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Embedded::V4(last32()),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Embedded::V4(last32()),
        // NAT64 well-known prefix (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Embedded::V4(last32()),
        // Local-use NAT64 (RFC 8215).
        [0x64, 0xff9b, 1, ..] => Embedded::Unknown,
        // 6to4: 2002:AABB:CCDD::/48.
        [0x2002, hi, lo, ..] => Embedded::V4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => Embedded::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> AddressClass {
        classify(text.parse().expect("an address literal"))
    }

    #[test]
    fn public_addresses_are_reachable() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(ip), AddressClass::Public, "{ip}");
        }
    }

    #[test]
    fn private_ranges_need_the_operators_grant() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert_eq!(class(ip), AddressClass::Private, "{ip}");
            assert!(!classify(ip.parse().expect("ip")).reachable(false));
            assert!(classify(ip.parse().expect("ip")).reachable(true));
        }
    }

    #[test]
    fn metadata_link_local_and_special_ranges_are_never_reachable() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "192.0.0.1",
            "::",
            "fe80::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "100::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert_eq!(class(ip), AddressClass::Refused, "{ip}");
            assert!(!classify(ip.parse().expect("ip")).reachable(true), "{ip}");
        }
    }
}
