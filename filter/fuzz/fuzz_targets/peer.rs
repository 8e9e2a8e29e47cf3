//! Peer certificates: `peer::certificate::uri_sans` and `Peer::with_certificate`
//! on arbitrary bytes; and the dynamic metadata: `peer::metadata::value_of` and
//! `Peer::with_metadata`. The first byte picks the form: the bytes as the
//! certificate attribute's text, or as DER that the harness wraps in PEM (plain,
//! and URL-encoded as Envoy's `urlEncodedPemEncodedPeerCertificate()` writes it),
//! so mutations reach the DER walk; or as Envoy's serialized `Metadata`.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use oidc_filter::peer::certificate::{self, MAX_SUBJECT_ALT_NAMES};
use oidc_filter::peer::metadata::{self, MetadataValue};
use oidc_filter::peer::Peer;

fn pem(der: &[u8]) -> String {
    let base64 = STANDARD.encode(der);
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

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

/// What any accepted certificate must give; and the peer agrees with it.
fn check(attribute: &[u8]) -> Result<Vec<String>, certificate::Unreadable> {
    let names = certificate::alt_names(attribute);
    let peer = Peer::default().with_certificate(attribute, b"");
    match &names {
        Ok(names) => {
            assert!(names.uris.len() + names.dns.len() <= MAX_SUBJECT_ALT_NAMES);
            assert!(names
                .uris
                .iter()
                .chain(&names.dns)
                .all(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic())));
            assert!(!peer.principals_unknown);
            let spiffe: Vec<&str> = names
                .uris
                .iter()
                .filter_map(|uri| uri.strip_prefix("spiffe://"))
                .filter(|rest| !rest.is_empty())
                .collect();
            assert_eq!(peer.principals, spiffe);
            // Every name is one the policies see.
            assert_eq!(
                peer.names().len(),
                peer.principals.len() + peer.other_names.len()
            );
        }
        Err(_) => assert!(peer.principals_unknown && peer.principals.is_empty()),
    }
    names.map(|names| names.uris)
}

/// What any readable metadata must give; and the peer agrees with it.
fn check_metadata(bytes: &[u8]) {
    let keys = [("ns".to_string(), "c".to_string()), ("ns".to_string(), "d".to_string())];
    let peer = Peer::default().with_metadata(&keys, Ok(Some(bytes.to_vec())));
    let values: Vec<_> = keys
        .iter()
        .map(|(namespace, key)| metadata::value_of(bytes, namespace, key))
        .collect();
    if values.iter().any(Result::is_err) {
        assert!(peer.metadata_unknown && peer.metadata.is_empty());
        return;
    }
    assert!(!peer.metadata_unknown);
    let found: Vec<&MetadataValue> = values.iter().filter_map(|v| v.as_ref().ok()?.as_ref()).collect();
    assert_eq!(peer.metadata.iter().map(|(_, value)| value).collect::<Vec<_>>(), found);
    assert!(bytes.len() <= metadata::MAX_METADATA_BYTES || found.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            check(rest).ok();
        }
        1 => {
            let text = pem(rest);
            let plain = check(text.as_bytes());
            assert_eq!(plain, check(url_encoded(&text).as_bytes()));
        }
        _ => check_metadata(rest),
    }
});
