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

/// How many times a network's own allowance its /56 has, and a /56's its
/// /48: a subscriber may get more than one /64 (a home a /56, a tunnel
/// broker's customer a /48) for nothing, so a /64's allowance is backed by
/// its /56's and that by its /48's — 65,536 /64s of one /48 share sixteen
/// /64s' worth.
pub const WIDER: u32 = 4;

/// The networks an address counts in, each with its prefix length (64 for
/// an address's own: an IPv4 address, an IPv6 /64), its address, and how
/// many times a network's own allowance it has: for IPv6 also its /56
/// ([`WIDER`] times) and its /48 ([`WIDER`]² times).
pub fn networks(ip: IpAddr) -> impl Iterator<Item = (u8, IpAddr, u32)> {
    let own = network(ip);
    let wider = match own {
        IpAddr::V6(v6) => [(56u8, WIDER), (48, WIDER * WIDER)].map(|(prefix, times)| {
            let wide = Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> prefix));
            Some((prefix, IpAddr::V6(wide), times))
        }),
        IpAddr::V4(_) => [None, None],
    };
    std::iter::once((64, own, 1)).chain(wider.into_iter().flatten())
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

    #[test]
    fn an_ipv6_64_counts_in_its_56_and_its_48_too_and_an_ipv4_address_in_itself_alone() {
        let nets = |s: &str| networks(s.parse().unwrap()).map(|(p, n, t)| (p, n.to_string(), t)).collect::<Vec<_>>();
        assert_eq!(
            nets("2001:db8:1:2a3:aaaa::1"),
            [(64, "2001:db8:1:2a3::".into(), 1), (56, "2001:db8:1:200::".into(), 4), (48, "2001:db8:1::".into(), 16)]
        );
        assert_eq!(nets("::ffff:10.0.0.7"), [(64, "10.0.0.7".into(), 1)]);
        assert_eq!(nets("10.0.0.7"), [(64, "10.0.0.7".into(), 1)]);
    }
}
