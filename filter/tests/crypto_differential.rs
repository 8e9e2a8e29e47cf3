//! Differential tests of our signature code (`filter/src/crypto`) against reference
//! crates: RSA (PKCS#1 v1.5 and PSS) against RustCrypto `rsa`, ECDSA P-256 and P-384
//! against `p256`/`p384`, Ed25519 against `ed25519-dalek` (and `curve25519-dalek`
//! for the keys and signatures no honest signer makes).
//!
//! Every case asks both sides for a verdict and the two must agree: valid
//! signatures on random keys and messages, and mutations of them (bit flips,
//! truncation, extension, out-of-range and special scalars, high S, r and s
//! swapped, S + L, non-canonical and small-order points, crafted RSA encodings).
//! Where a reference crate is deliberately stricter or laxer than JOSE (RFC 7518,
//! RFC 8037) requires, the reference verdict is the crate's call plus the rule
//! JOSE adds, and the comment at each `reference_*` function says why.
//!
//! Everything random comes from ChaCha20 with a fixed seed per test, so a run is
//! reproducible and a failure names the case. Natively each test runs thousands
//! of cases; under wasm-bindgen-test (`make test-wasm`) the same code runs fewer
//! (see [`SCALE`]). Disagreements are collected, not stopped at, so a failing run
//! lists all of them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer as _, Verifier as _};
use oidc_filter::crypto::ec::{P256Key, P384Key};
use oidc_filter::crypto::ed25519::VerifyingKey as OurEd25519Key;
use oidc_filter::crypto::rsa::{
    verify_pkcs1v15, verify_pss, Hash, KeyError, RsaPublicKey as OurRsaKey, MIN_BITS,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rsa::hazmat::rsa_decrypt_and_check;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use wasm_bindgen_test::wasm_bindgen_test;

// ----- scale, tally, output -----

/// How much each test does. Natively: thousands of cases per test. Under Wasm
/// (Node's V8, where big-number code runs several times slower) a smaller run of
/// the same cases.
#[derive(Clone, Copy)]
struct Scale {
    /// Messages signed per RSA key and algorithm.
    rsa_messages: usize,
    /// RSA keys whose crafted encodings are signed (private operations are slow).
    rsa_crafted_keys: usize,
    /// Random ECDSA keys per curve (after the fixed d = 1 and d = n - 1).
    ec_keys: usize,
    /// Messages signed per ECDSA key.
    ec_messages: usize,
    /// Random Ed25519 keys (ed25519-dalek signing keys).
    ed_keys: usize,
    /// Messages signed per Ed25519 key.
    ed_messages: usize,
    /// Random bit flips per signature, besides the fixed ones.
    random_flips: usize,
    /// Random (mostly invalid) raw public keys per curve.
    random_keys: usize,
}

#[cfg(not(target_family = "wasm"))]
const SCALE: Scale = Scale {
    rsa_messages: 4,
    rsa_crafted_keys: 6,
    ec_keys: 8,
    ec_messages: 6,
    ed_keys: 12,
    ed_messages: 8,
    random_flips: 8,
    random_keys: 300,
};

#[cfg(target_family = "wasm")]
const SCALE: Scale = Scale {
    rsa_messages: 1,
    rsa_crafted_keys: 3,
    ec_keys: 2,
    ec_messages: 3,
    ed_keys: 5,
    ed_messages: 4,
    random_flips: 2,
    random_keys: 40,
};

/// Counts for one test, and every case where our verdict differs from the reference.
struct Tally {
    name: &'static str,
    cases: usize,
    /// Cases both sides accepted: proves the run is not all rejections.
    accepted: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            cases: 0,
            accepted: 0,
            failures: Vec::new(),
        }
    }

    /// One case: `describe` runs only when the verdicts differ.
    fn compare(&mut self, ours: bool, reference: bool, describe: impl FnOnce() -> String) {
        self.cases += 1;
        self.accepted += usize::from(ours && reference);
        if ours != reference {
            self.failures.push(format!(
                "{}: ours {}, reference {}",
                describe(),
                verdict(ours),
                verdict(reference)
            ));
        }
    }

    /// Prints the counts; fails on any disagreement, or if the run was smaller than
    /// `min_cases` or accepted fewer than `min_accepted` cases.
    fn finish(self, extra: &str, min_cases: usize, min_accepted: usize) {
        report(&format!(
            "{}: {} cases, {} accepted by both, {} disagreements{extra}",
            self.name,
            self.cases,
            self.accepted,
            self.failures.len()
        ));
        let shown: Vec<&str> = self.failures.iter().take(40).map(String::as_str).collect();
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} cases disagree with the reference (first {}):\n{}",
            self.name,
            self.failures.len(),
            self.cases,
            shown.len(),
            shown.join("\n")
        );
        assert!(
            self.cases >= min_cases,
            "{}: only {} cases, expected at least {min_cases}",
            self.name,
            self.cases
        );
        assert!(
            self.accepted >= min_accepted,
            "{}: only {} accepted cases, expected at least {min_accepted}",
            self.name,
            self.accepted
        );
    }
}

fn verdict(accepted: bool) -> &'static str {
    if accepted {
        "accepts"
    } else {
        "rejects"
    }
}

/// Test output: `println!` goes nowhere on wasm32-unknown-unknown.
fn report(line: &str) {
    #[cfg(target_family = "wasm")]
    wasm_bindgen_test::console_log!("{line}");
    #[cfg(not(target_family = "wasm"))]
    println!("{line}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A short form of long inputs for failure messages.
fn short_hex(bytes: &[u8]) -> String {
    if bytes.len() <= 48 {
        hex(bytes)
    } else {
        format!(
            "{}…{} ({} bytes)",
            hex(&bytes[..16]),
            hex(&bytes[bytes.len() - 16..]),
            bytes.len()
        )
    }
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// The `index`th message: empty, one byte, a few sizes around hash blocks, long.
fn message(rng: &mut ChaCha20Rng, index: usize) -> Vec<u8> {
    const LENGTHS: [usize; 8] = [0, 1, 55, 64, 111, 128, 300, 1500];
    let len = match LENGTHS.get(index) {
        Some(&len) => len,
        None => rng.next_u32() as usize % 200,
    };
    random_bytes(rng, len)
}

// ----- mutations shared by every algorithm -----

/// Byte-level changes to a signature, each with its name: the signature itself,
/// bit flips (first, last and random bits), truncation, extension, and junk of the
/// same length.
fn byte_mutations(
    signature: &[u8],
    rng: &mut ChaCha20Rng,
    random_flips: usize,
) -> Vec<(String, Vec<u8>)> {
    let len = signature.len();
    let bits = 8 * len;
    let mut out = vec![("valid".to_string(), signature.to_vec())];
    if bits > 0 {
        let mut flips = vec![0, 7, bits - 8, bits - 1];
        flips.extend((0..random_flips).map(|_| rng.next_u32() as usize % bits));
        for bit in flips {
            let mut flipped = signature.to_vec();
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            out.push((format!("bit {bit} flipped"), flipped));
        }
        out.push(("last byte dropped".into(), signature[..len - 1].to_vec()));
        out.push(("first byte dropped".into(), signature[1..].to_vec()));
        out.push(("first half".into(), signature[..len / 2].to_vec()));
    }
    let mut appended = signature.to_vec();
    appended.push(0);
    let mut prepended = vec![0];
    prepended.extend_from_slice(signature);
    out.extend([
        ("empty".into(), Vec::new()),
        ("zero byte appended".into(), appended),
        ("zero byte prepended".into(), prepended),
        ("doubled".into(), [signature, signature].concat()),
        ("all zero".into(), vec![0; len]),
        ("all 0xff".into(), vec![0xff; len]),
        ("random".into(), random_bytes(rng, len)),
    ]);
    out
}

/// Other messages to check a valid signature against.
fn message_mutations(message: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(last) = message.len().checked_sub(1) {
        let mut flipped = message.to_vec();
        flipped[last] ^= 1;
        out.push(("message's last bit flipped", flipped));
        out.push(("message's last byte dropped", message[..last].to_vec()));
    }
    let mut extended = message.to_vec();
    extended.push(0);
    out.push(("message extended by a zero byte", extended));
    out
}

/// `value` as exactly `len` big-endian bytes, if it fits.
fn be_bytes(value: &BigUint, len: usize) -> Option<Vec<u8>> {
    let bytes = value.to_bytes_be();
    let bytes = if bytes == [0] { Vec::new() } else { bytes };
    let padding = len.checked_sub(bytes.len())?;
    let mut out = vec![0; padding];
    out.extend_from_slice(&bytes);
    Some(out)
}

fn big(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_be(bytes)
}

fn big_hex(text: &str) -> BigUint {
    BigUint::parse_bytes(text.as_bytes(), 16).unwrap()
}

// ----- RSA -----

/// A fixed RSA key: its primes, and the seed that `RsaPrivateKey::new_with_exp`
/// (rsa 0.9.10) made them from with `ChaCha20Rng::seed_from_u64(seed)`. Generating
/// them takes seconds natively and far longer in Wasm, so they are embedded;
/// `embedded_rsa_keys_come_from_their_seeds` (ignored, native) regenerates them.
struct RsaKeySpec {
    bits: usize,
    e: u32,
    seed: u64,
    p: &'static str,
    q: &'static str,
}

/// 2047 bits (below our minimum: refused), 2048, 2049 and 3071 (lengths that are not
/// whole bytes: PSS's emLen is then shorter than the modulus, or its top byte has
/// unused bits), 4096, and a 2048-bit key with e = 3 (for the cube-root forgery of
/// PKCS#1 v1.5 signatures against lax parsers).
const RSA_KEYS: [RsaKeySpec; 6] = [
    RsaKeySpec {
        bits: 2047,
        e: 65537,
        seed: 0x5eed7ff1,
        p: concat!(
            "76f4ea51155a42ffe0f4b0e0d41b97606bb0471da1622fa307226e801a9c5b12",
            "db0388d2165db6083920c3bafda22a012781313059aae6250074beb00cfe3fe8",
            "41e73c171e9a807307718b57d1331c1c8a405688d8067a270d1c02bc1dac0b3b",
            "2fc444f0e9b39d2ec938179f89c5cd4e89345652652dba289a4f657b7a20fd01",
        ),
        q: concat!(
            "ed8944f1a82cba6a2d636ac40a4912046fcbc9a9fe2e3c1848f413bfbda9144b",
            "528f1821b773046a3369aed995bae6dda5860d646da06295603d3e7f9b79f623",
            "942db796d6b7709288a631bf6f6d1aae043e65ffc728602ef3af74043f7ddf7a",
            "84acaaba01d600965c8b40707c803147922f5dd9d3342940bd7539b76b8a9281",
        ),
    },
    RsaKeySpec {
        bits: 2048,
        e: 65537,
        seed: 0x5eed8001,
        p: concat!(
            "deb95d60378f039834dc63f552831a734f5ac5dc582c9eaf3d6a751ccf0a9f37",
            "594de8745ca35f26feab3c5c987b35fcb64dfb29abc2fac1d3e488ad09c5202e",
            "e93599add8966b790d3446631195f9caf1feae7e1f0a6aba5143c2a789f549ef",
            "6c4013cb23b4be42f1197c13449c5c4e9b284d086b62556ef708e2f89ad35a4f",
        ),
        q: concat!(
            "fe71fbcec4766673bf0c6b16678cf606b1e56ad8b912c4bc4838986a5fc18313",
            "547ac6970089f3ce5554f089c49fe67188813238637da6e41adc70a3c096ea0a",
            "8b96e8d212cd538262c04fcebdff42391263c370644922b3fb0e9b180630f6a7",
            "beede80cdcc25501b40eaa0b685cffdd013b666e167130bd374937a0c4cecfa1",
        ),
    },
    RsaKeySpec {
        bits: 2049,
        e: 65537,
        seed: 0x5eed8011,
        p: concat!(
            "fe84bd6c05f47835040e243046dd4999e0dff5da42f368533f25f1495120859f",
            "f7a71a5aca05cf9adf28e42a4deac0807caf25c5fcc8e8ff0754e8d7dcbab877",
            "014fc6d96150e1a7dd3a909fdea4c6b21db71e8a24f6d579adc1e6b1392d13cf",
            "4613dfceb8e17e2af6f2f59350211c212f9b731240ad1d921eae7b37643621c9",
        ),
        q: concat!(
            "01e36aec2574e5fe177b500229db57a15f2268c34a891fdb7ea8b4d1daed4f23",
            "afead56b24538a4d65b2ada949849d9679cc2e640145be6811620f92a6b215a1",
            "700cb262841c05becedbb7f1cec656ca7be3e1bdfd20943e219c3be99c59aedb",
            "da0cb2250024141063a9666273504d880e506a86d6f5b98943f73ec383650aab",
            "57",
        ),
    },
    RsaKeySpec {
        bits: 3071,
        e: 65537,
        seed: 0x5eedbff1,
        p: concat!(
            "74e6777d4abf0089cd3a0675a750001c686fc0e10e9aac3ec688ecd71cfab2f2",
            "d4fd507d3a70fd00ae8bb2ce59e07ea85bec8ad63067ff686743f6257bd92a71",
            "587b010f65a4e6f0dfaef0f79a60683dffad3f89441483411a979e0968057c0c",
            "d439dcea3469697b1e5b3155e9e14ac400c7a62d0c82779d09d99927b51084fd",
            "d57bd4a1f15186705b787dcae16d3ec529faaa249fc4cf656cd84986ccfbc2dc",
            "c4e26c958eb9db2a2f7aa62cd9416b668c6eb27f1aec78f9593a4a3e3b6ab457",
        ),
        q: concat!(
            "f911d6b4b8338eb7c2edce6d4306e742e16549f37e03a9c9e91f86afbe9d1ae2",
            "b0c3cb07ebca9aed648d40ffd2a30cc58d1ae8f32895ab2f89493a4826423518",
            "2f1802fd857ffd7c571623ae73a785f8491de8d582a9183f6787bd2a2fde69be",
            "bc0b3d0787f9242c5cad017b9b17709d80fcbedabc9245832046d647bdfe298e",
            "2ff07829412154549fbe8e2b35dce76f44d04b31869381a750608029cc218012",
            "7a8aea913f40fb23d79201791ba38e36a8ea5810da168545be567ec34aac7b3b",
        ),
    },
    RsaKeySpec {
        bits: 4096,
        e: 65537,
        seed: 0x5eee0001,
        p: concat!(
            "e8043124588b7f55930ca9959be7b76cce8b550c8b4ad31637b83452cb777bfe",
            "0f49fa2ef71a46c6eab47738ea885abea58f39d6296d7edf8c00573cf73c2740",
            "6d993d2a9cbd7225492540ab7e603c2826790ad141e2ad1cc8ba35891df39990",
            "229d5bb580173206ee00674f0b7cda82f2d5c5fd1032ae0293e95bdbe4060ad8",
            "6a1d9112eddc923e0c911d4ade91a4d6ff5236d460f7f0c20261971619e114c3",
            "f27a8f0731ca20a1dc9d59ee2b959c2247046534cb9599914c0c7e570a9791aa",
            "a725a82cfea596e7d6d5c41de541951a96b85af0662a0daf2878d7204b4266de",
            "da71adac64227212d45ac04acaaaef8c1067bc39ac3899a26738850b697ab13f",
        ),
        q: concat!(
            "e2c34e0357912b0a1991766ec958edbbef013383dc9d023b8858f71ede434a35",
            "7b73e32fe78ac949786f4ea330b4c364697d4f3150bd78a61d355970479ec0cb",
            "6de4bf33463ad9ba413dc331d34d41ca138e25257c90038074a731badbd70610",
            "baec4f5186c55909370e4aa6fb443ee717a596e031227b3ec304b81c83c8135e",
            "4835104a2896bdf8bfd6e5c1343399b0180cd2354b5d269e33f29a19a95958f6",
            "038357d1aea2ed3b7adb3e7594ee4e7b44ce06a087dfa8ce505dc69a1ae4a0ca",
            "8e55ef795b09b513454d3d79fb6c844dad9ee73b4070c24f8b3b3fcb82e443e4",
            "53a2ee830ebdad484e6344ddd970a7386396589f811c36d07c6b8bd1826a8f97",
        ),
    },
    RsaKeySpec {
        bits: 2048,
        e: 3,
        seed: 0x5eed8003,
        p: concat!(
            "e6b47cc752eab98a6f3c7bb3da362b5afe74176cab69ee35a708ed0179164252",
            "02524d7e80171f112e8e5d99d4ab0b71f4ac27af7ac4a619443e4c1f0b20f475",
            "06b9fb48c98c388a387d877b6673801cf84766ac5bc71f345349e49fc02a4f9c",
            "f46239ce3d32312f732c0e71558dd075ee27cc8284a19aed3dce259c9538f3a3",
        ),
        q: concat!(
            "d2c4b38eab3316cc944348208cae1d98a57437384e4fb1ab8be60e4c3f8eeb47",
            "498976f83c3f8e3e8eadcdc8e8cfa3f6bf109ef73b6dbafdd7dbae39808bc176",
            "ce8b349015000f371cdfd7187fc651bd96570b7f4b6c5f587280a32e313817d8",
            "597f394b6dbeff8e68ba0d556b9059415dd0d9801bfcfbf8c4af5c0311f9d7ed",
        ),
    },
];

/// An RSA key with the reference's view of it and ours.
struct RsaFixture {
    spec: &'static RsaKeySpec,
    private: RsaPrivateKey,
    public: RsaPublicKey,
    ours: Result<OurRsaKey, KeyError>,
}

impl RsaFixture {
    fn new(spec: &'static RsaKeySpec) -> Self {
        let private =
            RsaPrivateKey::from_p_q(big_hex(spec.p), big_hex(spec.q), BigUint::from(spec.e))
                .unwrap();
        assert_eq!(private.n().bits(), spec.bits, "seed {:#x}", spec.seed);
        let public = private.to_public_key();
        let ours = OurRsaKey::new(&public.n().to_bytes_be(), &public.e().to_bytes_be());
        Self {
            spec,
            private,
            public,
            ours,
        }
    }

    fn label(&self) -> String {
        format!("RSA-{} e={}", self.spec.bits, self.spec.e)
    }

    /// Modulus length in bytes: the length of every signature.
    fn len(&self) -> usize {
        self.spec.bits.div_ceil(8)
    }

    fn n(&self) -> &BigUint {
        self.public.n()
    }

    /// Signs `representative` (below n) with the raw private operation, as
    /// `len()` bytes: a signature of whatever encoded message the test wrote.
    fn sign_raw(&self, representative: &BigUint) -> Vec<u8> {
        let signature =
            rsa_decrypt_and_check(&self.private, None::<&mut ChaCha20Rng>, representative).unwrap();
        be_bytes(&signature, self.len()).unwrap()
    }

    /// The representative s^e mod n that a signature stands for.
    fn recover(&self, signature: &[u8]) -> BigUint {
        big(signature).modpow(self.public.e(), self.n())
    }
}

fn rsa_fixtures() -> Vec<RsaFixture> {
    RSA_KEYS.iter().map(RsaFixture::new).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RsaAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
}

impl RsaAlgorithm {
    const ALL: [Self; 6] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
    ];

    fn hash(self) -> Hash {
        match self {
            Self::Rs256 | Self::Ps256 => Hash::Sha256,
            Self::Rs384 | Self::Ps384 => Hash::Sha384,
            Self::Rs512 | Self::Ps512 => Hash::Sha512,
        }
    }

    fn is_pss(self) -> bool {
        matches!(self, Self::Ps256 | Self::Ps384 | Self::Ps512)
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self.hash() {
            Hash::Sha256 => Sha256::digest(message).to_vec(),
            Hash::Sha384 => Sha384::digest(message).to_vec(),
            Hash::Sha512 => Sha512::digest(message).to_vec(),
        }
    }

    /// A signature by the reference crate: PKCS#1 v1.5, or PSS with a salt as long
    /// as the hash (RFC 7518 3.5) or `salt_len`.
    fn sign(
        self,
        key: &RsaPrivateKey,
        message: &[u8],
        salt_len: Option<usize>,
        rng: &mut ChaCha20Rng,
    ) -> Vec<u8> {
        let digest = self.digest(message);
        let salt = salt_len.unwrap_or(digest.len());
        match self {
            Self::Rs256 => key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest),
            Self::Rs384 => key.sign(Pkcs1v15Sign::new::<Sha384>(), &digest),
            Self::Rs512 => key.sign(Pkcs1v15Sign::new::<Sha512>(), &digest),
            Self::Ps256 => key.sign_with_rng(rng, Pss::new_with_salt::<Sha256>(salt), &digest),
            Self::Ps384 => key.sign_with_rng(rng, Pss::new_with_salt::<Sha384>(salt), &digest),
            Self::Ps512 => key.sign_with_rng(rng, Pss::new_with_salt::<Sha512>(salt), &digest),
        }
        .unwrap()
    }

    fn ours(self, fixture: &RsaFixture, message: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = &fixture.ours else {
            return false;
        };
        if self.is_pss() {
            verify_pss(key, self.hash(), message, signature)
        } else {
            verify_pkcs1v15(key, self.hash(), message, signature)
        }
    }

    /// The reference verdict: the `rsa` crate's verifying keys, and the two rules of
    /// the last items, which the crate does not apply.
    ///
    /// - RS*: `pkcs1v15::VerifyingKey<D>` (RFC 8017 8.2.2): the signature must be
    ///   exactly k bytes and below n, and the recovered block must be the whole
    ///   EMSA-PKCS1-v1_5 encoding, DigestInfo with the NULL parameters. That is ours.
    /// - PS*: `pss::VerifyingKey<D>::new`: MGF1 with the message hash and a salt as
    ///   long as the hash (RFC 7518 3.5). Its `Verifier` path checks s < n; the
    ///   `RsaPublicKey::verify(Pss, …)` path does not (rsa 0.9.10 accepts s + n
    ///   there when it still fits in k bytes), so that one is not used.
    /// - RFC 7518 3.3 and 3.5: keys must have at least 2048 bits (our `MIN_BITS`);
    ///   the crate verifies with any size, so smaller keys are refused here.
    /// - RFC 8017 8.1.2 step 2c: EM = I2OSP(m, emLen), emLen = ⌈(modBits − 1)/8⌉, and
    ///   a representative m ≥ 256^emLen is an invalid signature. When modBits ≡ 1
    ///   (mod 8) emLen is one byte shorter than the modulus, and rsa 0.9.10 drops
    ///   that top byte unchecked (`emsa_pss_verify*`: `&mut em[key_len - em_len..]`),
    ///   so it would accept such an m; `rsa_crafted_encodings_agree` shows it does.
    ///   The step is applied here.
    fn reference(self, fixture: &RsaFixture, message: &[u8], signature: &[u8]) -> bool {
        fixture.spec.bits >= MIN_BITS
            && self.rsa_crate_verifies(&fixture.public, message, signature)
            && (!self.is_pss() || pss_representative_fits(fixture, signature))
    }

    /// The `rsa` crate's verdict alone.
    fn rsa_crate_verifies(self, key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
        macro_rules! pkcs1 {
            ($digest:ty) => {
                rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|signature| {
                    rsa::pkcs1v15::VerifyingKey::<$digest>::new(key.clone())
                        .verify(message, &signature)
                        .is_ok()
                })
            };
        }
        macro_rules! pss {
            ($digest:ty) => {
                rsa::pss::Signature::try_from(signature).is_ok_and(|signature| {
                    rsa::pss::VerifyingKey::<$digest>::new(key.clone())
                        .verify(message, &signature)
                        .is_ok()
                })
            };
        }
        match self {
            Self::Rs256 => pkcs1!(Sha256),
            Self::Rs384 => pkcs1!(Sha384),
            Self::Rs512 => pkcs1!(Sha512),
            Self::Ps256 => pss!(Sha256),
            Self::Ps384 => pss!(Sha384),
            Self::Ps512 => pss!(Sha512),
        }
    }
}

/// RFC 8017 8.1.2 step 2c for PSS: the representative fits in emLen bytes. (A
/// signature that is not below n is refused by the crate anyway.)
fn pss_representative_fits(fixture: &RsaFixture, signature: &[u8]) -> bool {
    let em_len = (fixture.spec.bits - 1).div_ceil(8);
    // Unless modBits ≡ 1 (mod 8), emLen is the modulus length and m < n fits.
    if em_len == fixture.len() || big(signature) >= *fixture.n() {
        return true;
    }
    fixture.recover(signature).bits() <= 8 * em_len
}

/// Compares one RSA case.
fn rsa_case(
    tally: &mut Tally,
    fixture: &RsaFixture,
    algorithm: RsaAlgorithm,
    what: &str,
    message: &[u8],
    signature: &[u8],
) {
    tally.compare(
        algorithm.ours(fixture, message, signature),
        algorithm.reference(fixture, message, signature),
        || {
            format!(
                "{} {algorithm:?} {what}: message {}, signature {}",
                fixture.label(),
                short_hex(message),
                short_hex(signature)
            )
        },
    );
}

/// A signature `s` replaced by special values: 0, 1, n - 1, n, n + 1, s + n, n - s,
/// s + 2n (those that fit in `len` bytes).
fn rsa_value_mutations(n: &BigUint, s: &BigUint, len: usize) -> Vec<(String, Vec<u8>)> {
    let values = [
        ("0", BigUint::from(0u8)),
        ("1", BigUint::from(1u8)),
        ("n - 1", n - 1u8),
        ("n", n.clone()),
        ("n + 1", n + 1u8),
        ("s + n", s + n),
        ("n - s", n - s),
        ("s + 2n", s + n + n),
    ];
    values
        .into_iter()
        .filter_map(|(name, value)| Some((format!("signature = {name}"), be_bytes(&value, len)?)))
        .collect()
}

/// Random messages signed with every RSA algorithm by every key, then mutated:
/// bytes (flips, truncation, extension), values (0, 1, n - 1, n, n + 1, s + n,
/// n - s), the message, and the algorithm (a signature checked as every other one).
#[wasm_bindgen_test(unsupported = test)]
fn rsa_agrees_with_the_rsa_crate() {
    let mut rng = rng(0x7273_6131);
    let mut tally = Tally::new("RSA");
    let fixtures = rsa_fixtures();
    for fixture in &fixtures {
        if fixture.spec.bits < MIN_BITS {
            assert_eq!(
                fixture.ours.as_ref().err(),
                Some(&KeyError::ModulusSize {
                    bits: fixture.spec.bits
                })
            );
        }
        let n = fixture.n();
        let len = fixture.len();
        for algorithm in RsaAlgorithm::ALL {
            for index in 0..SCALE.rsa_messages {
                let message = message(&mut rng, index);
                let signature = algorithm.sign(&fixture.private, &message, None, &mut rng);
                let s = big(&signature);
                if fixture.spec.bits >= MIN_BITS {
                    assert!(
                        algorithm.ours(fixture, &message, &signature),
                        "{} {algorithm:?}: a signature of the rsa crate does not verify",
                        fixture.label()
                    );
                } else {
                    // Only the JOSE key-size rule tells the two apart here.
                    assert!(algorithm.rsa_crate_verifies(&fixture.public, &message, &signature));
                }
                let mut cases = byte_mutations(&signature, &mut rng, SCALE.random_flips);
                cases.extend(rsa_value_mutations(n, &s, len));
                for (what, mutated) in &cases {
                    rsa_case(&mut tally, fixture, algorithm, what, &message, mutated);
                }
                for (what, other) in message_mutations(&message) {
                    rsa_case(&mut tally, fixture, algorithm, what, &other, &signature);
                }
                for other in RsaAlgorithm::ALL.into_iter().filter(|&a| a != algorithm) {
                    let what = format!("signed as {algorithm:?}");
                    rsa_case(&mut tally, fixture, other, &what, &message, &signature);
                }
            }
        }
    }
    let keys = fixtures.len() * RsaAlgorithm::ALL.len();
    let usable = fixtures.iter().filter(|f| f.ours.is_ok()).count() * RsaAlgorithm::ALL.len();
    // Each valid signature is accepted once (as itself); every mutation is rejected.
    tally.finish(
        "",
        keys * SCALE.rsa_messages * 25,
        usable * SCALE.rsa_messages,
    );
}

/// The DigestInfo prefix of a hash (RFC 8017 9.2 note 1), with or without the NULL
/// parameters.
fn digest_info_prefix(hash: Hash, with_null: bool) -> Vec<u8> {
    let (id, len) = match hash {
        Hash::Sha256 => (1, 32),
        Hash::Sha384 => (2, 48),
        Hash::Sha512 => (3, 64),
    };
    let oid = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, id,
    ];
    let mut algorithm = oid.to_vec();
    if with_null {
        algorithm.extend_from_slice(&[0x05, 0x00]);
    }
    let mut inner = vec![0x30, algorithm.len() as u8];
    inner.extend_from_slice(&algorithm);
    let mut out = vec![0x30, (inner.len() + 2 + len) as u8];
    out.extend_from_slice(&inner);
    out.extend_from_slice(&[0x04, len as u8]);
    out
}

/// EMSA-PKCS1-v1_5 as `len` bytes, `00 BT FF…FF 00 T`, padded on the right with
/// `garbage` bytes after T (shortening the FF run).
fn pkcs1_block(block_type: u8, t: &[u8], garbage: &[u8], len: usize) -> Vec<u8> {
    let padding = len - 3 - t.len() - garbage.len();
    let mut block = vec![0x00, block_type];
    block.extend(std::iter::repeat_n(0xff, padding));
    block.push(0x00);
    block.extend_from_slice(t);
    block.extend_from_slice(garbage);
    block
}

/// The integer cube root of `value`, rounded up.
fn cube_root_ceil(value: &BigUint) -> BigUint {
    // Newton's method from above: x' = (2x + v / x²) / 3 decreases to ⌊∛v⌋.
    let mut x = BigUint::from(1u8) << (value.bits() / 3 + 1);
    loop {
        let next = (&x * 2u8 + value / (&x * &x)) / 3u8;
        if next >= x {
            break;
        }
        x = next;
    }
    if &x * &x * &x < *value {
        x + 1u8
    } else {
        x
    }
}

/// Bleichenbacher 2006: with e = 3, the cube root of `00 01 FF…FF 00 T` followed by
/// zeros, rounded up, cubes to that prefix followed by garbage: a signature that a
/// verifier parsing the block instead of comparing all of it takes, made without
/// the private key. `None` unless e = 3 and the garbage has room for the rounding
/// error (in 2048 bits: with SHA-256 and SHA-384, not SHA-512).
fn cube_root_forgery(fixture: &RsaFixture, t: &[u8]) -> Option<Vec<u8>> {
    if fixture.spec.e != 3 {
        return None;
    }
    let len = fixture.len();
    let prefix = 3 + 8 + t.len();
    let mut target = vec![0x00, 0x01];
    target.extend([0xff; 8]);
    target.push(0x00);
    target.extend_from_slice(t);
    target.resize(len, 0);
    let forged = be_bytes(&cube_root_ceil(&big(&target)), len)?;
    let cubed = be_bytes(&fixture.recover(&forged), len)?;
    (cubed[..prefix] == target[..prefix]).then_some(forged)
}

/// Encoded messages written by hand and signed with the raw private operation:
/// the exact encodings, and near-misses a lax verifier takes. PKCS#1 v1.5: the
/// DigestInfo without NULL, another hash's DigestInfo, block type 2, garbage after
/// the hash, a zero byte inside the padding, the e = 3 cube-root forgery. PSS: other
/// salt lengths, the trailer byte, the unused top bits, and a representative above
/// 256^emLen when modBits ≡ 1 (mod 8).
#[wasm_bindgen_test(unsupported = test)]
fn rsa_crafted_encodings_agree() {
    let mut rng = rng(0x7273_6132);
    let mut tally = Tally::new("RSA crafted encodings");
    let mut rsa_crate_laxity = 0;
    let mut forgeries = 0;
    let fixtures = rsa_fixtures();
    // The 2049-bit key (the I2OSP case) and the e = 3 key come first under Wasm.
    let mut order: Vec<&RsaFixture> = fixtures.iter().collect();
    order.sort_by_key(|fixture| (fixture.spec.bits != 2049, fixture.spec.e != 3));
    for fixture in order.into_iter().take(SCALE.rsa_crafted_keys) {
        let len = fixture.len();
        let n = fixture.n();
        for algorithm in RsaAlgorithm::ALL {
            let hash = algorithm.hash();
            let message = message(&mut rng, 2);
            let digest = algorithm.digest(&message);
            let mut blocks: Vec<(String, Vec<u8>)> = Vec::new();
            if !algorithm.is_pss() {
                let t = [digest_info_prefix(hash, true), digest.clone()].concat();
                let other_hash = match hash {
                    Hash::Sha256 => Hash::Sha512,
                    _ => Hash::Sha256,
                };
                let no_null = [digest_info_prefix(hash, false), digest.clone()].concat();
                let other = [digest_info_prefix(other_hash, true), digest.clone()].concat();
                let mut zero_inside = pkcs1_block(1, &t, &[], len);
                zero_inside[5] = 0;
                blocks.extend([
                    ("exact encoding".into(), pkcs1_block(1, &t, &[], len)),
                    (
                        "DigestInfo without NULL".into(),
                        pkcs1_block(1, &no_null, &[], len),
                    ),
                    (
                        "another hash's DigestInfo".into(),
                        pkcs1_block(1, &other, &[], len),
                    ),
                    ("block type 2".into(), pkcs1_block(2, &t, &[], len)),
                    (
                        "garbage after the hash".into(),
                        pkcs1_block(1, &t, &[0x5a; 16], len),
                    ),
                    ("zero byte inside the padding".into(), zero_inside),
                    ("digest alone".into(), pkcs1_block(1, &digest, &[], len)),
                ]);
                if let Some(forged) = cube_root_forgery(fixture, &t) {
                    forgeries += 1;
                    let what = "e = 3 cube-root forgery";
                    rsa_case(&mut tally, fixture, algorithm, what, &message, &forged);
                }
            } else {
                let valid = algorithm.sign(&fixture.private, &message, None, &mut rng);
                let em = fixture.recover(&valid);
                let em_bytes = be_bytes(&em, len).unwrap();
                let mut trailer = em_bytes.clone();
                trailer[len - 1] ^= 0x01;
                blocks.push(("trailer byte 0xbd".into(), trailer));
                let mut flipped = em_bytes.clone();
                let bit = rng.next_u32() as usize % (8 * (len - 1));
                flipped[len - 1 - bit / 8] ^= 1 << (bit % 8);
                blocks.push((format!("EM bit {bit} flipped"), flipped));
                // The highest bit EM may not use (emBits = modBits - 1), and the
                // byte above emLen when modBits ≡ 1 (mod 8).
                let em_bits = fixture.spec.bits - 1;
                let above = em + (BigUint::from(1u8) << em_bits);
                blocks.push(("bit emBits set".into(), be_bytes(&above, len).unwrap()));
                for salt_len in [0, 20, digest.len() + 1] {
                    let signature =
                        algorithm.sign(&fixture.private, &message, Some(salt_len), &mut rng);
                    let what = format!("salt of {salt_len} bytes");
                    rsa_case(&mut tally, fixture, algorithm, &what, &message, &signature);
                }
            }
            for (what, block) in blocks {
                let representative = big(&block);
                if representative >= *n {
                    continue;
                }
                let signature = fixture.sign_raw(&representative);
                assert_eq!(fixture.recover(&signature), representative);
                rsa_case(&mut tally, fixture, algorithm, &what, &message, &signature);
                let reference = algorithm.reference(fixture, &message, &signature);
                if algorithm.rsa_crate_verifies(&fixture.public, &message, &signature) != reference
                    && fixture.spec.bits >= MIN_BITS
                {
                    assert_eq!(
                        (fixture.spec.bits % 8, what.as_str()),
                        (1, "bit emBits set"),
                        "the rsa crate alone differs from the reference elsewhere"
                    );
                    rsa_crate_laxity += 1;
                }
            }
        }
    }
    let extra = format!(
        "; {forgeries} cube-root forgeries; the rsa crate alone accepts {rsa_crate_laxity} \
         PSS representatives ≥ 256^emLen (2049-bit key)"
    );
    tally.finish(
        &extra,
        SCALE.rsa_crafted_keys * 30,
        SCALE.rsa_crafted_keys * 2,
    );
    assert!(
        forgeries >= 2,
        "the e = 3 key made {forgeries} cube-root forgeries"
    );
    // rsa 0.9.10 takes these, which is why `reference` applies RFC 8017 8.1.2 step 2c
    // itself: if this fails after an upgrade, the crate checks it now.
    assert!(
        rsa_crate_laxity > 0,
        "no PSS representative ≥ 256^emLen was accepted by the rsa crate alone"
    );
}

/// Regenerates the embedded RSA keys from their seeds (seconds natively; run with
/// `cargo test --test crypto_differential -- --ignored`).
#[test]
#[ignore = "regenerates the embedded keys: slow"]
#[cfg(not(target_family = "wasm"))]
fn embedded_rsa_keys_come_from_their_seeds() {
    use rsa::traits::PrivateKeyParts;
    for spec in &RSA_KEYS {
        let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
        let key = RsaPrivateKey::new_with_exp(&mut rng, spec.bits, &BigUint::from(spec.e)).unwrap();
        let primes = key.primes();
        assert_eq!(
            (primes[0].clone(), primes[1].clone()),
            (big_hex(spec.p), big_hex(spec.q)),
            "RSA-{}",
            spec.bits
        );
    }
}

// ----- ECDSA -----

/// One curve: our key type, the reference crate's, and the curve's constants.
trait EcCurve {
    const NAME: &'static str;
    /// Bytes of a coordinate and of r and s.
    const BYTES: usize;
    /// The group order n and the field prime p, hex.
    const ORDER: &'static str;
    const PRIME: &'static str;
    /// b of y² = x³ - 3x + b, hex.
    const B: &'static str;
    type Ours;
    type Reference;
    type Signer;

    fn signer(scalar: &[u8]) -> Option<Self::Signer>;
    /// The signer's public key as big-endian x and y, full length.
    fn coordinates(signer: &Self::Signer) -> (Vec<u8>, Vec<u8>);
    /// r || s, with the deterministic nonce of RFC 6979.
    fn sign(signer: &Self::Signer, message: &[u8]) -> Vec<u8>;
    fn our_key(x: &[u8], y: &[u8]) -> Option<Self::Ours>;
    fn our_verify(key: &Self::Ours, message: &[u8], signature: &[u8]) -> bool;
    fn reference_key(x: &[u8], y: &[u8]) -> Option<Self::Reference>;
    fn reference_verify(key: &Self::Reference, message: &[u8], signature: &[u8]) -> bool;
}

/// The reference for ES256 and ES384: `VerifyingKey::from_sec1_bytes` of the
/// uncompressed point, `Signature::from_slice` and `Verifier::verify`.
///
/// - Keys: RFC 7518 6.2.1.2 and 6.2.1.3 want x and y at the full length of the
///   field, so other lengths are refused here before SEC 1 decoding (which then
///   refuses coordinates ≥ p, points off the curve and the identity), as ours does.
/// - Signatures: JWS uses the raw `r || s` of exactly 2·BYTES bytes (RFC 7518 3.4);
///   `from_slice` takes exactly that and refuses r or s outside [1, n - 1].
/// - High S: RFC 7518 does not ask for low S, and neither do we; `p256` and `p384`
///   set `NORMALIZE_S = false`, so `verify` takes high S (unlike `k256`), which
///   matches ours without an extra rule.
macro_rules! ec_curve {
    ($curve:ident, $crate_name:ident, $ours:ty, $name:literal, $bytes:literal, $order:literal, $prime:literal, $b:literal) => {
        struct $curve;

        impl EcCurve for $curve {
            const NAME: &'static str = $name;
            const BYTES: usize = $bytes;
            const ORDER: &'static str = $order;
            const PRIME: &'static str = $prime;
            const B: &'static str = $b;
            type Ours = $ours;
            type Reference = $crate_name::ecdsa::VerifyingKey;
            type Signer = $crate_name::ecdsa::SigningKey;

            fn signer(scalar: &[u8]) -> Option<Self::Signer> {
                $crate_name::ecdsa::SigningKey::from_slice(scalar).ok()
            }

            fn coordinates(signer: &Self::Signer) -> (Vec<u8>, Vec<u8>) {
                let point = signer.verifying_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                assert_eq!(bytes.len(), 1 + 2 * $bytes);
                (bytes[1..1 + $bytes].to_vec(), bytes[1 + $bytes..].to_vec())
            }

            fn sign(signer: &Self::Signer, message: &[u8]) -> Vec<u8> {
                use $crate_name::ecdsa::signature::Signer as _;
                let signature: $crate_name::ecdsa::Signature = signer.sign(message);
                signature.to_bytes().to_vec()
            }

            fn our_key(x: &[u8], y: &[u8]) -> Option<Self::Ours> {
                <$ours>::from_coordinates(x, y)
            }

            fn our_verify(key: &Self::Ours, message: &[u8], signature: &[u8]) -> bool {
                key.verify(message, signature)
            }

            fn reference_key(x: &[u8], y: &[u8]) -> Option<Self::Reference> {
                if x.len() != $bytes || y.len() != $bytes {
                    return None;
                }
                let sec1 = [&[0x04][..], x, y].concat();
                $crate_name::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).ok()
            }

            fn reference_verify(key: &Self::Reference, message: &[u8], signature: &[u8]) -> bool {
                use $crate_name::ecdsa::signature::Verifier as _;
                $crate_name::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|signature| key.verify(message, &signature).is_ok())
            }
        }
    };
}

ec_curve!(
    P256,
    p256,
    P256Key,
    "P-256",
    32,
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"
);

ec_curve!(
    P384,
    p384,
    P384Key,
    "P-384",
    48,
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef"
);

/// A public key as both sides load it.
struct EcKey<C: EcCurve> {
    label: String,
    x: Vec<u8>,
    y: Vec<u8>,
    ours: Option<C::Ours>,
    reference: Option<C::Reference>,
}

impl<C: EcCurve> EcKey<C> {
    fn new(label: String, x: Vec<u8>, y: Vec<u8>) -> Self {
        Self {
            ours: C::our_key(&x, &y),
            reference: C::reference_key(&x, &y),
            label,
            x,
            y,
        }
    }

    /// Compares loading the key, then one verification per signature.
    fn check(&self, tally: &mut Tally, cases: &[(String, Vec<u8>, Vec<u8>)]) {
        tally.compare(self.ours.is_some(), self.reference.is_some(), || {
            format!(
                "{} key {}: x {}, y {}",
                C::NAME,
                self.label,
                short_hex(&self.x),
                short_hex(&self.y)
            )
        });
        for (what, message, signature) in cases {
            self.verify(tally, what, message, signature);
        }
    }

    fn verify(&self, tally: &mut Tally, what: &str, message: &[u8], signature: &[u8]) {
        let ours = self
            .ours
            .as_ref()
            .is_some_and(|key| C::our_verify(key, message, signature));
        let reference = self
            .reference
            .as_ref()
            .is_some_and(|key| C::reference_verify(key, message, signature));
        tally.compare(ours, reference, || {
            format!(
                "{} key {} {what}: message {}, signature {}",
                C::NAME,
                self.label,
                short_hex(message),
                short_hex(signature)
            )
        });
    }
}

/// `r || s` in ASN.1 DER, the encoding X.509 uses and JWS does not.
fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let mut value = bytes[start..].to_vec();
        if value.first().is_none_or(|&b| b & 0x80 != 0) {
            value.insert(0, 0);
        }
        [vec![0x02, value.len() as u8], value].concat()
    }
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// Signature mutations specific to ECDSA: r and s set to 0, 1, n - 1, n, n + 1, p
/// and 2^bits - 1 (each alone, and both zero: the "psychic signature"), high S
/// (n - s), r and s swapped, DER encoding.
fn ecdsa_mutations<C: EcCurve>(signature: &[u8]) -> Vec<(String, Vec<u8>)> {
    let bytes = C::BYTES;
    let (r, s) = signature.split_at(bytes);
    let n = big_hex(C::ORDER);
    let p = big_hex(C::PRIME);
    let max = (BigUint::from(1u8) << (8 * bytes)) - 1u8;
    let specials = [
        ("0", BigUint::from(0u8)),
        ("1", BigUint::from(1u8)),
        ("n - 1", &n - 1u8),
        ("n", n.clone()),
        ("n + 1", &n + 1u8),
        ("p", p),
        ("2^bits - 1", max),
    ];
    let mut out = Vec::new();
    for (name, value) in &specials {
        let value = be_bytes(value, bytes).unwrap();
        out.push((format!("r = {name}"), [&value[..], s].concat()));
        out.push((format!("s = {name}"), [r, &value[..]].concat()));
    }
    out.push(("r = s = 0".into(), vec![0; 2 * bytes]));
    let high_s = be_bytes(&(&n - big(s)), bytes).unwrap();
    out.push(("high S (n - s)".into(), [r, &high_s[..]].concat()));
    out.push(("r and s swapped".into(), [s, r].concat()));
    out.push(("r = s".into(), [r, r].concat()));
    out.push(("DER".into(), der_signature(r, s)));
    out
}

/// A point with a small x (so that x + p still fits in the coordinate: a
/// non-canonical alias of it), if x³ - 3x + b is a square. Both primes are 3 mod 4,
/// so the root is a power.
fn small_x_point<C: EcCurve>(x: u32) -> Option<(BigUint, BigUint)> {
    let p = big_hex(C::PRIME);
    let x = BigUint::from(x);
    let rhs = (&x * &x * &x + &p * 3u8 - &x * 3u8 + big_hex(C::B)) % &p;
    let y = rhs.modpow(&((&p + 1u8) >> 2), &p);
    (&y * &y % &p == rhs).then_some((x, y))
}

fn ecdsa_agrees<C: EcCurve>(seed: u64) {
    let mut rng = rng(seed);
    let mut tally = Tally::new(C::NAME);
    let bytes = C::BYTES;
    let n = big_hex(C::ORDER);
    let p = big_hex(C::PRIME);
    // d = 1 (Q = G) and d = n - 1 (Q = -G) make our tables of G and Q coincide.
    let mut scalars = vec![
        be_bytes(&BigUint::from(1u8), bytes).unwrap(),
        be_bytes(&(&n - 1u8), bytes).unwrap(),
    ];
    while scalars.len() < 2 + SCALE.ec_keys {
        scalars.push(random_bytes(&mut rng, bytes));
    }
    let mut all_signatures = Vec::new();
    for scalar in scalars {
        let Some(signer) = C::signer(&scalar) else {
            continue; // not in [1, n - 1]
        };
        let (x, y) = C::coordinates(&signer);
        let key = EcKey::<C>::new(format!("d = {}", short_hex(&scalar)), x.clone(), y.clone());
        // The same point negated: (x, p - y).
        let negated_y = be_bytes(&(&p - big(&y)), bytes).unwrap();
        let negated = EcKey::<C>::new(format!("-({})", key.label), x.clone(), negated_y);
        assert!(key.ours.is_some() && key.reference.is_some());
        let mut cases = Vec::new();
        for index in 0..SCALE.ec_messages {
            let message = message(&mut rng, index);
            let signature = C::sign(&signer, &message);
            for (what, mutated) in byte_mutations(&signature, &mut rng, SCALE.random_flips)
                .into_iter()
                .chain(ecdsa_mutations::<C>(&signature))
            {
                cases.push((what, message.clone(), mutated));
            }
            for (what, other) in message_mutations(&message) {
                cases.push((what.to_string(), other, signature.clone()));
            }
            all_signatures.push((message, signature));
        }
        key.check(&mut tally, &cases);
        negated.check(&mut tally, &cases[..cases.len().min(8)]);
    }
    // Raw public keys: random coordinates, a valid x with y changed, coordinates
    // ≥ p, aliases x + p of small-x points, wrong lengths, all zero.
    let some = all_signatures.first().cloned().unwrap();
    let signature_cases: Vec<(String, Vec<u8>, Vec<u8>)> = all_signatures
        .iter()
        .take(3)
        .map(|(message, signature)| {
            (
                "another key's signature".into(),
                message.clone(),
                signature.clone(),
            )
        })
        .collect();
    let mut raw_keys: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..SCALE.random_keys {
        raw_keys.push((
            "random".into(),
            random_bytes(&mut rng, bytes),
            random_bytes(&mut rng, bytes),
        ));
    }
    let (x0, y0) =
        C::coordinates(&C::signer(&be_bytes(&BigUint::from(7u8), bytes).unwrap()).unwrap());
    let p_bytes = be_bytes(&p, bytes).unwrap();
    let mut y_plus_one = y0.clone();
    y_plus_one[bytes - 1] ^= 1;
    raw_keys.extend([
        ("7G with y's low bit flipped".into(), x0.clone(), y_plus_one),
        ("x = p".into(), p_bytes.clone(), y0.clone()),
        ("y = p".into(), x0.clone(), p_bytes.clone()),
        ("all zero".into(), vec![0; bytes], vec![0; bytes]),
        ("all 0xff".into(), vec![0xff; bytes], vec![0xff; bytes]),
        ("x short by a byte".into(), x0[1..].to_vec(), y0.clone()),
        (
            "x with a zero byte prepended".into(),
            [&[0][..], &x0].concat(),
            y0.clone(),
        ),
        ("y short by a byte".into(), x0.clone(), y0[1..].to_vec()),
        (
            "y with a zero byte prepended".into(),
            x0.clone(),
            [&[0][..], &y0].concat(),
        ),
        ("empty".into(), Vec::new(), Vec::new()),
    ]);
    let mut aliases = 0;
    for small_x in 0..24 {
        if let Some((x, y)) = small_x_point::<C>(small_x) {
            let y = be_bytes(&y, bytes).unwrap();
            let alias = be_bytes(&(&x + &p), bytes).unwrap();
            raw_keys.push((
                format!("x = {small_x}"),
                be_bytes(&x, bytes).unwrap(),
                y.clone(),
            ));
            raw_keys.push((format!("x = {small_x} + p"), alias, y));
            aliases += 1;
        }
    }
    assert!(aliases > 0, "no small-x point on {}", C::NAME);
    for (label, x, y) in raw_keys {
        let key = EcKey::<C>::new(label, x, y);
        key.check(&mut tally, &signature_cases);
        let (message, signature) = &some;
        for (what, mutated) in ecdsa_mutations::<C>(signature).into_iter().take(4) {
            key.verify(&mut tally, &what, message, &mutated);
        }
    }
    let signed = (2 + SCALE.ec_keys) * SCALE.ec_messages;
    tally.finish("", signed * 40, signed * 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn es256_agrees_with_p256() {
    ecdsa_agrees::<P256>(0x7032_3536);
}

#[wasm_bindgen_test(unsupported = test)]
fn es384_agrees_with_p384() {
    ecdsa_agrees::<P384>(0x7033_3834);
}

// ----- Ed25519 -----

/// The reference verdict for EdDSA/Ed25519: `!key.is_weak() && key.verify(…)`.
///
/// RFC 8032 5.1.7 allows the cofactorless check [S]B = R + [k]A or the cofactored
/// one; RFC 8037 adds nothing. Ours is cofactorless with R compared as an encoding
/// (the encoding of [S]B − [k]A must equal R byte for byte) and S < L, and refuses
/// small-order keys (8A = 0: anyone can sign for them).
///
/// - `VerifyingKey::verify` (ed25519-dalek 3, without `legacy_compatibility`) is
///   exactly that check: S must be canonical (< L), and the compressed
///   [S]B − [k]A is compared with R's bytes, so a non-canonical R never matches. It
///   does take small-order keys (a forged signature with S = 0 then verifies, see
///   `ed25519_special_keys_agree`), hence the `is_weak` gate, which is
///   `verify_strict`'s key check.
/// - `verify_strict` also refuses every small-order R. We do not: on a mixed-order
///   key (a prime-order point plus a torsion point), a small-order R can satisfy
///   the cofactorless equation, and RFC 8032 does not refuse it. So
///   `verify_strict` is stricter than our documented semantics; the special-keys
///   test counts the cases where it would differ.
/// - Keys: a JWK's `x` is 32 bytes (RFC 8037 2), other lengths are refused. dalek
///   decodes a y ≥ p by reducing it, where we follow RFC 8032 5.1.3 and refuse it;
///   such a key is a point nobody knows the discrete log of (or a small-order one),
///   so no signature can tell the two apart, and the cases here confirm they agree.
fn reference_ed25519(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = <[u8; 32]>::try_from(key) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    !key.is_weak() && key.verify(message, &signature).is_ok()
}

/// What `verify_strict` alone says, and `verify` alone: the calls we did not pick.
fn ed25519_alternatives(key: &[u8], message: &[u8], signature: &[u8]) -> (bool, bool) {
    let Ok(key) = <[u8; 32]>::try_from(key) else {
        return (false, false);
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return (false, false);
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return (false, false);
    };
    (
        key.verify_strict(message, &signature).is_ok(),
        key.verify(message, &signature).is_ok(),
    )
}

/// Ed25519 cases of one key, which our side loads once (its table is per key).
struct EdChecker<'a> {
    tally: &'a mut Tally,
    /// Cases where `verify_strict`, or `verify` without the key check, would differ.
    strict_differs: usize,
    ungated_differs: usize,
}

impl EdChecker<'_> {
    fn check(&mut self, label: &str, key: &[u8], cases: &[(String, Vec<u8>, Vec<u8>)]) {
        let ours_key = OurEd25519Key::from_bytes(key);
        for (what, message, signature) in cases {
            let ours = ours_key
                .as_ref()
                .is_some_and(|ours| ours.verify(message, signature));
            let reference = reference_ed25519(key, message, signature);
            let (strict, ungated) = ed25519_alternatives(key, message, signature);
            self.strict_differs += usize::from(strict != reference);
            self.ungated_differs += usize::from(ungated != reference);
            self.tally.compare(ours, reference, || {
                format!(
                    "Ed25519 key {label} ({}) {what}: message {}, signature {}",
                    hex(key),
                    short_hex(message),
                    hex(signature)
                )
            });
        }
    }
}

const L_HEX: &str = "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed";

/// A 32-byte little-endian integer.
fn le_big(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_le(bytes)
}

fn le_bytes(value: &BigUint) -> Vec<u8> {
    let mut bytes = value.to_bytes_le();
    bytes.resize(32, 0);
    bytes
}

/// Encodings of y = `y` (below 19) written as y + p, and the sign bit: the
/// non-canonical encodings RFC 8032 5.1.3 refuses.
fn non_canonical_y(y: u8, sign: bool) -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[0] = 0xed + y; // p = 2^255 - 19: ed ff … ff 7f, little-endian
    bytes[31] = 0x7f | if sign { 0x80 } else { 0 };
    bytes
}

/// Every small-order point as encoded, canonically and otherwise: the eight
/// torsion points, the identity and the order-2 point with the sign bit set (x = 0),
/// and y = 0 and y = 1 written as y + p.
fn small_order_encodings() -> Vec<(String, [u8; 32])> {
    let mut out: Vec<(String, [u8; 32])> = EIGHT_TORSION
        .iter()
        .enumerate()
        .map(|(i, point)| (format!("torsion point {i}"), point.compress().to_bytes()))
        .collect();
    let mut identity_signed = [0; 32];
    identity_signed[0] = 1;
    identity_signed[31] = 0x80;
    let mut minus_one_signed = EIGHT_TORSION[4].compress().to_bytes();
    minus_one_signed[31] |= 0x80;
    out.extend([
        ("identity with the sign bit".to_string(), identity_signed),
        ("(0, -1) with the sign bit".to_string(), minus_one_signed),
        ("y = 0 + p".to_string(), non_canonical_y(0, false)),
        ("y = 0 + p, sign bit".to_string(), non_canonical_y(0, true)),
        ("y = 1 + p".to_string(), non_canonical_y(1, false)),
        ("y = 1 + p, sign bit".to_string(), non_canonical_y(1, true)),
    ]);
    out
}

/// k = SHA-512(R || A || M) mod L.
fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let digest = Sha512::new()
        .chain_update(r)
        .chain_update(a)
        .chain_update(message)
        .finalize();
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&digest);
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn random_scalar(rng: &mut ChaCha20Rng) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// Signature mutations specific to Ed25519: S + L, S + 8L, S = L, S = L - 1, S = 0,
/// S's top bit, R negated (sign bit), R plus a torsion point, R replaced by small-order
/// and non-canonical encodings.
fn ed25519_mutations(signature: &[u8]) -> Vec<(String, Vec<u8>)> {
    let (r, s) = signature.split_at(32);
    let l = big_hex(L_HEX);
    let s_value = le_big(s);
    let mut out = Vec::new();
    for (name, value) in [
        ("S + L", &s_value + &l),
        ("S + 8L", &s_value + &l * 8u8),
        ("S = L", l.clone()),
        ("S = L - 1", &l - 1u8),
        ("S = 0", BigUint::from(0u8)),
    ] {
        out.push((name.to_string(), [r, &le_bytes(&value)[..]].concat()));
    }
    let mut top = s.to_vec();
    top[31] |= 0x80;
    out.push(("S's top bit set".into(), [r, &top[..]].concat()));
    let mut negated = r.to_vec();
    negated[31] ^= 0x80;
    out.push(("R's sign bit flipped".into(), [&negated[..], s].concat()));
    if let Some(point) = CompressedEdwardsY(r.try_into().unwrap()).decompress() {
        for (i, torsion) in EIGHT_TORSION.iter().enumerate().skip(1).step_by(3) {
            let shifted = (point + torsion).compress().to_bytes();
            out.push((format!("R + torsion point {i}"), [&shifted[..], s].concat()));
        }
    }
    for (name, encoding) in small_order_encodings().into_iter().step_by(3) {
        out.push((format!("R = {name}"), [&encoding[..], s].concat()));
    }
    out
}

/// ed25519-dalek keys on random seeds: valid signatures and their mutations.
#[wasm_bindgen_test(unsupported = test)]
fn ed25519_agrees_with_ed25519_dalek() {
    let mut rng = rng(0x6564_3235);
    let mut tally = Tally::new("Ed25519");
    let mut checker = EdChecker {
        tally: &mut tally,
        strict_differs: 0,
        ungated_differs: 0,
    };
    let mut signatures = Vec::new();
    for _ in 0..SCALE.ed_keys {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let signer = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = signer.verifying_key().to_bytes();
        let mut cases = Vec::new();
        for index in 0..SCALE.ed_messages {
            let message = message(&mut rng, index);
            let signature = signer.sign(&message).to_bytes();
            assert!(OurEd25519Key::from_bytes(&public)
                .unwrap()
                .verify(&message, &signature));
            for (what, mutated) in byte_mutations(&signature, &mut rng, SCALE.random_flips)
                .into_iter()
                .chain(ed25519_mutations(&signature))
            {
                cases.push((what, message.clone(), mutated));
            }
            for (what, other) in message_mutations(&message) {
                cases.push((what.to_string(), other, signature.to_vec()));
            }
            signatures.push((message, signature.to_vec()));
        }
        checker.check(&format!("seed {}", hex(&seed)), &public, &cases);
    }
    // Random public keys (about half decode to a point) and wrong lengths, with
    // other keys' signatures.
    let others: Vec<(String, Vec<u8>, Vec<u8>)> = signatures
        .iter()
        .take(2)
        .map(|(message, signature)| {
            (
                "another key's signature".into(),
                message.clone(),
                signature.clone(),
            )
        })
        .collect();
    for _ in 0..SCALE.random_keys {
        let key = random_bytes(&mut rng, 32);
        checker.check("random", &key, &others);
    }
    let key = random_bytes(&mut rng, 33);
    checker.check("33 bytes", &key, &others);
    checker.check("31 bytes", &key[..31], &others);
    let signed = SCALE.ed_keys * SCALE.ed_messages;
    tally.finish("", signed * 30, signed);
}

/// Keys and signatures no honest signer makes, built with curve25519-dalek:
///
/// - mixed-order keys A = aB + T (T one of the eight torsion points), signed with
///   R = rB + T' and R = T' (small order), so that the cofactorless equation holds
///   exactly when T' = −kT;
/// - small-order keys A = T (canonical and non-canonical encodings) with the
///   signature (R = T', S = 0), which holds when T' = −kT: a forgery;
/// - non-canonical encodings y + p of points with y < 19, the keys dalek reduces.
#[wasm_bindgen_test(unsupported = test)]
fn ed25519_special_keys_agree() {
    let mut rng = rng(0x6564_3236);
    let mut tally = Tally::new("Ed25519 special keys");
    let mut checker = EdChecker {
        tally: &mut tally,
        strict_differs: 0,
        ungated_differs: 0,
    };
    let torsion: Vec<EdwardsPoint> = EIGHT_TORSION.to_vec();
    let small_r = small_order_encodings();
    let messages = 2 + SCALE.ed_messages;
    // Mixed-order (and, for T = identity, prime-order) keys with their secret a.
    for (t, torsion_a) in torsion.iter().enumerate() {
        let a = random_scalar(&mut rng);
        let public = (EdwardsPoint::mul_base(&a) + torsion_a)
            .compress()
            .to_bytes();
        let mut cases = Vec::new();
        for index in 0..messages {
            let message = message(&mut rng, index);
            for (t_r, torsion_r) in torsion.iter().enumerate() {
                // R = rB + T': S = r + ka.
                let r = random_scalar(&mut rng);
                let big_r = (EdwardsPoint::mul_base(&r) + torsion_r)
                    .compress()
                    .to_bytes();
                let k = challenge(&big_r, &public, &message);
                let s = r + k * a;
                let signature = [&big_r[..], s.as_bytes()].concat();
                cases.push((
                    format!("R = rB + torsion {t_r}"),
                    message.clone(),
                    signature,
                ));
            }
            // R of small order (canonical or not): S = ka.
            for (name, big_r) in &small_r {
                let k = challenge(big_r, &public, &message);
                let signature = [&big_r[..], (k * a).as_bytes()].concat();
                cases.push((format!("R = {name}, S = ka"), message.clone(), signature));
            }
        }
        checker.check(&format!("aB + torsion point {t}"), &public, &cases);
    }
    // Small-order keys: (R = T', S = 0), and random signatures.
    for (name, key) in &small_r {
        let mut cases = Vec::new();
        for index in 0..messages {
            let message = message(&mut rng, index);
            for (r_name, big_r) in &small_r {
                let signature = [&big_r[..], &[0u8; 32][..]].concat();
                cases.push((format!("R = {r_name}, S = 0"), message.clone(), signature));
            }
            cases.push((
                "random signature".into(),
                message,
                random_bytes(&mut rng, 64),
            ));
        }
        checker.check(name, key, &cases);
    }
    // y + p encodings: with honest signatures of a normal key, and with small-order R.
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut decoded = 0;
    for y in 0..19 {
        for sign in [false, true] {
            let key = non_canonical_y(y, sign);
            decoded += usize::from(CompressedEdwardsY(key).decompress().is_some());
            let mut cases = Vec::new();
            for (index, (_, big_r)) in small_r.iter().take(3).enumerate() {
                let message = message(&mut rng, index);
                let signature = signer.sign(&message).to_bytes().to_vec();
                cases.push(("another key's signature".into(), message.clone(), signature));
                let signature = [&big_r[..], &[0u8; 32][..]].concat();
                cases.push(("small-order R, S = 0".into(), message, signature));
            }
            checker.check(&format!("y = {y} + p, sign {sign}"), &key, &cases);
        }
    }
    assert!(decoded > 4, "too few y + p encodings decode: {decoded}");
    let (strict, ungated) = (checker.strict_differs, checker.ungated_differs);
    let extra = format!(
        "; verify_strict would differ on {strict}, verify without the key check on {ungated}"
    );
    tally.finish(&extra, 8 * messages * 20, messages);
    // The choice of reference call matters on these inputs: both alternatives differ.
    assert!(strict > 0, "no case where verify_strict differs");
    assert!(
        ungated > 0,
        "no case where the small-order key check matters"
    );
}

// ----- the same cases as JWS tokens, for a real Envoy -----

/// The cases above as JWS tokens, for `tests/test_host_crypto_differential.py`:
/// it runs every one through Envoy with `signatureVerification: host` (Envoy's
/// BoringSSL) and `module`, and both must give the verdict written here. Each
/// case's verdict is the reference crate's (with the JOSE rules above), checked
/// here against our code on the token's own signing input, as every test above
/// does on random messages.
///
/// `CRYPTO_CASES_OUT=<file>` writes them as JSON: the key set (every key, the
/// unusable ones too, which the filter skips as it loads the set), the issuer,
/// and per case a name, the token and whether it verifies.
#[cfg(not(target_family = "wasm"))]
mod jws_cases {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::{json, Value};

    pub const ISSUER: &str = "https://crypto-cases.test";
    /// 2100-01-01: the tokens outlive any test run.
    const EXPIRES: u64 = 4_102_444_800;
    /// Random bit flips per signature (the fixed ones are always there).
    const FLIPS: usize = 3;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `header.payload`, the message a JWS signature covers.
    fn signing_input(alg: &str, kid: &str, sub: &str) -> String {
        let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let payload = json!({"iss": ISSUER, "sub": sub, "exp": EXPIRES});
        format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        )
    }

    struct Corpus {
        keys: Vec<Value>,
        cases: Vec<Value>,
        tally: Tally,
    }

    impl Corpus {
        /// One token: `signature` over `message` (a signing input), whose verdict
        /// is `reference`; ours must agree.
        fn case(
            &mut self,
            name: String,
            message: &str,
            signature: &[u8],
            ours: bool,
            reference: bool,
        ) {
            self.tally.compare(ours, reference, || name.clone());
            self.cases.push(json!({
                "name": name,
                "token": format!("{message}.{}", b64(signature)),
                "verifies": reference,
            }));
        }
    }

    fn rsa_algorithm_name(algorithm: RsaAlgorithm) -> &'static str {
        match algorithm {
            RsaAlgorithm::Rs256 => "RS256",
            RsaAlgorithm::Rs384 => "RS384",
            RsaAlgorithm::Rs512 => "RS512",
            RsaAlgorithm::Ps256 => "PS256",
            RsaAlgorithm::Ps384 => "PS384",
            RsaAlgorithm::Ps512 => "PS512",
        }
    }

    /// Every RSA key and algorithm: a valid token, its signature's byte and value
    /// mutations, the payload changed, the signature presented as every other
    /// algorithm, and the crafted encodings (exact, near misses, the e = 3 forgery).
    fn rsa(corpus: &mut Corpus, rng: &mut ChaCha20Rng) {
        for fixture in &rsa_fixtures() {
            let kid = format!("rsa-{}-e{}", fixture.spec.bits, fixture.spec.e);
            corpus.keys.push(json!({
                "kty": "RSA", "kid": kid,
                "n": b64(&fixture.public.n().to_bytes_be()),
                "e": b64(&fixture.public.e().to_bytes_be()),
            }));
            let n = fixture.n();
            let len = fixture.len();
            for algorithm in RsaAlgorithm::ALL {
                let alg = rsa_algorithm_name(algorithm);
                let label = format!("{} {alg}", fixture.label());
                let message = signing_input(alg, &kid, "rsa");
                let signature = algorithm.sign(&fixture.private, message.as_bytes(), None, rng);
                let s = big(&signature);
                let mut cases = byte_mutations(&signature, rng, FLIPS);
                cases.extend(rsa_value_mutations(n, &s, len));
                for (what, mutated) in cases {
                    let ours = algorithm.ours(fixture, message.as_bytes(), &mutated);
                    let reference = algorithm.reference(fixture, message.as_bytes(), &mutated);
                    corpus.case(
                        format!("{label} {what}"),
                        &message,
                        &mutated,
                        ours,
                        reference,
                    );
                }
                let altered = signing_input(alg, &kid, "mallory");
                let ours = algorithm.ours(fixture, altered.as_bytes(), &signature);
                let reference = algorithm.reference(fixture, altered.as_bytes(), &signature);
                corpus.case(
                    format!("{label} payload altered"),
                    &altered,
                    &signature,
                    ours,
                    reference,
                );
                for other in RsaAlgorithm::ALL.into_iter().filter(|&a| a != algorithm) {
                    let as_other = signing_input(rsa_algorithm_name(other), &kid, "rsa");
                    let ours = other.ours(fixture, as_other.as_bytes(), &signature);
                    let reference = other.reference(fixture, as_other.as_bytes(), &signature);
                    let name = format!("{label} signature presented as {other:?}");
                    corpus.case(name, &as_other, &signature, ours, reference);
                }
                rsa_crafted(corpus, fixture, algorithm, &kid, &label);
            }
        }
    }

    /// Encoded messages written by hand and signed with the raw private operation,
    /// as in `rsa_crafted_encodings_agree`.
    fn rsa_crafted(
        corpus: &mut Corpus,
        fixture: &RsaFixture,
        algorithm: RsaAlgorithm,
        kid: &str,
        label: &str,
    ) {
        if algorithm.is_pss() {
            return; // the host never sees PS*; the random cases above cover it
        }
        let len = fixture.len();
        let hash = algorithm.hash();
        let message = signing_input(rsa_algorithm_name(algorithm), kid, "crafted");
        let digest = algorithm.digest(message.as_bytes());
        let t = [digest_info_prefix(hash, true), digest.clone()].concat();
        let other_hash = if hash == Hash::Sha256 {
            Hash::Sha512
        } else {
            Hash::Sha256
        };
        let mut zero_inside = pkcs1_block(1, &t, &[], len);
        zero_inside[5] = 0;
        let mut signatures = Vec::new();
        for (what, block) in [
            ("exact encoding", pkcs1_block(1, &t, &[], len)),
            (
                "DigestInfo without NULL",
                pkcs1_block(
                    1,
                    &[digest_info_prefix(hash, false), digest.clone()].concat(),
                    &[],
                    len,
                ),
            ),
            (
                "another hash's DigestInfo",
                pkcs1_block(
                    1,
                    &[digest_info_prefix(other_hash, true), digest.clone()].concat(),
                    &[],
                    len,
                ),
            ),
            ("block type 2", pkcs1_block(2, &t, &[], len)),
            (
                "garbage after the hash",
                pkcs1_block(1, &t, &[0x5a; 16], len),
            ),
            ("zero byte inside the padding", zero_inside),
            ("digest alone", pkcs1_block(1, &digest, &[], len)),
        ] {
            let representative = big(&block);
            if representative < *fixture.n() {
                signatures.push((what.to_string(), fixture.sign_raw(&representative)));
            }
        }
        if let Some(forged) = cube_root_forgery(fixture, &t) {
            signatures.push(("e = 3 cube-root forgery".into(), forged));
        }
        for (what, signature) in signatures {
            let ours = algorithm.ours(fixture, message.as_bytes(), &signature);
            let reference = algorithm.reference(fixture, message.as_bytes(), &signature);
            corpus.case(
                format!("{label} crafted: {what}"),
                &message,
                &signature,
                ours,
                reference,
            );
        }
    }

    fn ec_jwk<C: EcCurve>(kid: &str, x: &[u8], y: &[u8]) -> Value {
        json!({"kty": "EC", "crv": C::NAME, "kid": kid, "x": b64(x), "y": b64(y)})
    }

    /// ECDSA on one curve: keys d = 1, d = n - 1 and random ones, each with a valid
    /// token and its byte and r/s mutations (0, 1, n - 1, n, n + 1, p, 2^bits - 1,
    /// high S, swapped, DER), the payload changed, the key negated; then keys that
    /// are not usable or not the signer's (small x, x + p, off the curve, wrong
    /// lengths) with a valid signature of another key.
    fn ecdsa<C: EcCurve>(corpus: &mut Corpus, rng: &mut ChaCha20Rng, alg: &str) {
        let bytes = C::BYTES;
        let n = big_hex(C::ORDER);
        let p = big_hex(C::PRIME);
        let mut scalars = vec![
            be_bytes(&BigUint::from(1u8), bytes).unwrap(),
            be_bytes(&(&n - 1u8), bytes).unwrap(),
        ];
        scalars.extend((0..3).map(|_| random_bytes(rng, bytes)));
        let verdict = |key: &EcKey<C>, message: &str, signature: &[u8]| {
            let ours = key
                .ours
                .as_ref()
                .is_some_and(|ours| C::our_verify(ours, message.as_bytes(), signature));
            let reference = key.reference.as_ref().is_some_and(|reference| {
                C::reference_verify(reference, message.as_bytes(), signature)
            });
            (ours, reference)
        };
        let mut some_signature = None;
        for (index, scalar) in scalars.iter().enumerate() {
            let signer = C::signer(scalar).unwrap();
            let (x, y) = C::coordinates(&signer);
            let kid = format!("{}-{index}", C::NAME);
            let key = EcKey::<C>::new(kid.clone(), x.clone(), y.clone());
            corpus.keys.push(ec_jwk::<C>(&kid, &x, &y));
            let message = signing_input(alg, &kid, "ec");
            let signature = C::sign(&signer, message.as_bytes());
            for (what, mutated) in byte_mutations(&signature, rng, FLIPS)
                .into_iter()
                .chain(ecdsa_mutations::<C>(&signature))
            {
                let (ours, reference) = verdict(&key, &message, &mutated);
                corpus.case(
                    format!("{alg} key {kid} {what}"),
                    &message,
                    &mutated,
                    ours,
                    reference,
                );
            }
            let altered = signing_input(alg, &kid, "mallory");
            let (ours, reference) = verdict(&key, &altered, &signature);
            corpus.case(
                format!("{alg} key {kid} payload altered"),
                &altered,
                &signature,
                ours,
                reference,
            );
            // The same x with p - y: the negated point verifies nothing of d's.
            let negated_kid = format!("{kid}-negated");
            let negated_y = be_bytes(&(&p - big(&y)), bytes).unwrap();
            let negated = EcKey::<C>::new(negated_kid.clone(), x.clone(), negated_y.clone());
            corpus.keys.push(ec_jwk::<C>(&negated_kid, &x, &negated_y));
            let as_negated = signing_input(alg, &negated_kid, "ec");
            let resigned = C::sign(&signer, as_negated.as_bytes());
            let (ours, reference) = verdict(&negated, &as_negated, &resigned);
            corpus.case(
                format!("{alg} key {negated_kid} d's signature"),
                &as_negated,
                &resigned,
                ours,
                reference,
            );
            some_signature.get_or_insert((signer, kid));
        }
        let (signer, signer_kid) = some_signature.unwrap();
        let (x0, y0) =
            C::coordinates(&C::signer(&be_bytes(&BigUint::from(7u8), bytes).unwrap()).unwrap());
        let p_bytes = be_bytes(&p, bytes).unwrap();
        let mut y_flipped = y0.clone();
        y_flipped[bytes - 1] ^= 1;
        let mut raw_keys: Vec<(String, Vec<u8>, Vec<u8>)> = vec![
            ("7G with y's low bit flipped".into(), x0.clone(), y_flipped),
            ("x = p".into(), p_bytes.clone(), y0.clone()),
            ("y = p".into(), x0.clone(), p_bytes),
            ("all zero".into(), vec![0; bytes], vec![0; bytes]),
            ("x short by a byte".into(), x0[1..].to_vec(), y0.clone()),
            (
                "x with a zero byte prepended".into(),
                [&[0][..], &x0].concat(),
                y0.clone(),
            ),
            (
                "random".into(),
                random_bytes(rng, bytes),
                random_bytes(rng, bytes),
            ),
        ];
        for small_x in 0..24 {
            if let Some((x, y)) = small_x_point::<C>(small_x) {
                let y = be_bytes(&y, bytes).unwrap();
                raw_keys.push((
                    format!("x = {small_x}"),
                    be_bytes(&x, bytes).unwrap(),
                    y.clone(),
                ));
                raw_keys.push((
                    format!("x = {small_x} + p"),
                    be_bytes(&(&x + &p), bytes).unwrap(),
                    y,
                ));
                break;
            }
        }
        for (index, (what, x, y)) in raw_keys.into_iter().enumerate() {
            let kid = format!("{}-raw-{index}", C::NAME);
            let key = EcKey::<C>::new(kid.clone(), x.clone(), y.clone());
            corpus.keys.push(ec_jwk::<C>(&kid, &x, &y));
            let message = signing_input(alg, &kid, "ec");
            let signature = C::sign(&signer, message.as_bytes());
            for (mutation, mutated) in std::iter::once(("valid".to_string(), signature.clone()))
                .chain(ecdsa_mutations::<C>(&signature).into_iter().take(4))
            {
                let (ours, reference) = verdict(&key, &message, &mutated);
                let name =
                    format!("{alg} key {kid} ({what}) with {signer_kid}'s signature, {mutation}");
                corpus.case(name, &message, &mutated, ours, reference);
            }
        }
    }

    /// Ed25519 (never the host's): a valid token of each key and its mutations.
    fn ed25519(corpus: &mut Corpus, rng: &mut ChaCha20Rng) {
        for index in 0..2 {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let signer = ed25519_dalek::SigningKey::from_bytes(&seed);
            let public = signer.verifying_key().to_bytes();
            let kid = format!("ed25519-{index}");
            corpus
                .keys
                .push(json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&public)}));
            let ours_key = OurEd25519Key::from_bytes(&public).unwrap();
            let message = signing_input("EdDSA", &kid, "ed");
            let signature = signer.sign(message.as_bytes()).to_bytes();
            for (what, mutated) in byte_mutations(&signature, rng, FLIPS)
                .into_iter()
                .chain(ed25519_mutations(&signature))
            {
                let ours = ours_key.verify(message.as_bytes(), &mutated);
                let reference = reference_ed25519(&public, message.as_bytes(), &mutated);
                corpus.case(
                    format!("EdDSA key {kid} {what}"),
                    &message,
                    &mutated,
                    ours,
                    reference,
                );
            }
        }
    }

    /// Tokens whose header names another family than the key's.
    fn crossed(corpus: &mut Corpus) {
        let taken: Vec<(String, String)> = corpus
            .cases
            .iter()
            .filter(|case| case["verifies"] == true)
            .filter_map(|case| case["token"].as_str())
            .filter_map(|token| token.rsplit_once('.'))
            .map(|(message, signature)| (message.to_string(), signature.to_string()))
            .collect();
        let kids = ["rsa-2048-e65537", "P-256-0", "P-384-0", "ed25519-0"];
        let algs = ["RS256", "ES256", "ES384", "EdDSA"];
        for (kid, alg) in kids
            .iter()
            .flat_map(|kid| algs.iter().map(move |alg| (kid, alg)))
        {
            let family = |name: &str| {
                name.split('-')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            };
            let matches = matches!(
                (family(kid).as_str(), *alg),
                ("rsa", "RS256") | ("p", "ES256" | "ES384") | ("ed25519", "EdDSA")
            );
            if matches {
                continue;
            }
            // A valid signature of some other token, under this header.
            let Some((_, signature)) = taken.iter().find(|(message, _)| {
                let header = message.split('.').next().unwrap_or_default();
                let header = URL_SAFE_NO_PAD.decode(header).unwrap_or_default();
                String::from_utf8_lossy(&header).contains(&format!("\"alg\":\"{alg}\""))
            }) else {
                continue;
            };
            let message = signing_input(alg, kid, "crossed");
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            corpus.case(
                format!("{alg} token naming key {kid}"),
                &message,
                &signature,
                false,
                false,
            );
        }
    }

    #[test]
    fn written_for_envoy() {
        let mut rng = rng(0x6a77_7331);
        let mut corpus = Corpus {
            keys: Vec::new(),
            cases: Vec::new(),
            tally: Tally::new("JWS cases for Envoy"),
        };
        rsa(&mut corpus, &mut rng);
        ecdsa::<P256>(&mut corpus, &mut rng, "ES256");
        ecdsa::<P384>(&mut corpus, &mut rng, "ES384");
        ed25519(&mut corpus, &mut rng);
        crossed(&mut corpus);
        let Corpus { keys, cases, tally } = corpus;
        let accepted = cases.iter().filter(|case| case["verifies"] == true).count();
        tally.finish("", 1500, 60);
        report(&format!(
            "{} tokens, {accepted} of them valid, {} keys",
            cases.len(),
            keys.len()
        ));
        if let Some(path) = std::env::var_os("CRYPTO_CASES_OUT") {
            let document = json!({"issuer": ISSUER, "jwks": {"keys": keys}, "cases": cases});
            std::fs::write(path, document.to_string()).unwrap();
        }
    }
}
