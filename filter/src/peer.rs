//! The downstream peer as Istio's `source` keys see it: the mesh identities in the
//! peer certificate and two addresses. The host reads them from Envoy's attributes
//! only when a policy needs them ([`PeerNeeds`]); everything here is plain parsing.
//! [`certificate`] reads the certificate's URI SANs.

pub mod certificate;

/// What the policies can judge about the downstream peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// `<trust-domain>/ns/<namespace>/sa/<account>`: each `spiffe://` URI SAN of
    /// the peer certificate without its scheme, in the certificate's order. Envoy's
    /// RBAC matches `principals` against any URI SAN, and so do the policies here.
    /// Empty without a peer certificate or without a SPIFFE ID in it.
    pub principals: Vec<String>,
    /// The peer presented a certificate whose names could not be read (malformed,
    /// or past [`certificate`]'s bounds): who it is is unknown, and a rule that
    /// reads the principals fails closed (matches in DENY, not in ALLOW).
    pub principals_unknown: bool,
    /// The address of the direct downstream connection (Istio's `ipBlocks`).
    pub direct_ip: Option<Ip>,
    /// The client address Envoy computed from `X-Forwarded-For` under its
    /// trusted-hops settings (Istio's `remoteIpBlocks`).
    pub remote_ip: Option<Ip>,
}

impl Peer {
    /// The principals of the certificate in Envoy's `connection.peer_certificate`
    /// attribute (its bytes, PEM or URL-encoded PEM), added to a peer without any.
    pub fn with_certificate(mut self, attribute: &[u8]) -> Peer {
        match certificate::uri_sans(attribute) {
            Ok(uris) => {
                // Loops that push, rather than `collect`s: less code in the module.
                for uri in &uris {
                    if let Some(principal) = principal_from_uri_san(uri) {
                        self.principals.push(principal);
                    }
                }
            }
            Err(certificate::Unreadable) => self.principals_unknown = true,
        }
        self
    }

    /// The namespace in each principal (`.../ns/<namespace>/...`), as Istio's
    /// `namespaces` reads it.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut namespaces = Vec::new();
        for principal in &self.principals {
            if let Some(namespace) = namespace(principal) {
                namespaces.push(namespace);
            }
        }
        namespaces
    }
}

/// The namespace in one principal.
pub fn namespace(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/ns/")?;
    let namespace = rest.split('/').next()?;
    (!namespace.is_empty()).then_some(namespace)
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

/// The mesh principal in a URI SAN: only SPIFFE IDs name one. (Also how the
/// host reads the single URI SAN an Envoy without `connection.peer_certificate`
/// gives.)
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
pub fn addresses(source_address: &str) -> (Option<Ip>, Option<Ip>) {
    match parse_address(source_address) {
        Some((ip, port)) => ((port != 0).then_some(ip), Some(ip)),
        None => (None, None),
    }
}

fn parse_address(text: &str) -> Option<(Ip, u16)> {
    let (ip, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (ip, port) = rest.split_once(']')?;
            (ip, port.strip_prefix(':')?)
        }
        None => text.split_once(':')?,
    };
    let port = u16::try_from(decimal(port, 5)?).ok()?;
    Some((Ip::parse(ip)?, port))
}

/// Up to `max_digits` ASCII digits, nothing else.
fn decimal(text: &str, max_digits: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_digits {
        return None;
    }
    text.bytes().try_fold(0u32, |value, byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

/// An IP address: 16 bytes, an IPv4 address in the last four. Our own small
/// parser rather than `std::net`'s, which costs the module about 4 KB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip {
    bytes: [u8; 16],
    v4: bool,
}

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

impl Ip {
    /// Dotted IPv4 (no leading zeros) or RFC 4291 IPv6 text (`::` and a dotted
    /// tail allowed, no zone). IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as dual-stack
    /// sockets report IPv4 peers) is IPv4.
    pub fn parse(text: &str) -> Option<Ip> {
        if let Some(v4) = parse_v4(text) {
            return Some(Ip::from_v4(v4));
        }
        let bytes = parse_v6(text)?;
        let v4 = bytes.get(..12) == Some(&V4_MAPPED_PREFIX[..]);
        Some(Ip { bytes, v4 })
    }

    fn from_v4(octets: [u8; 4]) -> Ip {
        let mut bytes = [0; 16];
        for (slot, byte) in bytes.iter_mut().zip(V4_MAPPED_PREFIX.iter().chain(&octets)) {
            *slot = *byte;
        }
        Ip { bytes, v4: true }
    }
}

fn parse_v4(text: &str) -> Option<[u8; 4]> {
    let mut octets = [0; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        *octet = u8::try_from(decimal(part, 3)?).ok()?;
    }
    parts.next().is_none().then_some(octets)
}

/// RFC 4291 text: eight groups, or fewer around one `::`; the last two groups may
/// be written as dotted IPv4.
fn parse_v6(text: &str) -> Option<[u8; 16]> {
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (head_len, tail_len) = match text.split_once("::") {
        Some((before, after)) => {
            let head_len = groups(before, false, &mut head)?;
            let tail_len = groups(after, true, &mut tail)?;
            (head_len, tail_len)
        }
        None => (groups(text, true, &mut head)?, 0),
    };
    let compressed = text.contains("::");
    let complete = if compressed {
        head_len + tail_len <= 7
    } else {
        head_len == 8
    };
    if !complete {
        return None;
    }
    let mut all = head;
    let start = 8 - tail_len;
    for (slot, group) in all.iter_mut().skip(start).zip(&tail) {
        *slot = *group;
    }
    let mut bytes = [0; 16];
    for (pair, group) in bytes.chunks_exact_mut(2).zip(&all) {
        pair.copy_from_slice(&group.to_be_bytes());
    }
    Some(bytes)
}

/// Reads the groups of one side of `::` into `out`; how many. The last side may
/// end in dotted IPv4.
fn groups(text: &str, last_side: bool, out: &mut [u16; 8]) -> Option<usize> {
    if text.is_empty() {
        return Some(0);
    }
    let mut count = 0;
    let mut pieces = text.split(':').peekable();
    while let Some(piece) = pieces.next() {
        if last_side && pieces.peek().is_none() && piece.contains('.') {
            let [a, b, c, d] = parse_v4(piece)?;
            *out.get_mut(count)? = u16::from_be_bytes([a, b]);
            *out.get_mut(count + 1)? = u16::from_be_bytes([c, d]);
            count += 2;
        } else {
            if piece.is_empty() || piece.len() > 4 {
                return None;
            }
            let group = piece.bytes().try_fold(0u16, |value, byte| {
                let digit = char::from(byte).to_digit(16)?;
                Some(value << 4 | digit as u16)
            })?;
            *out.get_mut(count)? = group;
            count += 1;
        }
    }
    Some(count)
}

/// An IP or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`), as Istio's `ipBlocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpBlock {
    network: Ip,
    /// Counted over the 16 bytes: an IPv4 `/8` is 96 + 8.
    prefix_len: u32,
}

impl IpBlock {
    pub fn parse(text: &str) -> Result<IpBlock, String> {
        let bad = || format!("`{text}`: write an IP address or a CIDR block like 10.0.0.0/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = Ip::parse(address).ok_or_else(bad)?;
        let (offset, max) = if network.v4 { (96, 32) } else { (0, 128) };
        let prefix_len = match prefix {
            None => max,
            Some(digits)
                if !digits.is_empty()
                    && digits.len() <= 3
                    && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                digits
                    .parse::<u32>()
                    .ok()
                    .filter(|len| *len <= max)
                    .ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(IpBlock {
            network,
            prefix_len: offset + prefix_len,
        })
    }

    /// An IPv4 address is never in an IPv6 block, nor the reverse (as in Envoy).
    pub fn contains(&self, ip: &Ip) -> bool {
        if self.network.v4 != ip.v4 {
            return false;
        }
        let mut bits_left = self.prefix_len;
        for (a, b) in self.network.bytes.iter().zip(&ip.bytes) {
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
            let address = Ip::parse(ip).unwrap();
            assert_eq!(parsed.contains(&address), expected, "{block} vs {ip}");
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
        let ip = |text: &str| Some(Ip::parse(text).unwrap());
        let cases = [
            ("127.0.0.1:5678", (ip("127.0.0.1"), ip("127.0.0.1"))),
            ("[::1]:80", (ip("::1"), ip("::1"))),
            ("[::ffff:10.1.2.3]:80", (ip("10.1.2.3"), ip("10.1.2.3"))),
            // Taken from X-Forwarded-For: not the direct peer.
            ("203.0.113.7:0", (None, ip("203.0.113.7"))),
            ("10.0.0.1", (None, None)),
            ("envoy://internal", (None, None)),
            ("1.2.3.4:x", (None, None)),
            ("1.2.3.4:+80", (None, None)),
            ("", (None, None)),
        ];
        for (text, expected) in cases {
            assert_eq!(addresses(text), expected, "{text}");
        }
    }

    /// `std::net` is the oracle: same verdict, same address, for every form.
    #[wasm_bindgen_test(unsupported = test)]
    fn parses_ip_text_as_std_does() {
        use std::net::IpAddr;
        let cases = [
            "0.0.0.0",
            "255.255.255.255",
            "10.1.2.3",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            " 1.2.3.4",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1::8",
            "1:2:3:4:5:6::7:8",
            "1:2:3:4:5:6:7::8",
            ":::",
            "1:::2",
            "1::2::3",
            ":1::",
            "1:",
            ":1",
            "12345::",
            "g::",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1.2.3.4::",
            "::1.2.3",
            "fe80::1%eth0",
            "2001:DB8::A",
            "::+1",
            "[::1]",
            "",
            "1:2:3:4:5:6:7:8::",
        ];
        for text in cases {
            let ours = Ip::parse(text);
            let std_parse = text.parse::<IpAddr>().ok();
            assert_eq!(ours.is_some(), std_parse.is_some(), "{text}");
            if let (Some(ours), Some(expected)) = (ours, std_parse) {
                let (bytes, v4) = match expected.to_canonical() {
                    IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), true),
                    IpAddr::V6(v6) => (v6.octets(), false),
                };
                assert_eq!(ours, Ip { bytes, v4 }, "{text}");
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn principal_and_namespace_from_a_spiffe_id() {
        let peer = Peer {
            principals: principal_from_uri_san("spiffe://cluster.local/ns/foo/sa/sleep")
                .into_iter()
                .collect(),
            ..Peer::default()
        };
        assert_eq!(peer.principals, ["cluster.local/ns/foo/sa/sleep"]);
        assert_eq!(peer.namespaces(), ["foo"]);
        assert_eq!(principal_from_uri_san("https://example.com/x"), None);
        assert_eq!(principal_from_uri_san("spiffe://"), None);
        assert!(Peer::default().namespaces().is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_spiffe_id_of_the_certificate_is_a_principal() {
        let peer =
            Peer::default().with_certificate(include_bytes!("../testdata/peer-two-spiffe.pem"));
        assert_eq!(
            peer.principals,
            ["cluster.local/ns/good/sa/x", "cluster.local/ns/evil/sa/y"]
        );
        assert_eq!(peer.namespaces(), ["good", "evil"]);
        assert!(!peer.principals_unknown);
        // Other URIs name no principal; the certificate is still read.
        let peer =
            Peer::default().with_certificate(include_bytes!("../testdata/peer-https-uri.pem"));
        assert_eq!((peer.principals.len(), peer.principals_unknown), (0, false));
        let peer = Peer::default().with_certificate(b"-----BEGIN CERTIFICATE-----\nMII=");
        assert_eq!((peer.principals.len(), peer.principals_unknown), (0, true));
    }
}
