//! Fixed test key pairs (filter/testdata) and token minting for unit tests.
//! jwt-simple does the signing: an implementation independent of our parser.

use crate::jwks::{self, KeySet, PublicKey};
use crate::token::Algorithm;
use jwt_simple::prelude::*;
use serde_json::{Map, Value};

const RSA_PEM: &str = include_str!("../testdata/rsa2048.pem");
const RSA_B_PEM: &str = include_str!("../testdata/rsa2048-b.pem");
const P256_PEM: &str = include_str!("../testdata/p256.pem");
const P384_PEM: &str = include_str!("../testdata/p384.pem");
const ED25519_PEM: &str = include_str!("../testdata/ed25519.pem");

enum Pair {
    Rs256(RS256KeyPair),
    Rs384(RS384KeyPair),
    Rs512(RS512KeyPair),
    Ps256(PS256KeyPair),
    Ps384(PS384KeyPair),
    Ps512(PS512KeyPair),
    Es256(ES256KeyPair),
    Es384(ES384KeyPair),
    EdDsa(Ed25519KeyPair),
}

pub struct TestKey {
    pub algorithm: Algorithm,
    pair: Pair,
}

impl TestKey {
    pub fn new(algorithm: Algorithm, kid: &str) -> Self {
        Self::from_pem(algorithm, kid, None)
    }

    /// A second RSA key, for rotation and wrong-key tests.
    pub fn other_rsa(algorithm: Algorithm, kid: &str) -> Self {
        Self::from_pem(algorithm, kid, Some(RSA_B_PEM))
    }

    fn from_pem(algorithm: Algorithm, kid: &str, rsa_pem: Option<&str>) -> Self {
        let rsa = rsa_pem.unwrap_or(RSA_PEM);
        let pair = match algorithm {
            Algorithm::Rs256 => Pair::Rs256(RS256KeyPair::from_pem(rsa).unwrap().with_key_id(kid)),
            Algorithm::Rs384 => Pair::Rs384(RS384KeyPair::from_pem(rsa).unwrap().with_key_id(kid)),
            Algorithm::Rs512 => Pair::Rs512(RS512KeyPair::from_pem(rsa).unwrap().with_key_id(kid)),
            Algorithm::Ps256 => Pair::Ps256(PS256KeyPair::from_pem(rsa).unwrap().with_key_id(kid)),
            Algorithm::Ps384 => Pair::Ps384(PS384KeyPair::from_pem(rsa).unwrap().with_key_id(kid)),
            Algorithm::Ps512 => Pair::Ps512(PS512KeyPair::from_pem(rsa).unwrap().with_key_id(kid)),
            Algorithm::Es256 => {
                Pair::Es256(ES256KeyPair::from_pem(P256_PEM).unwrap().with_key_id(kid))
            }
            Algorithm::Es384 => {
                Pair::Es384(ES384KeyPair::from_pem(P384_PEM).unwrap().with_key_id(kid))
            }
            Algorithm::EdDsa => Pair::EdDsa(
                Ed25519KeyPair::from_pem(ED25519_PEM)
                    .unwrap()
                    .with_key_id(kid),
            ),
        };
        Self { algorithm, pair }
    }

    pub fn all() -> Vec<TestKey> {
        use Algorithm::*;
        [
            Rs256, Rs384, Rs512, Ps256, Ps384, Ps512, Es256, Es384, EdDsa,
        ]
        .into_iter()
        .map(|alg| TestKey::new(alg, &format!("kid-{}", alg.name())))
        .collect()
    }

    /// A signed token whose payload is exactly `claims` (header: alg, typ, kid).
    pub fn mint(&self, claims: &Value) -> String {
        let custom: Map<String, Value> = claims.as_object().cloned().unwrap_or_default();
        let mut claims = Claims::with_custom_claims(custom, Duration::from_secs(0));
        claims.issued_at = None;
        claims.expires_at = None;
        claims.invalid_before = None;
        match &self.pair {
            Pair::Rs256(k) => k.sign(claims),
            Pair::Rs384(k) => k.sign(claims),
            Pair::Rs512(k) => k.sign(claims),
            Pair::Ps256(k) => k.sign(claims),
            Pair::Ps384(k) => k.sign(claims),
            Pair::Ps512(k) => k.sign(claims),
            Pair::Es256(k) => k.sign(claims),
            Pair::Es384(k) => k.sign(claims),
            Pair::EdDsa(k) => k.sign(claims),
        }
        .unwrap()
    }

    /// A message and its signature: a token's signing input and signature bytes.
    pub fn signed_message(&self) -> (String, Vec<u8>) {
        let token = self.mint(&serde_json::json!({"sub": "message"}));
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = Base64UrlSafeNoPadding::decode_to_vec(signature, None).unwrap();
        (input.to_string(), signature)
    }

    /// The public JWK, with `alg` and `kid` as jwt-simple writes them.
    pub fn public_jwk(&self) -> Value {
        let text = match &self.pair {
            Pair::Rs256(k) => k.public_key().to_jwk(),
            Pair::Rs384(k) => k.public_key().to_jwk(),
            Pair::Rs512(k) => k.public_key().to_jwk(),
            Pair::Ps256(k) => k.public_key().to_jwk(),
            Pair::Ps384(k) => k.public_key().to_jwk(),
            Pair::Ps512(k) => k.public_key().to_jwk(),
            Pair::Es256(k) => k.public_key().to_jwk(),
            Pair::Es384(k) => k.public_key().to_jwk(),
            Pair::EdDsa(k) => k.public_key().to_jwk(),
        };
        serde_json::from_str(&text).unwrap()
    }

    pub fn public_key(&self) -> PublicKey {
        let jwks = serde_json::json!({ "keys": [self.public_jwk()] }).to_string();
        let set = jwks::parse_jwks(jwks.as_bytes(), 1 << 20).unwrap();
        set.keys()[0].key.clone()
    }
}

/// A JWKS document holding the public keys of `keys`.
pub fn jwks_of(keys: &[&TestKey]) -> String {
    let keys: Vec<Value> = keys.iter().map(|key| key.public_jwk()).collect();
    serde_json::json!({ "keys": keys }).to_string()
}

pub fn key_set_of(keys: &[&TestKey]) -> KeySet {
    jwks::parse_jwks(jwks_of(keys).as_bytes(), 1 << 20).unwrap()
}
