//! The downstream peer as Istio's `source` keys see it: the mesh identities Envoy
//! knows for it and two addresses. The host reads them from Envoy's attributes
//! only when a policy needs them ([`PeerNeeds`]); everything here is plain parsing,
//! and which attribute is read when is decided here too ([`Peer::with_identity`]).
//! [`certificate`] reads the certificate's URI and DNS SANs.
//!
//! Where the identity comes from, as Istio's RBAC reads it:
//! - a sidecar or gateway with mTLS: the peer certificate. Envoy's
//!   `authenticated.principal_name` matches any URI SAN, any DNS SAN, and the
//!   subject (RFC 2253), all three tried (`AuthenticatedMatcher` in Envoy's
//!   `rbac/matchers.cc`);
//! - an ambient-mode waypoint: the connection from ztunnel reaches the HTTP
//!   filters over an internal listener, without TLS; Istio's RBAC reads the filter
//!   state `io.istio.peer_principal` instead (`principalAuthenticated` in Istio's
//!   `pilot/pkg/security/authz/model/principal.go`), which Istio sets to the HBONE
//!   peer's URI SAN, `spiffe://td/ns/x/sa/y`.

pub mod certificate;
pub mod metadata;

/// Longer names (a filter state value, a subject) are refused: who the peer is,
/// is then unknown. Mesh identities are well under 256 bytes.
pub const MAX_NAME_BYTES: usize = 4 * 1024;

/// What the policies can judge about the downstream peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// `<trust-domain>/ns/<namespace>/sa/<account>`: each SPIFFE ID among the
    /// peer's names without its `spiffe://`, in the certificate's order. Envoy's
    /// RBAC matches `principals` against any of them, and so do the policies here.
    /// Empty without a peer certificate (or filter state) or without a SPIFFE ID.
    pub principals: Vec<String>,
    /// The peer's other names that Envoy's RBAC matches a principal against, as
    /// Envoy gives them: URI SANs that are not SPIFFE IDs, DNS SANs, the subject,
    /// a filter state value that is not a SPIFFE ID. Istio turns every principal
    /// pattern but `*` into one starting with `spiffe://`, so these match only
    /// `*` (Istio's `.+`) and `namespaces` (a regex over the whole name); see
    /// [`Peer::principal_values`].
    pub other_names: Vec<String>,
    /// The peer presented a certificate whose names could not be read (malformed,
    /// or past [`certificate`]'s bounds), or Envoy could not give an attribute:
    /// who it is is unknown, and a rule that reads the principals fails closed
    /// (matches in DENY, not in ALLOW).
    pub principals_unknown: bool,
    /// The address of the direct downstream connection (Istio's `ipBlocks`).
    pub direct_ip: Option<Ip>,
    /// The client address Envoy computed from `X-Forwarded-For` under its
    /// trusted-hops settings (Istio's `remoteIpBlocks`).
    pub remote_ip: Option<Ip>,
    /// The connection's local address, Envoy's `destination.address` (Istio's
    /// `ports`, `destination.port` and `destination.ip`; in a sidecar, the original
    /// destination).
    pub destination: Option<(Ip, u16)>,
    /// The TLS SNI the client sent, Envoy's `connection.requested_server_name`
    /// (Istio's `connection.sni`); empty without TLS or SNI.
    pub sni: Option<String>,
    /// The dynamic metadata filters before this one wrote, for the
    /// `experimental.envoy.filters.<namespace>[<key>]` keys the policies name:
    /// ((namespace, key), value); a key the namespace lacks is not listed.
    pub metadata: Vec<((String, String), metadata::MetadataValue)>,
    /// Some namespace's metadata could not be read: a rule that reads metadata
    /// fails closed.
    pub metadata_unknown: bool,
}

/// Envoy's attributes the peer's identity is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// The leaf certificate's PEM (see [`certificate`]).
    PeerCertificate,
    /// The subject as Envoy's RBAC matches it: `subjectPeerCertificate()`.
    SubjectPeerCertificate,
    /// The filter state Istio's waypoints set and their RBAC reads.
    PeerPrincipalFilterState,
    /// The first URI SAN only: for an Envoy without `connection.peer_certificate`.
    UriSanPeerCertificate,
}

impl Attribute {
    /// The attribute's property path.
    pub fn path(self) -> &'static [&'static str] {
        match self {
            Attribute::PeerCertificate => &["connection", "peer_certificate"],
            Attribute::SubjectPeerCertificate => &["connection", "subject_peer_certificate"],
            Attribute::PeerPrincipalFilterState => &["filter_state", "io.istio.peer_principal"],
            Attribute::UriSanPeerCertificate => &["connection", "uri_san_peer_certificate"],
        }
    }
}

/// Envoy refused to give an attribute (not: it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// The string `*` stands for the peer's [`Peer::other_names`] among the values
/// principal patterns are matched against: it is non-empty, so Istio's `*`
/// matches it, and no other pattern does (exact, `prefix*` and `*suffix` are
/// non-empty and have no `*` in them), just as Istio's `spiffe://`-prefixed
/// matchers never match a name without that scheme.
const OTHER_NAMES: &str = "*";

impl Peer {
    /// The identity as Envoy's RBAC would see it, read through `read` (the host's
    /// attribute reads): the peer certificate and its subject when there is one;
    /// otherwise Istio's filter state (a waypoint); otherwise the one URI SAN an
    /// older Envoy gives. An attribute Envoy refuses makes the identity unknown.
    pub fn with_identity(
        self,
        read: &mut dyn FnMut(Attribute) -> Result<Option<Vec<u8>>, Refused>,
    ) -> Peer {
        match read(Attribute::PeerCertificate) {
            Ok(Some(pem)) if !pem.is_empty() => {
                return match read(Attribute::SubjectPeerCertificate) {
                    Ok(subject) => self.with_certificate(&pem, &subject.unwrap_or_default()),
                    Err(Refused) => self.unknown(),
                };
            }
            Ok(_) => {}
            Err(Refused) => return self.unknown(),
        }
        for attribute in [
            Attribute::PeerPrincipalFilterState,
            Attribute::UriSanPeerCertificate,
        ] {
            match read(attribute) {
                Ok(Some(name)) if !name.is_empty() => return self.with_name(&name),
                Ok(_) => {}
                Err(Refused) => return self.unknown(),
            }
        }
        self
    }

    /// The values of `keys` ((namespace, key) pairs) in the dynamic metadata:
    /// Envoy's `metadata` attribute, a serialized `Metadata` (see [`metadata`]).
    /// Metadata Envoy refuses to give, or bytes that are no `Metadata`, make the
    /// values unknown; no metadata at all has none of them.
    pub fn with_metadata(
        mut self,
        keys: &[(String, String)],
        attribute: Result<Option<Vec<u8>>, Refused>,
    ) -> Peer {
        let Ok(bytes) = attribute else {
            self.metadata_unknown = true;
            return self;
        };
        let bytes = bytes.unwrap_or_default();
        for (namespace, key) in keys {
            match metadata::value_of(&bytes, namespace, key) {
                Ok(Some(value)) => self
                    .metadata
                    .push(((namespace.clone(), key.clone()), value)),
                Ok(None) => {}
                Err(metadata::Unreadable) => {
                    self.metadata_unknown = true;
                    self.metadata.clear();
                    return self;
                }
            }
        }
        self
    }

    /// The names of the certificate in Envoy's `connection.peer_certificate`
    /// attribute (its bytes, PEM or URL-encoded PEM) and its subject (Envoy's
    /// `connection.subject_peer_certificate`, empty when it has none), added.
    pub fn with_certificate(mut self, attribute: &[u8], subject: &[u8]) -> Peer {
        match certificate::alt_names(attribute) {
            Ok(names) => {
                // Loops that push, rather than `collect`s: less code in the module.
                for uri in names.uris {
                    self.add_name(uri);
                }
                for dns in names.dns {
                    self.other_names.push(dns);
                }
                if !subject.is_empty() {
                    self = self.with_name(subject);
                }
                self
            }
            Err(certificate::Unreadable) => self.unknown(),
        }
    }

    /// One name Envoy gives as text (a filter state value, a subject, a URI SAN):
    /// a SPIFFE ID is a principal, another name one of the other names. Text that
    /// is not UTF-8, is too long or has control characters cannot be compared as
    /// Envoy would: the identity is unknown.
    pub fn with_name(mut self, bytes: &[u8]) -> Peer {
        let text = std::str::from_utf8(bytes).ok().filter(|text| {
            !text.is_empty() && text.len() <= MAX_NAME_BYTES && !text.chars().any(char::is_control)
        });
        match text {
            Some(text) => {
                self.add_name(text.to_string());
                self
            }
            None => self.unknown(),
        }
    }

    fn add_name(&mut self, name: String) {
        match principal_from_uri_san(&name) {
            Some(principal) => self.principals.push(principal),
            None => self.other_names.push(name),
        }
    }

    fn unknown(mut self) -> Peer {
        self.principals_unknown = true;
        self
    }

    /// The values Istio's `principals` and `source.principal` patterns are
    /// matched against: the principals, and `*` when the peer has other names
    /// (see [`OTHER_NAMES`]).
    pub fn principal_values(&self) -> Vec<&str> {
        let mut values: Vec<&str> = Vec::new();
        for principal in &self.principals {
            values.push(principal);
        }
        if !self.other_names.is_empty() {
            values.push(OTHER_NAMES);
        }
        values
    }

    /// Every name of the peer as Envoy's RBAC matches it (SPIFFE IDs with their
    /// `spiffe://`, then the other names): what Istio's namespace regex
    /// `.*/ns/<namespace>/.*` runs over.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.principals.len() + self.other_names.len());
        for principal in &self.principals {
            names.push(format!("spiffe://{principal}"));
        }
        names.extend(self.other_names.iter().cloned());
        names
    }
}

/// Which parts of [`Peer`] the configured policies read; the host asks Envoy for
/// nothing else, so requests judged without them pay no extra host calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerNeeds {
    pub principal: bool,
    pub direct_ip: bool,
    pub remote_ip: bool,
    pub destination: bool,
    pub sni: bool,
    /// Dynamic metadata (`experimental.envoy.filters.*` keys).
    pub metadata: bool,
}

impl PeerNeeds {
    pub fn any(self) -> bool {
        self.principal
            || self.direct_ip
            || self.remote_ip
            || self.destination
            || self.sni
            || self.metadata
    }

    pub fn union(self, other: PeerNeeds) -> PeerNeeds {
        PeerNeeds {
            principal: self.principal || other.principal,
            direct_ip: self.direct_ip || other.direct_ip,
            remote_ip: self.remote_ip || other.remote_ip,
            destination: self.destination || other.destination,
            sni: self.sni || other.sni,
            metadata: self.metadata || other.metadata,
        }
    }
}

/// Envoy's `destination.address` (`ip:port`, `[v6]:port`), read strictly.
pub fn destination(address: &str) -> Option<(Ip, u16)> {
    parse_address(address)
}

/// The mesh principal in a URI SAN (or Istio's filter state, which holds one):
/// only SPIFFE IDs name one.
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

    /// Which of a few namespaces Istio's `.*/ns/<namespace>/.*` finds in the
    /// peer's names, in this order.
    fn namespaces_seen(peer: &Peer) -> Vec<&'static str> {
        use crate::authz::pattern::NamespacePattern;
        let names = peer.names();
        [
            "a", "b", "c", "d", "e", "foo", "good", "evil", "waypoint", "x", "sa", "td",
        ]
        .into_iter()
        .filter(|namespace| {
            let pattern = NamespacePattern::parse(namespace).unwrap();
            names.iter().any(|name| pattern.matches(name))
        })
        .collect()
    }

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
        assert_eq!(namespaces_seen(&peer), ["foo"]);
        assert_eq!(peer.principal_values(), ["cluster.local/ns/foo/sa/sleep"]);
        assert_eq!(principal_from_uri_san("https://example.com/x"), None);
        assert_eq!(principal_from_uri_san("spiffe://"), None);
        assert!(namespaces_seen(&Peer::default()).is_empty());
        assert!(Peer::default().principal_values().is_empty());
    }

    /// Istio's regex `.*/ns/<namespace>/.*` over the whole name, `spiffe://`
    /// included: every `/ns/<segment>/`, and only with the `/` after it.
    #[wasm_bindgen_test(unsupported = test)]
    fn namespaces_as_istios_regex_finds_them() {
        let peer = |principals: &[&str], other_names: &[&str]| Peer {
            principals: principals.iter().map(|p| p.to_string()).collect(),
            other_names: other_names.iter().map(|p| p.to_string()).collect(),
            ..Peer::default()
        };
        let cases: [(Peer, &[&str]); 7] = [
            (peer(&["td/ns/a/sa/x/ns/b/y"], &[]), &["a", "b"]),
            // `spiffe://ns/c/x`: the trust domain `ns`, and `/ns/c/` in the name.
            (peer(&["ns/c/x"], &[]), &["c"]),
            (peer(&["td/ns/a"], &[]), &[]),
            (peer(&["td/ns//sa/x"], &[]), &[]),
            (peer(&[], &["CN=x/ns/d/y,O=z"]), &["d"]),
            (peer(&[], &["https://h/ns/e/f"]), &["e"]),
            (peer(&["td/ns/a/sa/x"], &["web.example.test"]), &["a"]),
        ];
        for (peer, expected) in cases {
            assert_eq!(namespaces_seen(&peer), expected, "{peer:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_spiffe_id_of_the_certificate_is_a_principal() {
        let peer = Peer::default()
            .with_certificate(include_bytes!("../testdata/peer-two-spiffe.pem"), b"");
        assert_eq!(
            peer.principals,
            ["cluster.local/ns/good/sa/x", "cluster.local/ns/evil/sa/y"]
        );
        assert_eq!(namespaces_seen(&peer), ["good", "evil"]);
        assert!(!peer.principals_unknown);
        assert!(peer.other_names.is_empty());
        // Other URIs name no principal: only `*` matches them.
        let peer =
            Peer::default().with_certificate(include_bytes!("../testdata/peer-https-uri.pem"), b"");
        assert_eq!(peer.principals.len(), 0);
        assert_eq!(peer.other_names, ["https://example.test/workload"]);
        assert_eq!(peer.principal_values(), ["*"]);
        assert!(!peer.principals_unknown);
        let peer = Peer::default().with_certificate(b"-----BEGIN CERTIFICATE-----\nMII=", b"CN=x");
        assert_eq!((peer.principals.len(), peer.principals_unknown), (0, true));
    }

    /// Envoy's RBAC tries every URI SAN, every DNS SAN and the subject; the
    /// subject is Envoy's own string (`connection.subject_peer_certificate`).
    #[wasm_bindgen_test(unsupported = test)]
    fn dns_sans_and_the_subject_are_names_too() {
        let peer = Peer::default().with_certificate(
            include_bytes!("../testdata/peer-uri-and-dns.pem"),
            b"CN=uri-and-dns",
        );
        assert_eq!(peer.principals, ["cluster.local/ns/foo/sa/sleep"]);
        assert_eq!(
            peer.other_names,
            ["sleep.foo.svc", "example.test", "CN=uri-and-dns"]
        );
        assert_eq!(
            peer.principal_values(),
            ["cluster.local/ns/foo/sa/sleep", "*"]
        );
        let peer = Peer::default().with_certificate(
            include_bytes!("../testdata/peer-dns-only.pem"),
            b"CN=dns-only,O=Example Org",
        );
        assert!(peer.principals.is_empty());
        assert_eq!(
            peer.other_names,
            [
                "web.example.test",
                "*.example.test",
                "CN=dns-only,O=Example Org"
            ]
        );
        assert_eq!(peer.principal_values(), ["*"]);
        // A subject only; none at all (an empty subject is no name).
        let peer = Peer::default()
            .with_certificate(include_bytes!("../testdata/peer-no-san.pem"), b"CN=no-san");
        assert_eq!(peer.other_names, ["CN=no-san"]);
        let peer = Peer::default()
            .with_certificate(include_bytes!("../testdata/peer-v1-no-extensions.pem"), b"");
        assert_eq!(peer, Peer::default());
        // A subject that cannot be compared as Envoy would: unknown.
        for subject in [&b"CN=a\nb"[..], b"\xff", &[b'a'; MAX_NAME_BYTES + 1]] {
            let peer = Peer::default()
                .with_certificate(include_bytes!("../testdata/peer-no-san.pem"), subject);
            assert!(peer.principals_unknown, "{subject:?}");
        }
    }

    /// Istio writes `principals: [P]` as `spiffe://P` (exact, prefix, or the
    /// regex `spiffe://.*S` for `*S`) and `*` as `.+`: a DNS SAN, a subject or a
    /// URI that is not a SPIFFE ID matches `*` only, even when it is the pattern.
    #[wasm_bindgen_test(unsupported = test)]
    fn only_istios_star_matches_a_name_that_is_not_a_spiffe_id() {
        use crate::authz::pattern::Pattern;
        let dns_only = Peer::default().with_certificate(
            include_bytes!("../testdata/peer-dns-only.pem"),
            b"CN=dns-only,O=Example Org",
        );
        let matches = |peer: &Peer, pattern: &str| {
            let pattern = Pattern::parse(pattern).unwrap();
            peer.principal_values().iter().any(|v| pattern.matches(v))
        };
        assert!(matches(&dns_only, "*"));
        for pattern in [
            "web.example.test",
            "*.example.test",
            "web.*",
            "*test",
            "CN=dns-only,O=Example Org",
            "CN=*",
            "spiffe://web.example.test",
        ] {
            assert!(!matches(&dns_only, pattern), "{pattern}");
        }
        let spiffe = Peer::default().with_name(b"spiffe://cluster.local/ns/a/sa/b");
        for pattern in ["*", "cluster.local/ns/a/sa/b", "cluster.local/*", "*/sa/b"] {
            assert!(matches(&spiffe, pattern), "{pattern}");
        }
        assert!(!matches(&spiffe, "cluster.local/ns/a/sa/c"));
        assert!(!matches(&Peer::default(), "*"));
    }

    /// The attributes a fake Envoy has.
    type Has<'a> = &'a [(Attribute, &'a [u8])];

    /// A fake Envoy: the attributes it has, and the ones it refuses.
    fn read_from<'a>(
        has: &'a [(Attribute, &'a [u8])],
        refuses: &'a [Attribute],
        asked: &'a mut Vec<Attribute>,
    ) -> impl FnMut(Attribute) -> Result<Option<Vec<u8>>, Refused> + 'a {
        move |attribute| {
            asked.push(attribute);
            if refuses.contains(&attribute) {
                return Err(Refused);
            }
            Ok(has
                .iter()
                .find(|(name, _)| *name == attribute)
                .map(|(_, value)| value.to_vec()))
        }
    }

    fn identity(has: &[(Attribute, &[u8])], refuses: &[Attribute]) -> (Peer, Vec<Attribute>) {
        let mut asked = Vec::new();
        let peer = Peer::default().with_identity(&mut read_from(has, refuses, &mut asked));
        (peer, asked)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_identity_comes_from_the_certificate_else_the_filter_state() {
        use Attribute::*;
        let pem: &[u8] = include_bytes!("../testdata/peer-one-spiffe.pem");
        let waypoint: &[u8] = b"spiffe://cluster.local/ns/waypoint/sa/client";
        // A certificate wins; the filter state is not even read.
        let (peer, asked) = identity(
            &[
                (PeerCertificate, pem),
                (SubjectPeerCertificate, b""),
                (PeerPrincipalFilterState, waypoint),
            ],
            &[],
        );
        assert_eq!(peer.principals, ["cluster.local/ns/foo/sa/sleep"]);
        assert_eq!(asked, [PeerCertificate, SubjectPeerCertificate]);
        // No certificate (an empty attribute is none): the filter state.
        for certificate in [None, Some(&b""[..])] {
            let mut has = vec![(PeerPrincipalFilterState, waypoint)];
            has.extend(certificate.map(|c| (PeerCertificate, c)));
            let (peer, asked) = identity(&has, &[]);
            assert_eq!(peer.principals, ["cluster.local/ns/waypoint/sa/client"]);
            assert_eq!(namespaces_seen(&peer), ["waypoint"]);
            assert!(!peer.principals_unknown);
            assert_eq!(asked, [PeerCertificate, PeerPrincipalFilterState]);
        }
        // Neither: the one URI SAN an older Envoy gives.
        let (peer, asked) = identity(&[(UriSanPeerCertificate, waypoint)], &[]);
        assert_eq!(peer.principals, ["cluster.local/ns/waypoint/sa/client"]);
        assert_eq!(
            asked,
            [
                PeerCertificate,
                PeerPrincipalFilterState,
                UriSanPeerCertificate
            ]
        );
        // Nothing at all: no identity, and not an unknown one.
        assert_eq!(identity(&[], &[]).0, Peer::default());
        // A filter state value that is not a SPIFFE ID: only `*` matches it.
        let (peer, _) = identity(&[(PeerPrincipalFilterState, b"-")], &[]);
        assert_eq!(
            (peer.principal_values(), peer.principals_unknown),
            (vec!["*"], false)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_identity_envoy_will_not_tell_is_unknown() {
        use Attribute::*;
        let pem: &[u8] = include_bytes!("../testdata/peer-one-spiffe.pem");
        let cases: [(Has, &[Attribute]); 5] = [
            (&[], &[PeerCertificate]),
            (&[(PeerCertificate, pem)], &[SubjectPeerCertificate]),
            (&[], &[PeerPrincipalFilterState]),
            (&[], &[UriSanPeerCertificate]),
            (
                &[(PeerPrincipalFilterState, b"spiffe://a/ns/b/sa/\x01")],
                &[],
            ),
        ];
        for (has, refuses) in cases {
            let (peer, _) = identity(has, refuses);
            assert!(peer.principals_unknown, "{has:?} {refuses:?}");
            assert!(peer.principals.is_empty());
        }
        let long = [b'a'; MAX_NAME_BYTES + 1];
        let (peer, _) = identity(&[(PeerPrincipalFilterState, &long)], &[]);
        assert!(peer.principals_unknown);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn metadata_is_read_whole_or_not_at_all() {
        // Metadata {"ns": {"c": "x", "d": <a Value cut short>}}: `c` alone reads,
        // but one unreadable key makes every value unknown.
        let ld = |number: u8, body: &[u8]| {
            let mut out = vec![(number << 3) | 2, body.len() as u8];
            out.extend_from_slice(body);
            out
        };
        let entry = |key: &[u8], value: &[u8]| ld(1, &[ld(1, key), ld(2, value)].concat());
        let fields = [
            entry(b"c", &ld(3, b"x")),
            entry(b"d", &[(3 << 3) | 2, 9, b'y']),
        ]
        .concat();
        let bytes = ld(1, &[ld(1, b"ns"), ld(2, &fields)].concat());
        let key = |k: &str| ("ns".to_string(), k.to_string());
        let only_c = Peer::default().with_metadata(&[key("c")], Ok(Some(bytes.clone())));
        assert_eq!(
            only_c.metadata,
            [(key("c"), metadata::MetadataValue::Text("x".into()))]
        );
        let both = Peer::default().with_metadata(&[key("c"), key("d")], Ok(Some(bytes)));
        assert!(both.metadata_unknown && both.metadata.is_empty());
        let refused = Peer::default().with_metadata(&[key("c")], Err(Refused));
        assert!(refused.metadata_unknown);
        let none = Peer::default().with_metadata(&[key("c")], Ok(None));
        assert!(!none.metadata_unknown && none.metadata.is_empty());
    }
}
