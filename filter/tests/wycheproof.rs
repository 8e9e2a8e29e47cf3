//! Wycheproof test vectors for every JWS algorithm the filter verifies.
//!
//! Each vector takes the filter's own path: the public key is written as a JWK and
//! read back by `jwks::parse_jwks`, and the signature is checked by
//! `verifier::verify`. A `valid` vector must verify and an `invalid` one must not;
//! `acceptable` ones must match a decision recorded here. Disagreements are
//! collected rather than stopping at the first, so a failing run lists every tcId.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oidc_filter::jwks::{parse_jwks, PublicKey};
use oidc_filter::token::Algorithm;
use oidc_filter::verifier::verify;
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;
use wycheproof::{ecdsa, eddsa, rsa_pkcs1_verify, rsa_pss_verify};
use wycheproof::{EllipticCurve, HashFunction, Mgf, TestResult};

/// The JWKS parser refuses smaller RSA keys by design; such vectors are skipped.
const RSA_MIN_BITS: usize = 2048;

/// What a vector requires of us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Verifies,
    Fails,
    /// An `acceptable` vector nobody has decided on yet: reported as a failure, so a
    /// new Wycheproof release cannot slip in a case without a recorded decision.
    Undecided,
}

/// The parts of a Wycheproof signature test we use (each module has its own `Test`).
struct Vector<'a> {
    tc_id: usize,
    result: TestResult,
    flags: String,
    comment: &'a str,
    expect: Expect,
    message: &'a [u8],
    signature: &'a [u8],
}

/// Turns a group's tests into [`Vector`]s; `acceptable` decides the `acceptable` ones
/// from their flags.
macro_rules! vectors {
    ($tests:expr, $acceptable:expr) => {
        $tests
            .iter()
            .map(|test| Vector {
                tc_id: test.tc_id,
                result: test.result,
                flags: format!("{:?}", test.flags),
                comment: &test.comment,
                expect: match test.result {
                    TestResult::Valid => Expect::Verifies,
                    TestResult::Invalid => Expect::Fails,
                    TestResult::Acceptable => $acceptable(test.flags.as_slice()),
                },
                message: &test.msg,
                signature: &test.sig,
            })
            .collect::<Vec<Vector>>()
    };
}

/// For suites whose vectors are all `valid` or `invalid`.
fn no_decision<T>(_flags: &[T]) -> Expect {
    Expect::Undecided
}

/// `MissingNull`: a DigestInfo without the NULL hash parameters, a legacy encoding
/// Wycheproof lets verifiers take or leave. `rsa` compares the DigestInfo with the
/// DER prefix that includes NULL, which is what every JWS signer produces, so we
/// reject it.
fn pkcs1_acceptable(flags: &[rsa_pkcs1_verify::TestFlag]) -> Expect {
    match flags {
        [rsa_pkcs1_verify::TestFlag::MissingNull] => Expect::Fails,
        _ => Expect::Undecided,
    }
}

/// Counts for one algorithm, and every vector that disagreed with Wycheproof.
#[derive(Default)]
struct Tally {
    loaded: usize,
    executed: usize,
    verified: usize,
    acceptable: usize,
    skipped_small_rsa: usize,
    refused_key: usize,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, set: &str, vector: &Vector, what: &str) {
        self.failures.push(format!(
            "{set} tcId {} ({:?}, flags {}, {:?}): {what}",
            vector.tc_id, vector.result, vector.flags, vector.comment
        ));
    }

    /// Prints the counts, then fails the test on any disagreement or if fewer than
    /// `min_executed` vectors actually ran.
    fn finish(self, algorithm: Algorithm, min_executed: usize) {
        report(&format!(
            "{}: {} vectors executed ({} verified, {} rejected, {} `acceptable` among them), \
             {} skipped (RSA < {RSA_MIN_BITS} bits), {} with a key the JWKS parser refuses",
            algorithm.name(),
            self.executed,
            self.verified,
            self.executed - self.verified,
            self.acceptable,
            self.skipped_small_rsa,
            self.refused_key,
        ));
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} vectors disagree with Wycheproof:\n{}",
            algorithm.name(),
            self.failures.len(),
            self.loaded,
            self.failures.join("\n")
        );
        assert_eq!(
            self.executed + self.skipped_small_rsa + self.refused_key,
            self.loaded,
            "every vector is executed or accounted for"
        );
        assert!(
            self.executed >= min_executed,
            "{}: only {} vectors executed, expected at least {min_executed}",
            algorithm.name(),
            self.executed
        );
    }
}

/// Test output: `println!` goes nowhere on wasm32-unknown-unknown.
fn report(line: &str) {
    #[cfg(target_family = "wasm")]
    wasm_bindgen_test::console_log!("{line}");
    #[cfg(not(target_family = "wasm"))]
    println!("{line}");
}

fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Wycheproof integers are two's complement (a leading zero byte keeps them
/// positive); JWK integers have no leading zeros (RFC 7518 6.3.1).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(unsigned: &[u8]) -> usize {
    match unsigned.first() {
        Some(first) => unsigned.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn rsa_jwk(key: &wycheproof::RsaPublic) -> Value {
    json!({ "kty": "RSA", "n": base64url(unsigned(&key.n)), "e": base64url(unsigned(&key.e)) })
}

/// `uncompressed` is the SEC1 encoding `04 || x || y`, coordinates at full length.
fn ec_jwk(curve: &str, uncompressed: &[u8]) -> Value {
    let (&tag, coordinates) = uncompressed.split_first().expect("empty EC point");
    assert_eq!(tag, 0x04, "not an uncompressed point");
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    json!({ "kty": "EC", "crv": curve, "x": base64url(x), "y": base64url(y) })
}

fn ed25519_jwk(public: &[u8]) -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "x": base64url(public) })
}

/// The key as the filter would load it from a JWKS document holding just `jwk`.
fn key_from_jwk(jwk: Value) -> Result<PublicKey, String> {
    let document = json!({ "keys": [jwk] }).to_string();
    let set = parse_jwks(document.as_bytes(), 1 << 20)?;
    assert_eq!(set.keys().len(), 1);
    Ok(set.keys()[0].key.clone())
}

/// Checks one group of vectors sharing a key. A key the parser refuses verifies
/// nothing, which is right only when Wycheproof expects none of them to verify.
fn check_group(tally: &mut Tally, algorithm: Algorithm, set: &str, jwk: Value, vectors: &[Vector]) {
    tally.loaded += vectors.len();
    let key = match key_from_jwk(jwk) {
        Ok(key) => key,
        Err(why) => {
            tally.refused_key += vectors.len();
            for vector in vectors.iter().filter(|v| v.expect == Expect::Verifies) {
                tally.fail(
                    set,
                    vector,
                    &format!("must verify, but the JWKS parser refused the key: {why}"),
                );
            }
            return;
        }
    };
    for vector in vectors {
        tally.executed += 1;
        let verified = verify(algorithm, &key, vector.message, vector.signature);
        tally.verified += usize::from(verified);
        tally.acceptable += usize::from(vector.result == TestResult::Acceptable);
        match vector.expect {
            Expect::Verifies if !verified => tally.fail(set, vector, "must verify, but did not"),
            Expect::Fails if verified => tally.fail(set, vector, "must not verify, but did"),
            Expect::Undecided => tally.fail(
                set,
                vector,
                &format!("`acceptable` with no recorded decision (verified: {verified})"),
            ),
            _ => {}
        }
    }
}

/// Like [`check_group`], except that keys below [`RSA_MIN_BITS`] are skipped (after
/// checking that the parser does refuse them).
fn check_rsa_group(
    tally: &mut Tally,
    algorithm: Algorithm,
    set: &str,
    key: &wycheproof::RsaPublic,
    vectors: &[Vector],
) {
    let bits = bit_length(unsigned(&key.n));
    if bits < RSA_MIN_BITS {
        assert!(
            key_from_jwk(rsa_jwk(key)).is_err(),
            "{set}: a {bits}-bit key was accepted"
        );
        tally.loaded += vectors.len();
        tally.skipped_small_rsa += vectors.len();
        return;
    }
    check_group(tally, algorithm, set, rsa_jwk(key), vectors);
}

fn hash_of(algorithm: Algorithm) -> HashFunction {
    use Algorithm::*;
    match algorithm {
        Rs256 | Ps256 | Es256 => HashFunction::Sha2_256,
        Rs384 | Ps384 | Es384 => HashFunction::Sha2_384,
        Rs512 | Ps512 => HashFunction::Sha2_512,
        EdDsa => panic!("EdDSA names no separate hash"),
    }
}

fn digest_len(hash: HashFunction) -> usize {
    match hash {
        HashFunction::Sha2_256 => 32,
        HashFunction::Sha2_384 => 48,
        HashFunction::Sha2_512 => 64,
        other => panic!("no JWS algorithm uses {other:?}"),
    }
}

fn rsa_pkcs1(algorithm: Algorithm, sets: &[rsa_pkcs1_verify::TestName], min_executed: usize) {
    let mut tally = Tally::default();
    for &name in sets {
        let set = rsa_pkcs1_verify::TestSet::load(name).unwrap();
        let label = format!("{name:?}");
        for group in &set.test_groups {
            assert_eq!(group.hash, hash_of(algorithm), "{label}");
            let vectors = vectors!(group.tests, pkcs1_acceptable);
            check_rsa_group(&mut tally, algorithm, &label, &group.key, &vectors);
        }
    }
    tally.finish(algorithm, min_executed);
}

/// RFC 7518 3.5: PS* use MGF1 with the message hash, and a salt as long as the hash.
fn has_jws_pss_parameters(group: &rsa_pss_verify::TestGroup, algorithm: Algorithm) -> bool {
    let hash = hash_of(algorithm);
    group.hash == hash
        && group.mgf == Mgf::Mgf1
        && group.mgf_hash == Some(hash)
        && group.salt_size == digest_len(hash)
}

/// Runs the groups of `sets` whose parameters are those of `algorithm`; other
/// salt lengths or MGF hashes are not JWS and are left out (`rsa_pss_misc` mixes
/// them all). The `_params` sets are not listed: they repeat the same vectors with
/// the PSS parameters in the key's DER encoding, which a JWK does not carry.
fn rsa_pss(algorithm: Algorithm, sets: &[rsa_pss_verify::TestName], min_executed: usize) {
    let mut tally = Tally::default();
    for &name in sets {
        let set = rsa_pss_verify::TestSet::load(name).unwrap();
        let label = format!("{name:?}");
        let groups: Vec<_> = set
            .test_groups
            .iter()
            .filter(|group| has_jws_pss_parameters(group, algorithm))
            .collect();
        assert!(
            !groups.is_empty(),
            "{label} has no group with {} parameters",
            algorithm.name()
        );
        for group in groups {
            let vectors = vectors!(group.tests, no_decision);
            check_rsa_group(&mut tally, algorithm, &label, &group.key, &vectors);
        }
    }
    tally.finish(algorithm, min_executed);
}

/// The `_p1363` sets: signatures are raw `r || s`, as in JWS (RFC 7518 3.4).
fn ecdsa_p1363(
    algorithm: Algorithm,
    name: ecdsa::TestName,
    curve: EllipticCurve,
    jwk_curve: &str,
    min_executed: usize,
) {
    let mut tally = Tally::default();
    let set = ecdsa::TestSet::load(name).unwrap();
    let label = format!("{name:?}");
    for group in &set.test_groups {
        assert_eq!(
            group.test_type,
            ecdsa::TestGroupTypeId::EcdsaP1363,
            "{label}"
        );
        assert_eq!(
            (group.key.curve, group.hash),
            (curve, hash_of(algorithm)),
            "{label}"
        );
        let vectors = vectors!(group.tests, no_decision);
        check_group(
            &mut tally,
            algorithm,
            &label,
            ec_jwk(jwk_curve, &group.key.key),
            &vectors,
        );
    }
    tally.finish(algorithm, min_executed);
}

#[wasm_bindgen_test(unsupported = test)]
fn rs256_rsassa_pkcs1_v1_5_sha256() {
    use rsa_pkcs1_verify::TestName::*;
    rsa_pkcs1(
        Algorithm::Rs256,
        &[Rsa2048Sha256, Rsa3072Sha256, Rsa4096Sha256, Rsa8192Sha256],
        1000,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rs384_rsassa_pkcs1_v1_5_sha384() {
    use rsa_pkcs1_verify::TestName::*;
    rsa_pkcs1(
        Algorithm::Rs384,
        &[Rsa2048Sha384, Rsa3072Sha384, Rsa4096Sha384, Rsa8192Sha384],
        1000,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rs512_rsassa_pkcs1_v1_5_sha512() {
    use rsa_pkcs1_verify::TestName::*;
    rsa_pkcs1(
        Algorithm::Rs512,
        &[Rsa2048Sha512, Rsa3072Sha512, Rsa4096Sha512, Rsa8192Sha512],
        1000,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn ps256_rsassa_pss_sha256_mgf1_salt32() {
    use rsa_pss_verify::TestName::*;
    let sets = [
        RsaPss2048Sha256Mgf1SaltLen32,
        RsaPss3072Sha256Mgf1SaltLen32,
        RsaPss4096Sha256Mgf1SaltLen32,
        RsaPssmisc,
    ];
    rsa_pss(Algorithm::Ps256, &sets, 300);
}

#[wasm_bindgen_test(unsupported = test)]
fn ps384_rsassa_pss_sha384_mgf1_salt48() {
    use rsa_pss_verify::TestName::*;
    let sets = [
        RsaPss2048Sha384Mgf1SaltLen48,
        RsaPss4096Sha384Mgf1SaltLen48,
        RsaPssmisc,
    ];
    rsa_pss(Algorithm::Ps384, &sets, 250);
}

#[wasm_bindgen_test(unsupported = test)]
fn ps512_rsassa_pss_sha512_mgf1_salt64() {
    use rsa_pss_verify::TestName::*;
    // Wycheproof has no 2048- or 3072-bit SHA-512 set with a 64-byte salt; the
    // 2048-bit case comes from `rsa_pss_misc`.
    rsa_pss(
        Algorithm::Ps512,
        &[RsaPss4096Sha512Mgf1SaltLen64, RsaPssmisc],
        150,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn es256_ecdsa_p256_sha256_p1363() {
    let name = ecdsa::TestName::EcdsaSecp256r1Sha256P1363;
    ecdsa_p1363(
        Algorithm::Es256,
        name,
        EllipticCurve::Secp256r1,
        "P-256",
        250,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn es384_ecdsa_p384_sha384_p1363() {
    let name = ecdsa::TestName::EcdsaSecp384r1Sha384P1363;
    ecdsa_p1363(
        Algorithm::Es384,
        name,
        EllipticCurve::Secp384r1,
        "P-384",
        250,
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn eddsa_ed25519() {
    let mut tally = Tally::default();
    let set = eddsa::TestSet::load(eddsa::TestName::Ed25519).unwrap();
    for group in &set.test_groups {
        assert_eq!(group.key.curve, wycheproof::EdwardsCurve::Ed25519);
        let vectors = vectors!(group.tests, no_decision);
        check_group(
            &mut tally,
            Algorithm::EdDsa,
            "Ed25519",
            ed25519_jwk(&group.key.pk),
            &vectors,
        );
    }
    tally.finish(Algorithm::EdDsa, 140);
}
