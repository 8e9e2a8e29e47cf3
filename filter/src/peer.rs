//! The downstream peer as Istio's `source` keys see it: the mesh identity in the
//! peer certificate and two addresses. The host reads them from Envoy's attributes
//! only when a policy needs them ([`PeerNeeds`]); everything here is plain parsing.

use std::net::IpAddr;

/// What the policies can judge about the downstream peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// `<trust-domain>/ns/<namespace>/sa/<account>`: the peer certificate's
    /// `spiffe://` URI SAN without its scheme. `None` without a peer certificate.
    pub principal: Option<String>,
    /// The address of the direct downstream connection (Istio's `ipBlocks`).
    pub direct_ip: Option<IpAddr>,
    /// The client address Envoy computed from `X-Forwarded-For` under its
    /// trusted-hops settings (Istio's `remoteIpBlocks`).
    pub remote_ip: Option<IpAddr>,
}

impl Peer {
    /// The namespace in the principal (`.../ns/<namespace>/...`), as Istio's
    /// `namespaces` reads it.
    pub fn namespace(&self) -> Option<&str> {
        let principal = self.principal.as_deref()?;
        let (_, rest) = principal.split_once("/ns/")?;
        let namespace = rest.split('/').next()?;
        (!namespace.is_empty()).then_some(namespace)
    }
}

/// Which parts of [`Peer`] the configured policies read; the host asks Envoy for
/// nothing else, so requests judged without them pay no extra host calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerNeeds {
    pub principal: bool,
    pub direct_ip: bool,
    pub remote_ip: bool,
}

impl PeerNeeds {
    pub fn any(self) -> bool {
        self.principal || self.direct_ip || self.remote_ip
    }

    pub fn union(self, other: PeerNeeds) -> PeerNeeds {
        PeerNeeds {
            principal: self.principal || other.principal,
            direct_ip: self.direct_ip || other.direct_ip,
            remote_ip: self.remote_ip || other.remote_ip,
        }
    }
}

/// The mesh principal in a URI SAN: only SPIFFE IDs name one.
pub fn principal_from_uri_san(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("spiffe://")?;
    (!rest.is_empty() && !rest.bytes().any(|b| b.is_ascii_control())).then(|| rest.to_string())
}

/// Both addresses from Envoy's `source.address` (`1.2.3.4:80`, `[::1]:80`).
///
/// Envoy gives a Wasm filter no attribute for the direct peer: `source.address` is
/// the address the connection manager settled on, which is the connection's peer
/// unless it was taken from `X-Forwarded-For` (or an original-IP detection
/// extension), and an address taken from a header has port 0. So the direct peer
/// is known exactly when the port is not 0; otherwise it stays `None`, and the
/// policies that need it fail closed.
pub fn addresses(source_address: &str) -> (Option<IpAddr>, Option<IpAddr>) {
    match parse_address(source_address) {
        Some((ip, port)) => ((port != 0).then_some(ip), Some(ip)),
        None => (None, None),
    }
}

/// `1.2.3.4:80` or `[::1]:80`; IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from dual-stack
/// sockets) is read as IPv4.
fn parse_address(text: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (ip, port) = rest.split_once(']')?;
            (ip, port.strip_prefix(':')?)
        }
        None => text.split_once(':')?,
    };
    let ip = ip.parse::<IpAddr>().ok()?.to_canonical();
    Some((ip, port.parse().ok()?))
}

/// An IP or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`), as Istio's `ipBlocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix_len: u8,
}

impl IpBlock {
    pub fn parse(text: &str) -> Result<IpBlock, String> {
        let bad = || format!("`{text}`: write an IP address or a CIDR block like 10.0.0.0/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = address.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits
                    .parse::<u8>()
                    .ok()
                    .filter(|len| *len <= max)
                    .ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(IpBlock {
            network,
            prefix_len,
        })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

fn same_prefix(network: &[u8], ip: &[u8], prefix_len: u8) -> bool {
    let mut bits_left = u32::from(prefix_len);
    for (a, b) in network.iter().zip(ip) {
        if bits_left == 0 {
            return true;
        }
        let take = bits_left.min(8);
        let mask = 0xffu8 << (8 - take);
        if a & mask != b & mask {
            return false;
        }
        bits_left -= take;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn blocks_match_addresses_in_them() {
        let cases = [
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("203.0.113.4", "203.0.113.4", true),
            ("203.0.113.4", "203.0.113.5", false),
            ("203.0.113.0/25", "203.0.113.127", true),
            ("203.0.113.0/25", "203.0.113.128", false),
            ("0.0.0.0/0", "1.2.3.4", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::1", "::1", true),
            ("127.0.0.1/32", "::ffff:127.0.0.1", true),
            ("10.0.0.0/8", "::1", false),
            ("::/0", "10.0.0.1", false),
        ];
        for (block, ip, expected) in cases {
            let parsed = IpBlock::parse(block).unwrap();
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(parsed.contains(&ip), expected, "{block} vs {ip}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_what_is_not_a_block() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10/8",
            "::/129",
            "10.0.0.0/+8",
            "x",
            "1.2.3.4/8/8",
        ] {
            assert!(IpBlock::parse(bad).is_err(), "{bad}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn addresses_as_envoy_prints_them() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let cases = [
            ("127.0.0.1:5678", (ip("127.0.0.1"), ip("127.0.0.1"))),
            ("[::1]:80", (ip("::1"), ip("::1"))),
            ("[::ffff:10.1.2.3]:80", (ip("10.1.2.3"), ip("10.1.2.3"))),
            // Taken from X-Forwarded-For: not the direct peer.
            ("203.0.113.7:0", (None, ip("203.0.113.7"))),
            ("10.0.0.1", (None, None)),
            ("envoy://internal", (None, None)),
            ("1.2.3.4:x", (None, None)),
            ("", (None, None)),
        ];
        for (text, expected) in cases {
            assert_eq!(addresses(text), expected, "{text}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn principal_and_namespace_from_a_spiffe_id() {
        let peer = Peer {
            principal: principal_from_uri_san("spiffe://cluster.local/ns/foo/sa/sleep"),
            ..Peer::default()
        };
        assert_eq!(
            peer.principal.as_deref(),
            Some("cluster.local/ns/foo/sa/sleep")
        );
        assert_eq!(peer.namespace(), Some("foo"));
        assert_eq!(principal_from_uri_san("https://example.com/x"), None);
        assert_eq!(principal_from_uri_san("spiffe://"), None);
        assert_eq!(Peer::default().namespace(), None);
    }
}
