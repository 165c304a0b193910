//! Which network a client address stands for: what every per-address limit
//! and a block on an abusive patron count by. One rule, here, so that the
//! server's limits and the app's blocks always agree.

use std::net::{IpAddr, Ipv6Addr};

/// An IPv4 address stands for itself (as does an IPv4-mapped IPv6
/// address); an IPv6 address for its /64, which one home, office or phone
/// holds whole.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_address_stands_for_its_64_and_a_mapped_one_for_its_ipv4() {
        let net = |s: &str| network(s.parse().unwrap());
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("2001:db8:1:2::9").to_string(), "2001:db8:1:2::");
        assert_eq!(net("::ffff:10.0.0.7").to_string(), "10.0.0.7");
        assert_eq!(net("10.0.0.7").to_string(), "10.0.0.7");
    }
}
