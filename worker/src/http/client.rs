//! Who a request comes from, for rate limiting: its bearer token's index when
//! tokens are configured, else its address. `X-Forwarded-For` is believed only
//! when the peer is a configured proxy, and then read from the right, skipping
//! our own proxies, so a client cannot pick its identity by sending the header.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::Request;

/// A rate-limiter key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Token(usize),
    /// IPv4 address, or an IPv6 /64 (one host usually owns a whole /64).
    Addr(IpAddr),
    /// New clients while the limiter is at its memory bound share this bucket.
    Overflow,
}

/// An address block: `10.0.0.0/8`, `::1`, `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = ip.trim().parse().map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.into(), 128, self.prefix) == masked(ip.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as the IPv4 they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address that counts as the client, IPv6 cut to its /64.
pub fn limiter_addr(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// The client's address: the peer, or (behind a trusted proxy) the rightmost
/// `X-Forwarded-For` entry that is not one of our proxies.
pub fn client_addr<B>(req: &Request<B>, proxies: &[IpNet]) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| canonical(addr.ip()));
    if !proxies.iter().any(|p| p.contains(peer)) {
        return peer;
    }
    let hops: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().parse::<IpAddr>().map(canonical))
        .collect::<Result<_, _>>()
        .unwrap_or_default(); // a garbled header: trust none of it
    hops.into_iter().rev().find(|ip| !proxies.iter().any(|p| p.contains(*ip))).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, xff: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().expect("addr")));
        if let Some(x) = xff {
            req.headers_mut().insert("x-forwarded-for", x.parse().expect("header"));
        }
        req
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net"), "::1".parse().expect("net")];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(client_addr(&request("1.2.3.4:5", Some("9.9.9.9")), &proxies), ip("1.2.3.4"));
        assert_eq!(client_addr(&request("10.1.2.3:5", Some("6.6.6.6, 9.9.9.9")), &proxies), ip("9.9.9.9"));
        assert_eq!(client_addr(&request("10.1.2.3:5", Some("9.9.9.9, 10.0.0.7")), &proxies), ip("9.9.9.9"));
        assert_eq!(client_addr(&request("10.1.2.3:5", Some("garbage")), &proxies), ip("10.1.2.3"));
        assert_eq!(client_addr(&request("[::1]:5", Some("2001:db8::1")), &proxies), ip("2001:db8::1"));
        assert_eq!(client_addr(&request("[::ffff:10.0.0.1]:5", Some("8.8.8.8")), &proxies), ip("8.8.8.8"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = limiter_addr("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = limiter_addr("2001:db8:1:2:bbbb::2".parse().expect("ip"));
        assert_eq!(a, b);
        assert!("0.0.0.0/0".parse::<IpNet>().expect("net").contains("8.8.8.8".parse().expect("ip")));
        assert!("1.2.3.4/33".parse::<IpNet>().is_err());
    }
}
