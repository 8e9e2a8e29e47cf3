//! The URI and DNS SANs of the downstream peer's certificate, read from Envoy's
//! `connection.peer_certificate` attribute: the leaf certificate's PEM in Envoy
//! 1.40 (seen in its log). URL-encoded PEM, as Envoy's
//! `urlEncodedPemEncodedPeerCertificate()` writes it, is read too; line breaks
//! are ignored wherever they are.
//!
//! Why not Envoy's `connection.uri_san_peer_certificate`: it holds only the first
//! URI SAN, while Envoy's RBAC filter (what Istio's `principals` become) matches
//! any of them, so a certificate naming a denied identity second would pass.
//!
//! Why the DNS SANs: Envoy's RBAC matches a principal against every URI SAN,
//! every DNS SAN and the subject (`AuthenticatedMatcher`), and Envoy gives only
//! the first DNS SAN as an attribute. The subject is not read here: Envoy's
//! `connection.subject_peer_certificate` attribute is the very string RBAC
//! matches (RFC 2253, as BoringSSL prints it), so formatting a DN here could only
//! differ from it.
//!
//! Only what finding the SANs needs is read: Certificate → tbsCertificate →
//! extensions `[3]` → subjectAltName (2.5.29.17) → GeneralNames → `[6]` URIs and
//! `[2]` DNS names.
//! The walk is strict DER (definite, minimal lengths; every element ends where
//! its parent does) and bounded; anything else is [`Unreadable`], which the
//! policies treat as an unknown identity. No signature is checked here: Envoy's
//! TLS handshake verified the certificate before any request reached the filter.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Larger certificates are refused. Mesh workload certificates are about 1 KiB;
/// 16 KiB leaves room for RSA-4096 keys and long names.
pub const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;
/// The attribute's text, before any decoding: a 16 KiB certificate is about
/// 22 KiB of PEM, three times that URL-encoded.
const MAX_TEXT_BYTES: usize = 3 * 24 * 1024;
/// More names than this in the subjectAltName extension are refused.
pub const MAX_SUBJECT_ALT_NAMES: usize = 64;

/// The certificate could not be read, or exceeds a bound: which identities it
/// names is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OBJECT_IDENTIFIER: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
/// `version [0] EXPLICIT`, `issuerUniqueID [1] IMPLICIT`, `subjectUniqueID [2]
/// IMPLICIT`, `extensions [3] EXPLICIT`, in tbsCertificate.
const TBS_VERSION: u8 = 0xa0;
const TBS_ISSUER_UNIQUE_ID: u8 = 0x81;
const TBS_SUBJECT_UNIQUE_ID: u8 = 0x82;
const TBS_EXTENSIONS: u8 = 0xa3;
/// 2.5.29.17, the content octets of the subjectAltName OID.
const SUBJECT_ALT_NAME_OID: [u8; 3] = [0x55, 0x1d, 0x11];
/// `uniformResourceIdentifier [6] IMPLICIT IA5String` and `dNSName [2] IMPLICIT
/// IA5String`; the other GeneralName choices of RFC 5280 (otherName [0] ...
/// registeredID [8]) are skipped.
const GENERAL_NAME_URI: u8 = 0x86;
const GENERAL_NAME_DNS: u8 = 0x82;

/// The names of a certificate's subjectAltName extension that Envoy's RBAC
/// matches, each list in the certificate's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
}

/// The URI and DNS SANs of the certificate in `text` (the attribute's bytes). A
/// certificate without a subjectAltName extension, or without such names in it,
/// has none.
pub fn alt_names(text: &[u8]) -> Result<AltNames, Unreadable> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Unreadable);
    }
    let der = pem_body(&pem_without_line_breaks(text)?)?;
    if der.len() > MAX_CERTIFICATE_BYTES {
        return Err(Unreadable);
    }
    alt_names_of_der(&der)
}

/// The PEM text with `%XX` escapes decoded and line breaks left out. Every other
/// byte stays as it is (`+` stays `+`: Envoy's encoding escapes it, and PEM's
/// base64 uses it); plain PEM has no `%`. One pass for both, in one buffer: the
/// module stays small.
fn pem_without_line_breaks(text: &[u8]) -> Result<Vec<u8>, Unreadable> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter();
    while let Some(&byte) = bytes.next() {
        let byte = if byte == b'%' {
            let high = hex_digit(bytes.next());
            let low = hex_digit(bytes.next());
            let (Some(high), Some(low)) = (high, low) else {
                return Err(Unreadable);
            };
            high << 4 | low
        } else {
            byte
        };
        if byte != b'\n' && byte != b'\r' {
            out.push(byte);
        }
    }
    Ok(out)
}

fn hex_digit(byte: Option<&u8>) -> Option<u8> {
    match byte? {
        byte @ b'0'..=b'9' => Some(byte - b'0'),
        byte @ b'a'..=b'f' => Some(byte - b'a' + 10),
        byte @ b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The DER inside one PEM `CERTIFICATE` block (line breaks already left out):
/// the begin line, base64, the end line, and nothing else.
fn pem_body(pem: &[u8]) -> Result<Vec<u8>, Unreadable> {
    // As text: the module has `str`'s prefix and suffix code already.
    let base64 = std::str::from_utf8(pem)
        .ok()
        .and_then(|text| text.strip_prefix(PEM_BEGIN))
        .and_then(|rest| rest.strip_suffix(PEM_END))
        .filter(|base64| !base64.is_empty())
        .ok_or(Unreadable)?;
    STANDARD.decode(base64).map_err(|_| Unreadable)
}

/// Certificate: tbsCertificate, signatureAlgorithm, signatureValue. Each layout
/// is (tag, optional) per field, read in order by [`fields`].
const CERTIFICATE: [(u8, bool); 3] = [(SEQUENCE, false), (SEQUENCE, false), (BIT_STRING, false)];
/// tbsCertificate: version, serialNumber, then signature, issuer, validity, subject
/// and subjectPublicKeyInfo, the two unique IDs, extensions.
const TBS_CERTIFICATE: [(u8, bool); 10] = [
    (TBS_VERSION, true),
    (INTEGER, false),
    (SEQUENCE, false),
    (SEQUENCE, false),
    (SEQUENCE, false),
    (SEQUENCE, false),
    (SEQUENCE, false),
    (TBS_ISSUER_UNIQUE_ID, true),
    (TBS_SUBJECT_UNIQUE_ID, true),
    (TBS_EXTENSIONS, true),
];
/// Extension: extnID, critical, extnValue.
const EXTENSION: [(u8, bool); 3] = [
    (OBJECT_IDENTIFIER, false),
    (BOOLEAN, true),
    (OCTET_STRING, false),
];

fn alt_names_of_der(der: &[u8]) -> Result<AltNames, Unreadable> {
    let mut certificate = [None; 3];
    fields(only(der, SEQUENCE)?, &CERTIFICATE, &mut certificate)?;
    let [Some(tbs_certificate), ..] = certificate else {
        return Err(Unreadable);
    };
    let mut tbs = [None; 10];
    fields(tbs_certificate, &TBS_CERTIFICATE, &mut tbs)?;
    let [.., extensions] = tbs;
    let Some(extensions) = extensions else {
        return Ok(AltNames::default());
    };
    let mut list = Reader(only(extensions, SEQUENCE)?);
    let mut general_names = None;
    while !list.is_empty() {
        let mut extension = [None; 3];
        fields(list.expect(SEQUENCE)?, &EXTENSION, &mut extension)?;
        let [Some(oid), critical, Some(value)] = extension else {
            return Err(Unreadable);
        };
        // DER's TRUE is 0xff, its FALSE 0x00.
        if critical.is_some_and(|flag| flag != [0xff] && flag != [0x00]) {
            return Err(Unreadable);
        }
        if oid == SUBJECT_ALT_NAME_OID {
            // RFC 5280 allows one instance of an extension; with two, which one a
            // TLS library reads is its choice.
            if general_names.is_some() {
                return Err(Unreadable);
            }
            general_names = Some(value);
        }
    }
    general_names.map_or(Ok(AltNames::default()), names_in_general_names)
}

/// Reads `contents` as the fields of `layout`, in order, and nothing after them:
/// each field's contents into `out`, `None` for an absent optional one. (One loop
/// over a table rather than a call per field: less code in the module.)
fn fields<'a>(
    contents: &'a [u8],
    layout: &[(u8, bool)],
    out: &mut [Option<&'a [u8]>],
) -> Result<(), Unreadable> {
    let mut reader = Reader(contents);
    for (&(tag, optional), slot) in layout.iter().zip(out.iter_mut()) {
        *slot = if optional {
            reader.optional(tag)?
        } else {
            Some(reader.expect(tag)?)
        };
    }
    reader.end()
}

/// The contents of the one element, with `tag`, that `contents` holds.
fn only(contents: &[u8], tag: u8) -> Result<&[u8], Unreadable> {
    let mut reader = Reader(contents);
    let inner = reader.expect(tag)?;
    reader.end()?;
    Ok(inner)
}

/// The URIs and DNS names of a GeneralNames (`SEQUENCE SIZE (1..MAX) OF
/// GeneralName`).
fn names_in_general_names(value: &[u8]) -> Result<AltNames, Unreadable> {
    let mut names = Reader(only(value, SEQUENCE)?);
    if names.is_empty() {
        return Err(Unreadable);
    }
    let mut found = AltNames::default();
    let mut count = 0usize;
    while !names.is_empty() {
        count += 1;
        if count > MAX_SUBJECT_ALT_NAMES {
            return Err(Unreadable);
        }
        let (tag, content) = names.element()?;
        match tag {
            GENERAL_NAME_URI => found.uris.push(visible_ia5(content)?),
            GENERAL_NAME_DNS => found.dns.push(visible_ia5(content)?),
            0xa0 | 0x81 | 0xa3 | 0xa4 | 0xa5 | 0x87 | 0x88 => {}
            _ => return Err(Unreadable),
        }
    }
    Ok(found)
}

/// A URI's or DNS name's IA5String: visible ASCII only (neither has spaces or
/// controls). A name we cannot compare exactly as Envoy would makes the identity
/// unknown.
fn visible_ia5(content: &[u8]) -> Result<String, Unreadable> {
    if content.is_empty() || !content.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Unreadable);
    }
    String::from_utf8(content.to_vec()).map_err(|_| Unreadable)
}

/// The unread rest of one DER element's contents.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nothing may follow the last expected element.
    fn end(&self) -> Result<(), Unreadable> {
        self.is_empty().then_some(()).ok_or(Unreadable)
    }

    /// The next element's tag and contents. Low tag numbers only (none of the
    /// certificate fields read needs more); lengths definite and minimal.
    fn element(&mut self) -> Result<(u8, &'a [u8]), Unreadable> {
        let (&tag, rest) = self.0.split_first().ok_or(Unreadable)?;
        if tag & 0x1f == 0x1f {
            return Err(Unreadable);
        }
        let (&first, mut rest) = rest.split_first().ok_or(Unreadable)?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            // 0x80 is BER's indefinite length; DER forbids it. More than two
            // length bytes would exceed any certificate we accept.
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 2 {
                return Err(Unreadable);
            }
            let (digits, after) = rest.split_at_checked(count).ok_or(Unreadable)?;
            rest = after;
            let length = digits
                .iter()
                .fold(0usize, |value, digit| value << 8 | usize::from(*digit));
            // Minimal: the long form only past 127, with no leading zero byte.
            if length < 0x80 || matches!(digits.first(), Some(0)) {
                return Err(Unreadable);
            }
            length
        };
        let (contents, after) = rest.split_at_checked(length).ok_or(Unreadable)?;
        self.0 = after;
        Ok((tag, contents))
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], Unreadable> {
        match self.element()? {
            (found, contents) if found == tag => Ok(contents),
            _ => Err(Unreadable),
        }
    }

    /// The next element's contents if it has `tag`; nothing read otherwise.
    fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, Unreadable> {
        if matches!(self.0.first(), Some(&first) if first == tag) {
            self.expect(tag).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn testdata(name: &str) -> &'static str {
        match name {
            "one-spiffe" => include_str!("../../testdata/peer-one-spiffe.pem"),
            "two-spiffe" => include_str!("../../testdata/peer-two-spiffe.pem"),
            "uri-and-dns" => include_str!("../../testdata/peer-uri-and-dns.pem"),
            "no-san" => include_str!("../../testdata/peer-no-san.pem"),
            "https-uri" => include_str!("../../testdata/peer-https-uri.pem"),
            "rsa-critical-ext" => include_str!("../../testdata/peer-rsa-critical-ext.pem"),
            "v1-no-extensions" => include_str!("../../testdata/peer-v1-no-extensions.pem"),
            "dns-only" => include_str!("../../testdata/peer-dns-only.pem"),
            _ => panic!("no test certificate {name}"),
        }
    }

    fn uri_sans(text: &[u8]) -> Result<Vec<String>, Unreadable> {
        alt_names(text).map(|names| names.uris)
    }

    fn der_of(name: &str) -> Vec<u8> {
        pem_body(&pem_without_line_breaks(testdata(name).as_bytes()).unwrap()).unwrap()
    }

    fn pem_of(der: &[u8]) -> String {
        let base64 = STANDARD.encode(der);
        let lines: Vec<&str> = base64
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", lines.join("\n"))
    }

    /// As Envoy's `urlEncodedPemEncodedPeerCertificate()` writes it: every byte
    /// but letters, digits and `-._~` escaped.
    fn url_encoded(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_every_uri_san_of_real_certificates() {
        let cases: [(&str, &[&str]); 8] = [
            ("one-spiffe", &["spiffe://cluster.local/ns/foo/sa/sleep"]),
            (
                "two-spiffe",
                &[
                    "spiffe://cluster.local/ns/good/sa/x",
                    "spiffe://cluster.local/ns/evil/sa/y",
                ],
            ),
            ("uri-and-dns", &["spiffe://cluster.local/ns/foo/sa/sleep"]),
            ("no-san", &[]),
            ("https-uri", &["https://example.test/workload"]),
            ("rsa-critical-ext", &["spiffe://example.org/ns/rsa/sa/r"]),
            ("v1-no-extensions", &[]),
            ("dns-only", &[]),
        ];
        for (name, expected) in cases {
            let pem = testdata(name);
            assert_eq!(uri_sans(pem.as_bytes()).unwrap(), expected, "{name}");
            let encoded = url_encoded(pem);
            assert!(encoded.contains('%'));
            assert_eq!(
                uri_sans(encoded.as_bytes()).unwrap(),
                expected,
                "{name} URL-encoded"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_every_dns_san_of_real_certificates() {
        let cases: [(&str, &[&str]); 4] = [
            ("uri-and-dns", &["sleep.foo.svc", "example.test"]),
            ("dns-only", &["web.example.test", "*.example.test"]),
            ("one-spiffe", &[]),
            ("no-san", &[]),
        ];
        for (name, expected) in cases {
            let names = alt_names(testdata(name).as_bytes()).unwrap();
            assert_eq!(names.dns, expected, "{name}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_what_is_not_one_pem_certificate() {
        let pem = testdata("one-spiffe");
        let body = pem
            .strip_prefix(PEM_BEGIN)
            .and_then(|rest| rest.trim_end().strip_suffix(PEM_END))
            .unwrap();
        for bad in [
            String::new(),
            "%".into(),
            "%4".into(),
            "%G1".into(),
            pem.replace(
                "-----BEGIN CERTIFICATE-----\nMII",
                "-----BEGIN CERTIFICATE-----\n%ZZMII",
            ),
            pem.replace("CERTIFICATE", "PRIVATE KEY"),
            format!("{PEM_BEGIN}\n{PEM_END}\n"),
            format!("{PEM_BEGIN}{body}"),
            format!("{PEM_BEGIN}{body}{PEM_END}\n{pem}"),
            format!(" {pem}"),
            format!("{pem}x"),
            pem.replacen('M', " M", 1),
            pem.replacen('M', "*", 1),
            // Base64 that is not canonical: a padding character lost.
            pem.replacen("=\n", "\n", 1),
            "x".repeat(MAX_TEXT_BYTES + 1),
        ] {
            assert_eq!(uri_sans(bad.as_bytes()), Err(Unreadable), "{bad:?}");
        }
        assert_eq!(uri_sans(b"\xff\xfe"), Err(Unreadable));
    }

    /// A DER element: tag, minimal length, contents.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = contents.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend(contents);
        out
    }

    fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(SEQUENCE, &parts.concat())
    }

    fn extension(oid: &[u8], critical: Option<bool>, value: &[u8]) -> Vec<u8> {
        let mut parts = vec![tlv(OBJECT_IDENTIFIER, oid)];
        if let Some(critical) = critical {
            parts.push(tlv(BOOLEAN, &[if critical { 0xff } else { 0 }]));
        }
        parts.push(tlv(OCTET_STRING, value));
        sequence(&parts)
    }

    fn san(names: &[Vec<u8>]) -> Vec<u8> {
        extension(&SUBJECT_ALT_NAME_OID, None, &sequence(names))
    }

    fn uri(text: &str) -> Vec<u8> {
        tlv(GENERAL_NAME_URI, text.as_bytes())
    }

    /// A certificate's structure with these extensions (`None`: no `[3]`) and a
    /// subject of `subject_bytes` bytes; nothing in it is signed.
    fn certificate(extensions: Option<&[Vec<u8>]>, subject_bytes: usize) -> Vec<u8> {
        let algorithm = sequence(&[tlv(
            OBJECT_IDENTIFIER,
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2],
        )]);
        let name = sequence(&[tlv(0x31, &vec![b'a'; subject_bytes])]);
        let mut tbs = vec![
            tlv(TBS_VERSION, &tlv(INTEGER, &[2])),
            tlv(INTEGER, &[1]),
            algorithm.clone(),
            sequence(&[]),
            sequence(&[]),
            name,
            sequence(&[]),
        ];
        if let Some(extensions) = extensions {
            tbs.push(tlv(TBS_EXTENSIONS, &sequence(extensions)));
        }
        sequence(&[sequence(&tbs), algorithm, tlv(BIT_STRING, &[0])])
    }

    fn uris_of(der: &[u8]) -> Result<Vec<String>, Unreadable> {
        uri_sans(pem_of(der).as_bytes())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_structure_rfc_5280_allows() {
        let other = extension(&[0x55, 0x1d, 0x13], Some(true), &sequence(&[]));
        let names = [
            uri("spiffe://a/ns/b/sa/c"),
            tlv(0x82, b"dns.test"),
            uri("urn:x"),
        ];
        let der = certificate(Some(&[other.clone(), san(&names), other]), 10);
        assert_eq!(uris_of(&der).unwrap(), ["spiffe://a/ns/b/sa/c", "urn:x"]);
        assert_eq!(
            alt_names(pem_of(&der).as_bytes()).unwrap().dns,
            ["dns.test"]
        );
        // Critical flag present, false.
        let der = certificate(
            Some(&[extension(
                &SUBJECT_ALT_NAME_OID,
                Some(false),
                &sequence(&[uri("urn:y")]),
            )]),
            10,
        );
        assert_eq!(uris_of(&der).unwrap(), ["urn:y"]);
        assert_eq!(
            uris_of(&certificate(None, 10)).unwrap(),
            Vec::<String>::new()
        );
        let many: Vec<Vec<u8>> = (0..MAX_SUBJECT_ALT_NAMES)
            .map(|i| uri(&format!("urn:{i}")))
            .collect();
        assert_eq!(
            uris_of(&certificate(Some(&[san(&many)]), 10))
                .unwrap()
                .len(),
            64
        );
        // Just under the size bound.
        let big = certificate(None, MAX_CERTIFICATE_BYTES - 100);
        assert!(big.len() <= MAX_CERTIFICATE_BYTES);
        assert!(uris_of(&big).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_certificates_past_the_bounds_or_off_the_rules() {
        let too_many: Vec<Vec<u8>> = (0..=MAX_SUBJECT_ALT_NAMES)
            .map(|i| uri(&format!("urn:{i}")))
            .collect();
        let two_sans = [san(&[uri("urn:a")]), san(&[uri("urn:b")])];
        let not_der_flag = sequence(&[
            tlv(OBJECT_IDENTIFIER, &SUBJECT_ALT_NAME_OID),
            tlv(BOOLEAN, &[1]),
            tlv(OCTET_STRING, &sequence(&[uri("urn:a")])),
        ]);
        let cases: [(&str, Vec<u8>); 12] = [
            ("over 64 names", certificate(Some(&[san(&too_many)]), 10)),
            ("over 16 KiB", certificate(None, MAX_CERTIFICATE_BYTES)),
            ("two SAN extensions", certificate(Some(&two_sans), 10)),
            ("empty GeneralNames", certificate(Some(&[san(&[])]), 10)),
            (
                "URI with a space",
                certificate(Some(&[san(&[uri("urn:a b")])]), 10),
            ),
            (
                "DNS name with a space",
                certificate(Some(&[san(&[tlv(GENERAL_NAME_DNS, b"a b.test")])]), 10),
            ),
            (
                "empty DNS name",
                certificate(Some(&[san(&[tlv(GENERAL_NAME_DNS, b"")])]), 10),
            ),
            (
                "URI with a control",
                certificate(Some(&[san(&[uri("spiffe://a/ns/b\n")])]), 10),
            ),
            ("empty URI", certificate(Some(&[san(&[uri("")])]), 10)),
            (
                "unknown GeneralName tag",
                certificate(Some(&[san(&[tlv(0x89, b"x")])]), 10),
            ),
            (
                "constructed URI",
                certificate(Some(&[san(&[tlv(0xa6, &tlv(0x16, b"urn:a"))])]), 10),
            ),
            (
                "critical flag not DER",
                certificate(Some(&[not_der_flag]), 10),
            ),
        ];
        for (what, der) in cases {
            assert_eq!(uris_of(&der), Err(Unreadable), "{what}");
        }
        let mut non_ascii = certificate(Some(&[san(&[uri("urn:a")])]), 10);
        let at = non_ascii.windows(5).position(|w| w == b"urn:a").unwrap();
        non_ascii[at + 4] = 0xc3;
        assert_eq!(uris_of(&non_ascii), Err(Unreadable));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn hostile_der_is_unreadable() {
        let good = der_of("two-spiffe");
        assert_eq!(good[0], SEQUENCE);
        assert_eq!(good[1], 0x82, "a two-byte long-form length");
        let with = |at: usize, bytes: &[u8], skip: usize| {
            let mut der = good[..at].to_vec();
            der.extend(bytes);
            der.extend(&good[at + skip..]);
            der
        };
        let length = usize::from(good[2]) << 8 | usize::from(good[3]);
        let cases = [
            ("wrong outer tag", with(0, &[0x31], 1)),
            ("high tag number", with(0, &[0x3f, 0x10], 1)),
            ("indefinite length", with(1, &[0x80], 3)),
            (
                "length too long",
                with(2, &((length + 1) as u16).to_be_bytes(), 2),
            ),
            (
                "length too short",
                with(2, &((length - 1) as u16).to_be_bytes(), 2),
            ),
            ("huge length", with(1, &[0x84, 0xff, 0xff, 0xff, 0xff], 3)),
            (
                "eight length bytes",
                with(1, &[0x88, 0, 0, 0, 0, 0, 0, 2, 0], 3),
            ),
            ("non-minimal length", with(1, &[0x83, 0], 1)),
            ("trailing byte", with(good.len(), &[0], 0)),
            ("nothing", Vec::new()),
        ];
        for (what, der) in cases {
            assert_eq!(uris_of(&der), Err(Unreadable), "{what}");
        }
        for cut in 0..good.len() {
            assert_eq!(uris_of(&good[..cut]), Err(Unreadable), "cut at {cut}");
        }
        // Short-form length in long form.
        let small = certificate(None, 0);
        assert!(small.len() < 0x80);
        let mut long_form = vec![SEQUENCE, 0x81];
        long_form.extend(&small[1..]);
        assert_eq!(uris_of(&long_form), Err(Unreadable));
    }

    /// Every byte of real certificates, set to values that stress lengths and
    /// tags: any verdict, never a panic, and what is read is still visible ASCII.
    #[wasm_bindgen_test(unsupported = test)]
    fn mutated_certificates_never_panic() {
        for name in ["two-spiffe", "uri-and-dns", "rsa-critical-ext", "dns-only"] {
            let good = der_of(name);
            for at in 0..good.len() {
                for value in [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff, good[at] ^ 1] {
                    let mut der = good.clone();
                    der[at] = value;
                    if let Ok(names) = alt_names_of_der(&der) {
                        assert!(names.uris.len() + names.dns.len() <= MAX_SUBJECT_ALT_NAMES);
                        for name in names.uris.iter().chain(&names.dns) {
                            assert!(name.bytes().all(|b| b.is_ascii_graphic()));
                        }
                    }
                }
            }
        }
    }
}
