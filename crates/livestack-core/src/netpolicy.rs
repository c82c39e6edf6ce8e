//! Which addresses a server-side fetch of a user-given URL may reach.
//!
//! Owns: the rule (public unicast addresses only, plus what the operator
//! allows) and CIDR parsing. Must not: resolve names or connect
//! (`livestack-net` applies the rule to the address actually connected
//! to, after DNS and on every redirect).
//!
//! Refused unless allowed: unspecified, loopback, private (RFC 1918, ULA),
//! link-local (169.254.0.0/16, fe80::/10), shared CGNAT (100.64.0.0/10),
//! benchmarking, documentation and reserved ranges, multicast and
//! broadcast, and the same addresses written as IPv4-mapped, IPv4-
//! compatible or NAT64 IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address block, `10.0.0.0/8` or `fd00::/8` (a bare address is a /32
/// or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address is
    /// compared as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an address block such as 127.0.0.0/8 or fd00::/8",
            self.0
        )
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The rule for server-side fetches: public addresses, and the blocks the
/// operator allows (`[fetch] allow`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Blocks allowed although not public (tests and local set-ups allow
    /// `127.0.0.0/8`).
    pub allow: Vec<Cidr>,
}

impl FetchPolicy {
    /// A policy allowing `allow` besides public addresses.
    pub fn allowing(allow: Vec<Cidr>) -> FetchPolicy {
        FetchPolicy { allow }
    }

    /// Whether a fetch may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// IPv4 written as IPv6 (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d`) as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let seg = v6.segments();
            let embedded = || {
                let o = v6.octets();
                IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            };
            if seg[..6] == [0, 0, 0, 0, 0, 0] && !(seg[6] == 0 && seg[7] <= 1) {
                return embedded();
            }
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded();
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const NOT_PUBLIC: &[(u32, u8)] = &[
        (0x0000_0000, 8),  // 0.0.0.0/8 "this network", unspecified
        (0x0a00_0000, 8),  // 10.0.0.0/8
        (0x6440_0000, 10), // 100.64.0.0/10 CGNAT
        (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
        (0xa9fe_0000, 16), // 169.254.0.0/16 link-local (cloud metadata)
        (0xac10_0000, 12), // 172.16.0.0/12
        (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
        (0xc000_0200, 24), // 192.0.2.0/24 documentation
        (0xc0a8_0000, 16), // 192.168.0.0/16
        (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
        (0xc633_6400, 24), // 198.51.100.0/24 documentation
        (0xcb00_7100, 24), // 203.0.113.0/24 documentation
        (0xe000_0000, 4),  // 224.0.0.0/4 multicast
        (0xf000_0000, 4),  // 240.0.0.0/4 reserved, broadcast
    ];
    let v = u32::from(ip);
    !NOT_PUBLIC
        .iter()
        .any(|&(net, prefix)| v & (u32::MAX << (32 - prefix)) == net)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    const NOT_PUBLIC: &[(u128, u8)] = &[
        (0, 96),                 // ::/96 unspecified, loopback, compatible
        (0xfc00 << 112, 7),      // fc00::/7 unique local
        (0xfe80 << 112, 10),     // fe80::/10 link-local
        (0xfec0 << 112, 10),     // fec0::/10 site-local (deprecated)
        (0xff00 << 112, 8),      // ff00::/8 multicast
        (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
        (0x0100 << 112, 64),     // 100::/64 discard
    ];
    let v = u128::from(ip);
    !NOT_PUBLIC
        .iter()
        .any(|&(net, prefix)| v & (u128::MAX << (128 - u32::from(prefix))) == net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        let policy = FetchPolicy::default();
        for s in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "fd00::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!policy.permits(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let policy = FetchPolicy::default();
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(policy.permits(ip(s)), "{s} must pass");
        }
    }

    #[test]
    fn the_operator_may_allow_a_block() {
        let policy = FetchPolicy::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("::1")));
    }

    #[test]
    fn cidrs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().expect("cidr").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<Cidr>().expect("cidr").to_string(), "::1/128");
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "fd00::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
