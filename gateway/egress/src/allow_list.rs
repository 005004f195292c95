//! A merchant's `allowed_outbound_hosts`: entries `scheme://host[:port]`.
//!
//! - scheme: `http`, `https` or `*`;
//! - host: a name (`api.example.com`), a wildcard as the leftmost label only
//!   (`*.example.com`: any subdomain, not the apex), an IP literal
//!   (`127.0.0.1`, `[::1]`), or `*` (any host; the address classes still
//!   apply after resolution);
//! - port: a number, `*`, or omitted for the scheme's own (80 / 443).
//!
//! Paths, queries and user info are refused when the entry is read, so a
//! typo is a configuration error and not a silent denial later.

use std::fmt;

/// Why an allow-list entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed_outbound_hosts entry {entry:?}: {reason}")]
pub struct AllowListError {
    pub entry: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SchemePattern {
    Http,
    Https,
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: stores `.suffix`.
    Subdomains(String),
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortPattern {
    SchemeDefault,
    Exact(u16),
    Any,
}

/// One entry of the allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

/// What a request is addressed to, normalised: lower-case scheme and host
/// (IPv6 without brackets), explicit port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Destination {
    pub fn default_port(https: bool) -> u16 {
        if https { 443 } else { 80 }
    }

    /// The allow-list entry that would admit exactly this destination.
    pub fn as_entry(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == Destination::default_port(self.https) {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_entry())
    }
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<AllowedHost, AllowListError> {
        let fail = |reason: &str| AllowListError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| fail("expected scheme://host[:port], e.g. https://api.example.com"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => SchemePattern::Http,
            "https" => SchemePattern::Https,
            "*" => SchemePattern::Any,
            _ => return Err(fail("the scheme must be http, https or *")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(fail("an entry names a host, not a path"));
        }
        if authority.contains('@') {
            return Err(fail("user info is not allowed"));
        }
        let (host, port) = split_host_port(authority).map_err(&fail)?;
        let host = parse_host_pattern(&host).map_err(&fail)?;
        let port = match port {
            None => PortPattern::SchemeDefault,
            Some("*") => PortPattern::Any,
            Some(text) => PortPattern::Exact(
                text.parse()
                    .map_err(|_| fail("the port must be a number from 1 to 65535, or *"))
                    .and_then(|port: u16| {
                        if port == 0 {
                            Err(fail("port 0 is not a port"))
                        } else {
                            Ok(port)
                        }
                    })?,
            ),
        };
        Ok(AllowedHost { scheme, host, port })
    }

    pub fn admits(&self, to: &Destination) -> bool {
        let scheme = match self.scheme {
            SchemePattern::Http => !to.https,
            SchemePattern::Https => to.https,
            SchemePattern::Any => true,
        };
        let host = match &self.host {
            HostPattern::Exact(name) => *name == to.host,
            HostPattern::Subdomains(suffix) => {
                to.host.len() > suffix.len() && to.host.ends_with(suffix.as_str())
            }
            HostPattern::Any => true,
        };
        let port = match self.port {
            PortPattern::SchemeDefault => to.port == Destination::default_port(to.https),
            PortPattern::Exact(port) => to.port == port,
            PortPattern::Any => true,
        };
        scheme && host && port
    }
}

/// `host[:port]`, with IPv6 literals in brackets.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>), &'static str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or("an unclosed [ in the host")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("expected :port after ]")?),
        };
        return Ok((ip.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_string(), Some(port))),
        None => Ok((authority.to_string(), None)),
    }
}

fn parse_host_pattern(host: &str) -> Result<HostPattern, &'static str> {
    let host = host.to_ascii_lowercase();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host.is_empty() {
        return Err("the host is empty");
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.contains('*') || suffix.is_empty() {
            return Err("a wildcard may only be the leftmost label, as in *.example.com");
        }
        return Ok(HostPattern::Subdomains(format!(".{suffix}")));
    }
    if host.contains('*') {
        return Err("a wildcard may only be the leftmost label, as in *.example.com");
    }
    if host.parse::<std::net::IpAddr>().is_err()
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err("the host must be a DNS name, an IP address or *");
    }
    Ok(HostPattern::Exact(host))
}

/// A merchant's whole allow-list. Empty: no outbound HTTP at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<AllowedHost>,
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, AllowListError> {
        let entries = entries
            .iter()
            .map(|entry| AllowedHost::parse(entry.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn admits(&self, to: &Destination) -> bool {
        self.entries.iter().any(|entry| entry.admits(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(https: bool, host: &str, port: u16) -> Destination {
        Destination {
            https,
            host: host.to_string(),
            port,
        }
    }

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).expect("a valid allow-list")
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let allowed = list(&["https://api.example.com", "http://127.0.0.1:8088"]);
        assert!(allowed.admits(&to(true, "api.example.com", 443)));
        assert!(!allowed.admits(&to(false, "api.example.com", 80)), "scheme");
        assert!(!allowed.admits(&to(true, "api.example.com", 8443)), "port");
        assert!(!allowed.admits(&to(true, "www.example.com", 443)), "host");
        assert!(allowed.admits(&to(false, "127.0.0.1", 8088)));
        assert!(!allowed.admits(&to(false, "127.0.0.1", 80)));
    }

    #[test]
    fn a_wildcard_is_any_subdomain_but_not_the_apex() {
        let allowed = list(&["https://*.example.com"]);
        assert!(allowed.admits(&to(true, "a.example.com", 443)));
        assert!(allowed.admits(&to(true, "a.b.example.com", 443)));
        assert!(!allowed.admits(&to(true, "example.com", 443)));
        assert!(!allowed.admits(&to(true, "badexample.com", 443)));
        let any = list(&["*://*:*"]);
        assert!(any.admits(&to(false, "anything", 1)));
    }

    #[test]
    fn ipv6_literals_and_ports() {
        let allowed = list(&["http://[::1]:9000", "https://API.Example.com:*"]);
        assert!(allowed.admits(&to(false, "::1", 9000)));
        assert!(allowed.admits(&to(true, "api.example.com", 1234)));
        assert_eq!(to(false, "::1", 9000).as_entry(), "http://[::1]:9000");
        assert_eq!(to(true, "a.b", 443).as_entry(), "https://a.b");
    }

    #[test]
    fn malformed_entries_are_refused_when_read() {
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://api.example.com/v1",
            "https://user@api.example.com",
            "https://a.*.example.com",
            "https://*example.com",
            "https://api.example.com:0",
            "https://api.example.com:http",
            "https://",
            "https://[::1",
            "https://exa mple.com",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
        assert!(AllowedHost::parse("https://api.example.com/").is_ok());
    }
}
