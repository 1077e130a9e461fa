//! The client's address: the TCP peer, or, when the peer is a proxy named in
//! `TESSERA_TRUSTED_PROXIES`, the address that proxy put in
//! `X-Forwarded-For`. One notion of the client's address for the rate
//! limits, the sessions and the audit log.
//!
//! `X-Forwarded-For` is read from the right: each proxy appends the address
//! it received the request from, so the rightmost entries were written by
//! proxies we trust, and the first entry that is not a trusted proxy is the
//! client as the outermost trusted proxy saw it. Everything to its left came
//! from the client and is never read (a client can write anything there).
//! An entry that is not an IP address, met before the client's, means a
//! proxy is not doing what we think: the peer is used instead. So is a
//! header from a peer that is not trusted: anyone can send one.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

/// `TESSERA_TRUSTED_PROXIES`: addresses and networks whose
/// `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Comma-separated IP addresses and CIDR networks (`10.0.0.0/8,
    /// 2001:db8::1`); empty trusts nobody.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("{item:?} is not an IP address or a network like 10.0.0.0/8")),
                },
            };
            // Peers are compared in IPv4 form (see `canonical`), so an
            // IPv4-mapped entry (`::ffff:10.0.0.0/104`) is its IPv4 network.
            let net = match net {
                IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                    Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
                    None => net,
                },
                other => other,
            };
            // Trusting a network this wide trusts clients to say who they
            // are: every limit per client would be theirs to dodge.
            let widest = match net {
                IpNet::V4(_) => 8,
                IpNet::V6(_) => 16,
            };
            if net.prefix_len() < widest {
                return Err(format!(
                    "{item:?} trusts too much of the internet (anything in it could claim any address); \
                     list your proxies' own addresses or networks, at most a /{widest}"
                ));
            }
            nets.push(net);
        }
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut values = headers.get_all("x-forwarded-for").iter().rev().peekable();
        if values.peek().is_none() {
            return peer;
        }
        // Several header lines are one list, in order (RFC 9110 §5.3).
        for value in values {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            for entry in text.rsplit(',') {
                let Some(ip) = parse_entry(entry) else {
                    return peer;
                };
                if !self.contains(ip) {
                    return ip;
                }
            }
        }
        // Every hop was a trusted proxy: the leftmost is as far as we can see.
        headers
            .get_all("x-forwarded-for")
            .iter()
            .next()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(parse_entry)
            .unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an IPv4 or IPv6 address, an IPv6 one
/// possibly in brackets.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let bare = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    bare.parse::<IpAddr>().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket
/// reports for an IPv4 client) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What the per-client limit counts by: an IPv4 address, or the /64 an IPv6
/// address is in (one host is routinely given a whole /64, so counting by
/// address would give it 2^64 budgets).
pub fn limit_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let network = Ipv6Addr::from(u128::from(v6) & !((1_u128 << 64) - 1));
            format!("ip:{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_mapped_entries_are_their_ipv4_networks() {
        let t = TrustedProxies::parse("::ffff:10.0.0.0/104, ::ffff:192.0.2.7").unwrap();
        assert!(t.contains(ip("10.9.8.7")));
        assert!(t.contains(ip("::ffff:10.9.8.7")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        // Its width is judged as IPv4: a mapped /100 is a /4.
        assert!(TrustedProxies::parse("::ffff:0.0.0.0/100").is_err());
    }

    #[test]
    fn parses_addresses_and_networks() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::1 ").unwrap();
        assert!(t.contains(ip("10.1.2.3")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped is IPv4");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        // A host part in a network is tolerated (it means the network).
        assert!(TrustedProxies::parse("10.1.2.3/8").unwrap().contains(ip("10.200.0.1")));
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0", "1.2.3.4:80"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        // Everyone, or most of the internet, is no proxy.
        for too_wide in ["0.0.0.0/0", "::/0", "10.0.0.0/7", "2000::/3", "10.0.0.1, 0.0.0.0/0"] {
            let err = TrustedProxies::parse(too_wide).unwrap_err();
            assert!(err.contains("trusts too much"), "{too_wide}: {err}");
        }
        assert!(TrustedProxies::parse("2001:db8::/16").is_ok());
    }

    #[test]
    fn an_untrusted_peers_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("198.51.100.1"), &xff(&["203.0.113.9"])),
            ip("198.51.100.1")
        );
        let t = TrustedProxies::parse("10.0.0.1").unwrap();
        assert_eq!(t.client(ip("198.51.100.1"), &xff(&["203.0.113.9"])), ip("198.51.100.1"));
    }

    #[test]
    fn the_header_is_walked_from_the_right_past_trusted_hops() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        assert_eq!(t.client(peer, &xff(&["203.0.113.9"])), ip("203.0.113.9"));
        // A client's forged entries sit to the left of the real one.
        assert_eq!(
            t.client(peer, &xff(&["1.1.1.1, 203.0.113.9, 10.0.0.2"])),
            ip("203.0.113.9")
        );
        // Garbage written by the client, left of its real address, is never read.
        assert_eq!(t.client(peer, &xff(&["nonsense, 203.0.113.9"])), ip("203.0.113.9"));
        // Several header lines are one list.
        assert_eq!(
            t.client(peer, &xff(&["1.1.1.1", "203.0.113.9, 10.0.0.3"])),
            ip("203.0.113.9")
        );
        assert_eq!(t.client(peer, &xff(&["[2001:db8::5]"])), ip("2001:db8::5"));
        // Only trusted hops: the leftmost.
        assert_eq!(t.client(peer, &xff(&["10.0.0.7, 10.0.0.2"])), ip("10.0.0.7"));
    }

    #[test]
    fn a_malformed_header_falls_back_to_the_peer() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        for bad in ["", "not-an-ip", "203.0.113.9:4711", "203.0.113.9, ", "unknown"] {
            assert_eq!(t.client(peer, &xff(&[bad])), peer, "{bad:?}");
        }
        assert_eq!(t.client(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(limit_key(ip("203.0.113.9")), "ip:203.0.113.9");
        assert_eq!(limit_key(ip("::ffff:203.0.113.9")), "ip:203.0.113.9");
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), "ip:2001:db8:1:2::/64");
        assert_eq!(limit_key(ip("2001:db8:1:2:ffff::9")), limit_key(ip("2001:db8:1:2::1")));
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), limit_key(ip("2001:db8:1:2::1")));
    }
}
