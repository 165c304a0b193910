//! The reverse proxies whose `X-Forwarded-For` is believed
//! (`trusted_proxies`): each an address, or a network in CIDR notation for
//! proxies whose addresses change (a container platform's ingress).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address (`10.0.0.5`, a network of one) or a network (`10.0.0.0/8`,
/// `fd00::/8`). Written as given, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyNet {
    /// The network's first address (its bits past the prefix are zero).
    addr: IpAddr,
    /// How many leading bits a member shares with it.
    prefix: u8,
}

impl ProxyNet {
    /// Whether `ip` is in this network. An IPv4 proxy reaching a listener
    /// on `[::]` as its IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the
    /// same proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(ip)), 32, self.prefix) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(ip), 128, self.prefix) == u128::from(net),
            _ => false,
        }
    }

    fn width(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }
}

/// `bits` (of a `width`-bit address) with all but the first `prefix` zeroed.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    let past = u32::from(width - prefix.min(width));
    if past >= 128 {
        0
    } else {
        (bits >> past) << past
    }
}

impl FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyNet, String> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or a network (such as 10.0.0.5 or 10.0.0.0/8)"))?;
        // Always canonical: an IPv4 proxy given as ::ffff:a.b.c.d is that address.
        let addr = addr.to_canonical();
        let width = ProxyNet::width(addr);
        let prefix = match prefix {
            None => width,
            Some(p) => p.parse::<u8>().ok().filter(|p| (1..=width).contains(p)).ok_or_else(|| {
                format!("{s:?}: a network's prefix length is 1 to {width} (a /0 would believe any client)")
            })?,
        };
        let bits = match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        if masked(bits, width, prefix) != bits {
            return Err(format!("{s:?} has bits set past its prefix: give the network's first address"));
        }
        Ok(ProxyNet { addr, prefix })
    }
}

impl TryFrom<String> for ProxyNet {
    type Error = String;

    fn try_from(s: String) -> Result<ProxyNet, String> {
        s.parse()
    }
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == ProxyNet::width(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl From<ProxyNet> for String {
    fn from(p: ProxyNet) -> String {
        p.to_string()
    }
}

/// Whether `peer` is one of the `trusted` proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[ProxyNet]) -> bool {
    trusted.iter().any(|t| t.contains(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> ProxyNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn an_address_or_a_network_holds_what_it_names_and_nothing_else() {
        assert!(net("10.0.0.5").contains(ip("10.0.0.5")));
        assert!(!net("10.0.0.5").contains(ip("10.0.0.6")));
        assert!(net("10.0.0.5").contains(ip("::ffff:10.0.0.5")), "IPv4-mapped on a dual-stack listener");
        assert!(net("::ffff:10.0.0.5").contains(ip("10.0.0.5")));
        let ten = net("10.0.0.0/8");
        assert!(ten.contains(ip("10.255.3.4")) && ten.contains(ip("10.0.0.0")));
        assert!(!ten.contains(ip("11.0.0.1")) && !ten.contains(ip("fd00::1")));
        let ula = net("fd00::/8");
        assert!(ula.contains(ip("fd12:3456::1")) && !ula.contains(ip("fe80::1")) && !ula.contains(ip("10.0.0.1")));
        assert!(net("2001:db8::1/128").contains(ip("2001:db8::1")));
        assert!(net("192.0.2.0/32").contains(ip("192.0.2.0")));
    }

    #[test]
    fn what_is_no_address_or_network_is_refused_with_the_reason() {
        for (bad, why) in [
            ("proxy.example.org", "not an IP address"),
            ("10.0.0.0/0", "a /0 would believe any client"),
            ("10.0.0.0/33", "prefix length is 1 to 32"),
            ("fd00::/129", "prefix length is 1 to 128"),
            ("10.0.0.0/x", "prefix length"),
            ("10.0.0.5/8", "bits set past its prefix"),
        ] {
            let e = bad.parse::<ProxyNet>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn it_is_written_as_given() {
        for s in ["10.0.0.5", "10.0.0.0/8", "fd00::/8", "2001:db8::1"] {
            assert_eq!(net(s).to_string(), s);
        }
        assert_eq!(net("::ffff:10.0.0.5").to_string(), "10.0.0.5");
    }
}
