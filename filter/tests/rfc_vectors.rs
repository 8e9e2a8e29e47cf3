//! The published JWS examples of RFC 7515, RFC 7520 and RFC 8037, through the
//! filter's own path: `token::parse`, `jwks::parse_jwks` with kid/alg selection,
//! then `verifier::verify`.
//!
//! Tokens and key members are copied from the RFCs and wrapped as printed there
//! (`\` continuations and `concat!` add no characters). Only the public members of
//! the RFCs' JWKs are kept: the parser refuses a key with private material.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oidc_filter::jwks::{parse_jwks, PublicKey};
use oidc_filter::token::{self, Algorithm, FormatError};
use oidc_filter::verifier::verify;
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// RFC 7515 A.1: HMAC SHA-256.
const RFC7515_A1_HS256_TOKEN: &str = "\
    eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
    eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
    cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
    dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// RFC 7515 A.2.1, public members.
fn rfc7515_a2_rsa_jwk() -> Value {
    json!({
        "kty": "RSA",
        "n": concat!(
            "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx",
            "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs",
            "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH",
            "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV",
            "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8",
            "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
        ),
        "e": "AQAB",
    })
}

/// RFC 7515 A.2.1: RSASSA-PKCS1-v1_5 SHA-256.
const RFC7515_A2_RS256_TOKEN: &str = "\
    eyJhbGciOiJSUzI1NiJ9.\
    eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
    cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
    cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7\
    AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4\
    BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K\
    0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv\
    hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB\
    p0igcN_IoypGlUPQGe77Rw";

/// RFC 7515 A.3.1, public members.
fn rfc7515_a3_ec_jwk() -> Value {
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    })
}

/// RFC 7515 A.3.1: ECDSA P-256 SHA-256.
const RFC7515_A3_ES256_TOKEN: &str = "\
    eyJhbGciOiJFUzI1NiJ9.\
    eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
    cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
    DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA\
    pmWQxfKTUJqPP3-Kg6NU1Q";

/// RFC 7515 A.4.1, public members.
fn rfc7515_a4_ec_p521_jwk() -> Value {
    json!({
        "kty": "EC",
        "crv": "P-521",
        "x": concat!(
            "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_",
            "NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
        ),
        "y": concat!(
            "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDl",
            "y79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2",
        ),
    })
}

/// RFC 7515 A.4.1: ECDSA P-521 SHA-512.
const RFC7515_A4_ES512_TOKEN: &str = "\
    eyJhbGciOiJFUzUxMiJ9.\
    UGF5bG9hZA.\
    AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq\
    wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp\
    EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";

/// RFC 7515 A.5: an Unsecured JWS (`alg` `none`, empty signature).
const RFC7515_A5_UNSECURED_TOKEN: &str = "\
    eyJhbGciOiJub25lIn0.\
    eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
    cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.";

/// RFC 7520 3.4 (figure 3), public members.
fn rfc7520_rsa_jwk() -> Value {
    json!({
        "kty": "RSA",
        "kid": "bilbo.baggins@hobbiton.example",
        "use": "sig",
        "n": concat!(
            "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRoj",
            "dNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2l",
            "bzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6c",
            "S6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3",
            "-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwU",
            "kRz5iaiQkqgc5gHdrNP5zw",
        ),
        "e": "AQAB",
    })
}

/// RFC 7520 3.1 (figure 1), public members.
fn rfc7520_ec_p521_jwk() -> Value {
    json!({
        "kty": "EC",
        "kid": "bilbo.baggins@hobbiton.example",
        "use": "sig",
        "crv": "P-521",
        "x": concat!(
            "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqv",
            "jyekWF-7ytDyRXYgCF5cj0Kt",
        ),
        "y": concat!(
            "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgD",
            "PrwQrJmbnX9cwlGfP-HqHZR1",
        ),
    })
}

/// RFC 7520 4.1.3 (figure 13): RSA v1.5 signature.
const RFC7520_4_1_RS256_TOKEN: &str = "\
    eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX\
    hhbXBsZSJ9\
    .\
    SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH\
    lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk\
    b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm\
    UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4\
    .\
    MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmK\
    ZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4J\
    IwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8w\
    W1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluP\
    xUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_f\
    cIe8u9ipH84ogoree7vjbU5y18kDquDg";

/// RFC 7520 4.2.3 (figure 20): RSA-PSS signature.
const RFC7520_4_2_PS384_TOKEN: &str = "\
    eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX\
    hhbXBsZSJ9\
    .\
    SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH\
    lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk\
    b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm\
    UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4\
    .\
    cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2I\
    pN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXU\
    vdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRX\
    e8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT\
    0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a\
    6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw";

/// RFC 7520 4.3.3 (figure 27): ECDSA signature (ES512).
const RFC7520_4_3_ES512_TOKEN: &str = "\
    eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX\
    hhbXBsZSJ9\
    .\
    SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH\
    lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk\
    b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm\
    UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4\
    .\
    AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvb\
    u9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kv\
    AD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";

/// RFC 8037 A.2: the Ed25519 public key.
fn rfc8037_a2_okp_jwk() -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" })
}

/// RFC 8037 A.4: Ed25519 signing of "Example of Ed25519 signing".
const RFC8037_A4_EDDSA_TOKEN: &str = "\
    eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGC\
    jP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_Mu\
    M0KAg";

/// A compact JWS reduced to what verification needs.
#[derive(Clone)]
struct Signed {
    algorithm: Algorithm,
    kid: Option<String>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Signed {
    /// Through `token::parse`, as the filter reads a JWT.
    fn from_jwt(token: &str) -> Self {
        let jws = token::parse(token, MAX_TOKEN_BYTES).unwrap();
        Signed {
            algorithm: jws.algorithm,
            kid: jws.kid,
            signing_input: jws.signing_input.to_owned(),
            signature: jws.signature,
        }
    }

    /// For the RFC examples that sign prose rather than a claims set: `token::parse`
    /// rightly refuses those (a JWT filter needs claims), so the header and the
    /// signature are read here, and the signing input is taken as sent.
    fn from_non_jwt(token: &str) -> Self {
        assert!(
            matches!(
                token::parse(token, MAX_TOKEN_BYTES),
                Err(FormatError::Payload(_))
            ),
            "a JWS whose payload is not a JSON object must be refused as a JWT"
        );
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let (header, _payload) = signing_input.split_once('.').unwrap();
        let header: Value = serde_json::from_slice(&decode(header)).unwrap();
        Signed {
            algorithm: Algorithm::from_name(header["alg"].as_str().unwrap()).unwrap(),
            kid: header["kid"].as_str().map(str::to_owned),
            signing_input: signing_input.to_owned(),
            signature: decode(signature),
        }
    }

    fn verifies_with(&self, key: &PublicKey) -> bool {
        verify(
            self.algorithm,
            key,
            self.signing_input.as_bytes(),
            &self.signature,
        )
    }
}

fn decode(segment: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(segment).unwrap()
}

fn jwks_of(jwk: Value) -> String {
    json!({ "keys": [jwk] }).to_string()
}

/// The key the filter would pick for `signed` from a JWKS holding just `jwk`.
fn select_key(jwk: Value, signed: &Signed) -> PublicKey {
    let set = parse_jwks(jwks_of(jwk).as_bytes(), MAX_JWKS_BYTES).unwrap();
    let candidates = set.candidates(signed.algorithm, signed.kid.as_deref());
    assert_eq!(
        candidates.len(),
        1,
        "the JWK must be selected for this token"
    );
    candidates[0].key.clone()
}

/// `token` with the low bit of one payload byte flipped: the first lowercase ASCII
/// letter, so a JSON payload stays JSON ("iss" becomes "hss") and still parses.
fn with_payload_byte_flipped(token: &str) -> String {
    let mut segments: Vec<&str> = token.split('.').collect();
    let mut payload = decode(segments[1]);
    let letter = payload.iter().position(u8::is_ascii_lowercase).unwrap();
    payload[letter] ^= 1;
    let payload = URL_SAFE_NO_PAD.encode(payload);
    segments[1] = &payload;
    segments.join(".")
}

/// The published signature verifies; one flipped bit in the signature or in the
/// payload makes it fail.
fn assert_verifies_and_detects_tampering(
    signed: &Signed,
    tampered_payload: &Signed,
    key: &PublicKey,
) {
    assert!(
        signed.verifies_with(key),
        "the published signature must verify"
    );

    let mut flipped = signed.clone();
    let middle = flipped.signature.len() / 2;
    flipped.signature[middle] ^= 1;
    assert!(
        !flipped.verifies_with(key),
        "a flipped signature bit must not verify"
    );

    assert_ne!(tampered_payload.signing_input, signed.signing_input);
    assert!(
        !tampered_payload.verifies_with(key),
        "a flipped payload bit must not verify"
    );
}

/// Reads `token` with `read`, selects its key from `jwk`, and checks the signature
/// and its tampered variants.
fn check(token: &str, read: fn(&str) -> Signed, jwk: Value, algorithm: Algorithm) {
    let signed = read(token);
    assert_eq!(signed.algorithm, algorithm);
    let key = select_key(jwk, &signed);
    let tampered = read(&with_payload_byte_flipped(token));
    assert_verifies_and_detects_tampering(&signed, &tampered, &key);
}

/// Refused while parsing, as Envoy does for algorithms no JWKS key can serve.
fn assert_algorithm_refused(token: &str, alg: &str) {
    assert_eq!(
        token::parse(token, MAX_TOKEN_BYTES).unwrap_err(),
        FormatError::NoKeyForAlgorithm(alg.into())
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7515_a1_hs256_is_refused_before_any_crypto() {
    // HMAC would make the JWKS's public keys usable as shared secrets.
    assert_algorithm_refused(RFC7515_A1_HS256_TOKEN, "HS256");
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7515_a2_rs256_verifies() {
    check(
        RFC7515_A2_RS256_TOKEN,
        Signed::from_jwt,
        rfc7515_a2_rsa_jwk(),
        Algorithm::Rs256,
    );
    let jws = token::parse(RFC7515_A2_RS256_TOKEN, MAX_TOKEN_BYTES).unwrap();
    assert_eq!(jws.claims["iss"], "joe");
    assert_eq!(jws.claims["exp"], 1300819380);
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7515_a3_es256_verifies() {
    check(
        RFC7515_A3_ES256_TOKEN,
        Signed::from_jwt,
        rfc7515_a3_ec_jwk(),
        Algorithm::Es256,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7515_a4_es512_is_refused() {
    assert_algorithm_refused(RFC7515_A4_ES512_TOKEN, "ES512");
    let jwks = jwks_of(rfc7515_a4_ec_p521_jwk());
    assert!(
        parse_jwks(jwks.as_bytes(), MAX_JWKS_BYTES).is_err(),
        "P-521 is not supported"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7515_a5_unsecured_jws_is_refused() {
    // Its empty signature segment already fails the form check, as in Envoy's
    // jwt_verify_lib, before `alg: none` is looked at.
    assert_eq!(
        token::parse(RFC7515_A5_UNSECURED_TOKEN, MAX_TOKEN_BYTES).unwrap_err(),
        FormatError::SegmentCount
    );
    // With a signature appended, `none` is an algorithm Envoy does not support.
    let with_signature = format!("{RFC7515_A5_UNSECURED_TOKEN}AAAA");
    assert_eq!(
        token::parse(&with_signature, MAX_TOKEN_BYTES).unwrap_err(),
        FormatError::Algorithm("none".into())
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7520_4_1_rs256_verifies() {
    check(
        RFC7520_4_1_RS256_TOKEN,
        Signed::from_non_jwt,
        rfc7520_rsa_jwk(),
        Algorithm::Rs256,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7520_4_2_ps384_verifies() {
    check(
        RFC7520_4_2_PS384_TOKEN,
        Signed::from_non_jwt,
        rfc7520_rsa_jwk(),
        Algorithm::Ps384,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc7520_4_3_es512_is_refused() {
    assert_algorithm_refused(RFC7520_4_3_ES512_TOKEN, "ES512");
    let jwks = jwks_of(rfc7520_ec_p521_jwk());
    assert!(
        parse_jwks(jwks.as_bytes(), MAX_JWKS_BYTES).is_err(),
        "P-521 is not supported"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc8037_a4_a5_eddsa_ed25519_verifies() {
    // A.4 signs with the A.1 key; A.5 validates the result with the A.2 public key.
    check(
        RFC8037_A4_EDDSA_TOKEN,
        Signed::from_non_jwt,
        rfc8037_a2_okp_jwk(),
        Algorithm::EdDsa,
    );
}
