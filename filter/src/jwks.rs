//! JWKS documents parsed into verification keys, and key selection for a token.
//!
//! Real key sets mix keys we cannot use (encryption keys, `oct`, other curves); those
//! are skipped, not fatal. A document with no usable signing key is an error, so a
//! broken fetch never replaces a good cached set.

use crate::crypto::der::{self, Curve};
use crate::crypto::ec::{P256Key, P384Key};
use crate::crypto::ed25519;
use crate::crypto::rsa::RsaPublicKey;
use crate::token::Algorithm;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// Most keys a set may hold; real IdPs publish two or three.
pub const MAX_KEYS: usize = 64;
/// Most keys tried for one token that carries no usable `kid`.
pub const MAX_CANDIDATES: usize = 8;
/// Keys of a set whose tables are built when the set arrives ([`KeySet::prepare`]);
/// the rest build theirs on first use. IdPs sign with one to three keys, listed
/// first, and a full set of tables (`MAX_KEYS`) would cost megabytes per VM.
pub const PREPARED_KEYS: usize = 8;
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Key material is base64url; some IdPs pad it, which is harmless to accept.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Clone, Debug)]
pub enum PublicKey {
    Rsa(RsaPublicKey),
    P256(P256Key),
    P384(P384Key),
    Ed25519(ed25519::VerifyingKey),
}

impl PublicKey {
    /// Builds what the key's verifications need (precomputed tables) now.
    /// RSA keys need nothing beyond what parsing computed.
    pub fn prepare(&self) {
        match self {
            Self::Rsa(_) => {}
            Self::P256(key) => key.prepare(),
            Self::P384(key) => key.prepare(),
            Self::Ed25519(key) => key.prepare(),
        }
    }

    fn fits(&self, algorithm: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, algorithm),
            (Self::Rsa(_), Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512)
                | (Self::P256(_), Es256)
                | (Self::P384(_), Es384)
                | (Self::Ed25519(_), EdDsa)
        )
    }
}

#[derive(Clone, Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    /// When the JWK names an `alg`, only that algorithm may use it.
    pub alg: Option<Algorithm>,
    pub key: PublicKey,
    /// The key as a DER SubjectPublicKeyInfo, for the host's `verify_signature`:
    /// built once here rather than per token. `None` for Ed25519, which the host
    /// never verifies. Clones of the set share it.
    pub spki: Option<Arc<[u8]>>,
}

#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
    /// Why some entries of the document were not used, for logs.
    pub skipped: Vec<String>,
    /// Identifies the document: a token verified with one set is re-verified once
    /// the set changes (a key may have been withdrawn).
    pub fingerprint: u64,
}

impl KeySet {
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Called when a set arrives (at load for inline `jwks`, after each fetch):
    /// the first [`PREPARED_KEYS`] keys build their tables, and the curves theirs,
    /// so no request waits for them. Clones of the set share the tables.
    pub fn prepare(&self) {
        for jwk in self.keys.iter().take(PREPARED_KEYS) {
            jwk.key.prepare();
        }
    }

    /// Keys that may verify a token with this `alg` and `kid`, as Envoy selects them:
    /// a key with a `kid` must match the token's `kid`; a key without one matches any.
    pub fn candidates(&self, algorithm: Algorithm, kid: Option<&str>) -> Vec<&Jwk> {
        self.keys
            .iter()
            .filter(|jwk| jwk.key.fits(algorithm))
            .filter(|jwk| jwk.alg.is_none_or(|alg| alg == algorithm))
            .filter(|jwk| match (kid, jwk.kid.as_deref()) {
                (Some(wanted), Some(have)) => wanted == have,
                _ => true,
            })
            .take(MAX_CANDIDATES)
            .collect()
    }
}

pub fn parse_jwks(bytes: &[u8], max_bytes: usize) -> Result<KeySet, String> {
    if bytes.len() > max_bytes {
        return Err(format!(
            "JWKS is {} bytes, more than maxJwksBytes ({max_bytes})",
            bytes.len()
        ));
    }
    let document = crate::strict_json::parse_object(bytes).map_err(|why| format!("JWKS: {why}"))?;
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Err("JWKS has no `keys` array".into());
    };
    let digest = Sha256::digest(bytes);
    let mut set = KeySet {
        fingerprint: digest
            .iter()
            .take(8)
            .fold(0, |fingerprint, byte| fingerprint << 8 | u64::from(*byte)),
        ..KeySet::default()
    };
    for (index, entry) in entries.iter().enumerate() {
        if set.keys.len() == MAX_KEYS {
            set.skipped
                .push(format!("keys[{index}..]: more than {MAX_KEYS} keys"));
            break;
        }
        match entry
            .as_object()
            .ok_or("not an object".to_string())
            .and_then(parse_jwk)
        {
            Ok(jwk) => set.keys.push(jwk),
            Err(why) => set.skipped.push(format!("keys[{index}]: {why}")),
        }
    }
    if entries.is_empty() {
        return Err(
            "JWKS `keys` is empty: it needs a signing key (kty RSA, EC P-256 or \
                    P-384, or OKP Ed25519)"
                .into(),
        );
    }
    if set.keys.is_empty() {
        return Err(format!(
            "JWKS has no usable signing key ({})",
            set.skipped.join("; ")
        ));
    }
    Ok(set)
}

#[inline(never)]
fn parse_jwk(jwk: &Map<String, Value>) -> Result<Jwk, String> {
    if jwk.get("use").is_some_and(|usage| usage != "sig") {
        return Err("`use` is not `sig`".into());
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"));
        if !verifies {
            return Err("`key_ops` does not include `verify`".into());
        }
    }
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| jwk.contains_key(*member))
    {
        return Err("contains private key material; refusing to use it".into());
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("`kid` is not a string".into()),
    };
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            Some(Algorithm::from_name(name).ok_or_else(|| format!("unsupported alg `{name}`"))?)
        }
        Some(_) => return Err("`alg` is not a string".into()),
    };
    let (key, spki) = match text_member(jwk, "kty")? {
        "RSA" => rsa_key(jwk)?,
        "EC" => ec_key(jwk)?,
        "OKP" => (okp_key(jwk)?, None),
        other => return Err(format!("unsupported kty `{other}`")),
    };
    if let Some(alg) = alg {
        if !key.fits(alg) {
            return Err(format!("alg `{}` does not fit the key type", alg.name()));
        }
    }
    Ok(Jwk {
        kid,
        alg,
        key,
        spki: spki.map(Arc::from),
    })
}

fn text_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{name}` is missing or not a string"))
}

fn bytes_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    KEY_BASE64
        .decode(text_member(jwk, name)?)
        .map_err(|_| format!("`{name}` is not base64url"))
}

/// The key and its SubjectPublicKeyInfo.
type KeyWithSpki = (PublicKey, Option<Vec<u8>>);

#[inline(never)]
fn rsa_key(jwk: &Map<String, Value>) -> Result<KeyWithSpki, String> {
    let (n, e) = (bytes_member(jwk, "n")?, bytes_member(jwk, "e")?);
    let key = RsaPublicKey::new(&n, &e).map_err(|error| error.to_string())?;
    Ok((PublicKey::Rsa(key), Some(der::rsa_spki(&n, &e))))
}

#[inline(never)]
fn ec_key(jwk: &Map<String, Value>) -> Result<KeyWithSpki, String> {
    let curve = text_member(jwk, "crv")?;
    let (coordinate_len, named) = match curve {
        "P-256" => (32, Curve::P256),
        "P-384" => (48, Curve::P384),
        other => return Err(format!("unsupported EC curve `{other}`")),
    };
    let x = bytes_member(jwk, "x")?;
    let y = bytes_member(jwk, "y")?;
    if x.len() != coordinate_len || y.len() != coordinate_len {
        return Err(format!(
            "{curve} coordinates must be {coordinate_len} bytes"
        ));
    }
    let invalid = || format!("{curve} point is not on the curve");
    let key = match named {
        Curve::P256 => P256Key::from_coordinates(&x, &y).map(PublicKey::P256),
        Curve::P384 => P384Key::from_coordinates(&x, &y).map(PublicKey::P384),
    }
    .ok_or_else(invalid)?;
    Ok((key, Some(der::ec_spki(named, &x, &y))))
}

#[inline(never)]
fn okp_key(jwk: &Map<String, Value>) -> Result<PublicKey, String> {
    let curve = text_member(jwk, "crv")?;
    if curve != "Ed25519" {
        return Err(format!("unsupported OKP curve `{curve}`"));
    }
    ed25519::VerifyingKey::from_bytes(&bytes_member(jwk, "x")?)
        .map(PublicKey::Ed25519)
        .ok_or_else(|| "Ed25519 `x` must be 32 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::{jwks_of, TestKey};
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn without(mut jwk: Value, member: &str) -> Value {
        jwk.as_object_mut().unwrap().remove(member);
        jwk
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_every_supported_key_type() {
        let keys = TestKey::all();
        let refs: Vec<&TestKey> = keys.iter().collect();
        let set = parse_jwks(jwks_of(&refs).as_bytes(), 1 << 20).unwrap();
        assert_eq!(set.keys().len(), keys.len());
        assert!(set.skipped.is_empty(), "{:?}", set.skipped);
    }

    fn table_bytes(jwk: &Jwk) -> Option<usize> {
        match &jwk.key {
            PublicKey::P256(key) => key.table_bytes(),
            PublicKey::P384(key) => key.table_bytes(),
            PublicKey::Ed25519(key) => key.table_bytes(),
            PublicKey::Rsa(_) => Some(0),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_prepared_set_has_the_tables_of_its_first_keys_and_clones_share_them() {
        let keys: Vec<TestKey> = (0..PREPARED_KEYS + 1)
            .map(|i| {
                let alg = [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Es384][i % 3];
                TestKey::new(alg, &format!("k{i}"))
            })
            .collect();
        let refs: Vec<&TestKey> = keys.iter().collect();
        let set = parse_jwks(jwks_of(&refs).as_bytes(), 1 << 20).unwrap();
        assert!(set.keys().iter().all(|jwk| table_bytes(jwk).is_none()));
        let clone = set.clone();
        set.prepare();
        let (first, rest) = clone.keys().split_at(PREPARED_KEYS);
        assert!(first
            .iter()
            .all(|jwk| table_bytes(jwk).is_some_and(|bytes| bytes > 0)));
        assert!(rest.iter().all(|jwk| table_bytes(jwk).is_none()));
        // A prepared key still verifies (and an unprepared one builds on first use).
        for (key, jwk) in keys.iter().zip(clone.keys()) {
            let (message, signature) = key.signed_message();
            let alg = key.algorithm;
            assert!(crate::verifier::verify(
                alg,
                &jwk.key,
                message.as_bytes(),
                &signature
            ));
        }
        assert!(table_bytes(&clone.keys()[PREPARED_KEYS]).is_some());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rsa_and_ec_keys_carry_their_spki_and_ed25519_none() {
        let keys = TestKey::all();
        let refs: Vec<&TestKey> = keys.iter().collect();
        let set = parse_jwks(jwks_of(&refs).as_bytes(), 1 << 20).unwrap();
        for jwk in set.keys() {
            let spki = jwk.spki.as_deref();
            match &jwk.key {
                PublicKey::Ed25519(_) => assert!(spki.is_none()),
                // SEQUENCE, with the algorithm's OID inside (the encodings
                // themselves are checked in `crypto::der`).
                PublicKey::Rsa(_) => assert!(spki.is_some_and(|der| der[0] == 0x30
                    && der
                        .windows(9)
                        .any(|oid| oid == b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"))),
                PublicKey::P256(_) | PublicKey::P384(_) => {
                    assert!(spki.is_some_and(|der| der[0] == 0x30
                        && der
                            .windows(7)
                            .any(|oid| oid == b"\x2a\x86\x48\xce\x3d\x02\x01")))
                }
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_without_alg_serve_every_algorithm_of_their_type() {
        let rsa = TestKey::new(Algorithm::Rs256, "r");
        let jwks = json!({ "keys": [without(rsa.public_jwk(), "alg")] }).to_string();
        let set = parse_jwks(jwks.as_bytes(), 1 << 20).unwrap();
        for alg in [Algorithm::Rs256, Algorithm::Ps512] {
            assert_eq!(set.candidates(alg, Some("r")).len(), 1);
        }
        assert!(set.candidates(Algorithm::Es256, Some("r")).is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn selection_follows_kid_then_alg() {
        let a = TestKey::new(Algorithm::Rs256, "a");
        let b = TestKey::new(Algorithm::Es256, "b");
        let set = parse_jwks(jwks_of(&[&a, &b]).as_bytes(), 1 << 20).unwrap();
        assert_eq!(set.candidates(Algorithm::Rs256, Some("a")).len(), 1);
        assert!(set.candidates(Algorithm::Rs256, Some("b")).is_empty());
        assert!(
            set.candidates(Algorithm::Rs384, Some("a")).is_empty(),
            "alg pinned by JWK"
        );
        assert_eq!(set.candidates(Algorithm::Es256, None).len(), 1);
        assert!(set.candidates(Algorithm::Rs256, Some("missing")).is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn skips_unusable_entries_but_keeps_the_rest() {
        let good = TestKey::new(Algorithm::Es256, "good").public_jwk();
        let jwks = json!({ "keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
            {"kty": "EC", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"},
            {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
            {"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"},
            7,
            good,
        ]})
        .to_string();
        let set = parse_jwks(jwks.as_bytes(), 1 << 20).unwrap();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.skipped.len(), 8, "{:?}", set.skipped);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_points_off_the_curve_and_private_keys() {
        let mut off_curve = TestKey::new(Algorithm::Es256, "k").public_jwk();
        off_curve["y"] = json!(off_curve["x"].clone());
        let with_private = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"});
        for jwk in [off_curve, with_private] {
            let jwks = json!({ "keys": [jwk] }).to_string();
            assert!(parse_jwks(jwks.as_bytes(), 1 << 20).is_err());
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_documents_that_are_not_key_sets() {
        for doc in [
            "",
            "[]",
            "{}",
            r#"{"keys":{}}"#,
            r#"{"keys":[]}"#,
            "<html>",
            r#"{"keys":[],"keys":[]}"#,
        ] {
            assert!(parse_jwks(doc.as_bytes(), 1 << 20).is_err(), "{doc}");
        }
        // An empty set says so, not `no usable signing key ()`.
        let empty = parse_jwks(br#"{"keys":[]}"#, 1 << 20).unwrap_err();
        assert!(empty.starts_with("JWKS `keys` is empty"), "{empty}");
        let big = jwks_of(&[&TestKey::new(Algorithm::Es256, "k")]);
        assert!(parse_jwks(big.as_bytes(), 10).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ed25519_keys_are_refused_only_for_their_length() {
        let short = json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"});
        let error = parse_jwks(json!({ "keys": [short] }).to_string().as_bytes(), 1 << 20);
        assert!(error.unwrap_err().contains("Ed25519 `x` must be 32 bytes"));
        // As in Envoy's jwt_verify_lib: 32 bytes that are no point (y = 2) still make a
        // key, one that verifies nothing.
        let off_curve = json!({"kty": "OKP", "crv": "Ed25519", "x": "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"});
        let set = parse_jwks(
            json!({ "keys": [off_curve] }).to_string().as_bytes(),
            1 << 20,
        )
        .unwrap();
        let PublicKey::Ed25519(key) = &set.keys()[0].key else {
            panic!("not an Ed25519 key");
        };
        assert!(!key.verify(b"message", &[0; 64]));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rfc8037_ed25519_public_key_parses() {
        // RFC 8037 appendix A.2.
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let set = parse_jwks(jwks.as_bytes(), 1 << 20).unwrap();
        assert!(matches!(set.keys()[0].key, PublicKey::Ed25519(_)));
    }
}
