//! Our signature code (`oidc_filter::crypto`) against reference crates on fuzzed
//! inputs: the differential test of `filter/tests/crypto_differential.rs` with the
//! fuzzer choosing the algorithm, a fixed key (or raw public key bytes for ES* and
//! EdDSA), the message, and the signature: the harness's valid signature of the
//! message changed by a list of edits, raw bytes, or (RSA) an encoded message the
//! harness signs with the raw private operation, so that the padding checks see
//! encodings no signer makes.
//!
//! The references and the JOSE rules added to them are those of the test (see its
//! `reference_*` comments): RS* `rsa::pkcs1v15::VerifyingKey`, PS*
//! `rsa::pss::VerifyingKey` plus RFC 8017 8.1.2 step 2c, RSA keys of at least 2048
//! bits; ES256/ES384 `p256`/`p384` with full-length coordinates; EdDSA
//! ed25519-dalek's `verify` on keys that are not of small order. The harness
//! panics when our verdict differs.
#![no_main]

use arbitrary::Arbitrary;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer as _, Verifier as _};
use libfuzzer_sys::fuzz_target;
use oidc_filter::crypto::ec::{P256Key, P384Key};
use oidc_filter::crypto::ed25519::VerifyingKey as OurEd25519Key;
use oidc_filter::crypto::rsa::{verify_pkcs1v15, verify_pss, Hash, RsaPublicKey as OurRsaKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rsa::hazmat::rsa_decrypt;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

#[derive(Arbitrary, Debug)]
struct Input {
    algorithm: Algorithm,
    /// Which fixed key (modulo the number of keys for the algorithm).
    key: u8,
    message: Vec<u8>,
    signature: SignatureInput,
    /// ES*: x || y (split in the middle); EdDSA: the key's bytes. Verifies with
    /// these instead of the fixed key (which still makes the signature).
    raw_key: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
enum SignatureInput {
    /// The fixed key's signature of the message, with each edit applied in turn.
    Edited(Vec<Edit>),
    Raw(Vec<u8>),
    /// RSA only: an encoded message signed with the raw private operation.
    Encoded(Encoding),
}

#[derive(Arbitrary, Debug)]
enum Edit {
    FlipBit(u16),
    SetByte(u16, u8),
    Truncate(u16),
    Append(Vec<u8>),
    Prepend(Vec<u8>),
    /// ECDSA: r (first) or s (second); Ed25519: R or S; RSA: the whole signature.
    Special(Half, Special),
    SwapHalves,
    /// ECDSA: s → n - s (high S); Ed25519: S → L - S; RSA: s → n - s.
    NegateSecond,
    /// ECDSA: s + n; Ed25519: S + L; RSA: s + n (when it still fits).
    AddOrder,
    /// Ed25519: R plus a torsion point.
    TorsionOnFirst(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Half {
    First,
    Second,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Special {
    Zero,
    One,
    OrderMinusOne,
    Order,
    OrderPlusOne,
    /// ECDSA: p; Ed25519 R: a small-order or non-canonical encoding; RSA: s + n.
    Other(u8),
    AllOnes,
}

/// An RSA encoded message (EM) for the raw private operation.
#[derive(Arbitrary, Debug)]
enum Encoding {
    /// `00 BT FF…FF 00 DigestInfo H garbage`, the FF run lengthened or shortened.
    Pkcs1 {
        block_type: u8,
        padding_delta: i8,
        with_null: bool,
        other_hash: bool,
        garbage: Vec<u8>,
        flips: Vec<u16>,
    },
    /// A PSS encoding (salt of the hash's length or another), bits flipped, and
    /// 2^(modBits - 1) added (the top bit EM may not use, or the byte above emLen).
    Pss {
        salt_len: Option<u8>,
        flips: Vec<u16>,
        top: bool,
    },
    /// Any representative (left-padded or cut to the modulus length).
    Raw(Vec<u8>),
}

// ----- fixed keys -----

/// RSA keys of `filter/tests/crypto_differential.rs` (primes from seeded
/// `RsaPrivateKey::new_with_exp`), without its 4096-bit one: (bits, e, p, q).
const RSA_KEYS: [(usize, u32, &str, &str); 5] = [
    (
        2047,
        65537,
        concat!(
            "76f4ea51155a42ffe0f4b0e0d41b97606bb0471da1622fa307226e801a9c5b12",
            "db0388d2165db6083920c3bafda22a012781313059aae6250074beb00cfe3fe8",
            "41e73c171e9a807307718b57d1331c1c8a405688d8067a270d1c02bc1dac0b3b",
            "2fc444f0e9b39d2ec938179f89c5cd4e89345652652dba289a4f657b7a20fd01",
        ),
        concat!(
            "ed8944f1a82cba6a2d636ac40a4912046fcbc9a9fe2e3c1848f413bfbda9144b",
            "528f1821b773046a3369aed995bae6dda5860d646da06295603d3e7f9b79f623",
            "942db796d6b7709288a631bf6f6d1aae043e65ffc728602ef3af74043f7ddf7a",
            "84acaaba01d600965c8b40707c803147922f5dd9d3342940bd7539b76b8a9281",
        ),
    ),
    (
        2048,
        65537,
        concat!(
            "deb95d60378f039834dc63f552831a734f5ac5dc582c9eaf3d6a751ccf0a9f37",
            "594de8745ca35f26feab3c5c987b35fcb64dfb29abc2fac1d3e488ad09c5202e",
            "e93599add8966b790d3446631195f9caf1feae7e1f0a6aba5143c2a789f549ef",
            "6c4013cb23b4be42f1197c13449c5c4e9b284d086b62556ef708e2f89ad35a4f",
        ),
        concat!(
            "fe71fbcec4766673bf0c6b16678cf606b1e56ad8b912c4bc4838986a5fc18313",
            "547ac6970089f3ce5554f089c49fe67188813238637da6e41adc70a3c096ea0a",
            "8b96e8d212cd538262c04fcebdff42391263c370644922b3fb0e9b180630f6a7",
            "beede80cdcc25501b40eaa0b685cffdd013b666e167130bd374937a0c4cecfa1",
        ),
    ),
    (
        2049,
        65537,
        concat!(
            "fe84bd6c05f47835040e243046dd4999e0dff5da42f368533f25f1495120859f",
            "f7a71a5aca05cf9adf28e42a4deac0807caf25c5fcc8e8ff0754e8d7dcbab877",
            "014fc6d96150e1a7dd3a909fdea4c6b21db71e8a24f6d579adc1e6b1392d13cf",
            "4613dfceb8e17e2af6f2f59350211c212f9b731240ad1d921eae7b37643621c9",
        ),
        concat!(
            "01e36aec2574e5fe177b500229db57a15f2268c34a891fdb7ea8b4d1daed4f23",
            "afead56b24538a4d65b2ada949849d9679cc2e640145be6811620f92a6b215a1",
            "700cb262841c05becedbb7f1cec656ca7be3e1bdfd20943e219c3be99c59aedb",
            "da0cb2250024141063a9666273504d880e506a86d6f5b98943f73ec383650aab",
            "57",
        ),
    ),
    (
        3071,
        65537,
        concat!(
            "74e6777d4abf0089cd3a0675a750001c686fc0e10e9aac3ec688ecd71cfab2f2",
            "d4fd507d3a70fd00ae8bb2ce59e07ea85bec8ad63067ff686743f6257bd92a71",
            "587b010f65a4e6f0dfaef0f79a60683dffad3f89441483411a979e0968057c0c",
            "d439dcea3469697b1e5b3155e9e14ac400c7a62d0c82779d09d99927b51084fd",
            "d57bd4a1f15186705b787dcae16d3ec529faaa249fc4cf656cd84986ccfbc2dc",
            "c4e26c958eb9db2a2f7aa62cd9416b668c6eb27f1aec78f9593a4a3e3b6ab457",
        ),
        concat!(
            "f911d6b4b8338eb7c2edce6d4306e742e16549f37e03a9c9e91f86afbe9d1ae2",
            "b0c3cb07ebca9aed648d40ffd2a30cc58d1ae8f32895ab2f89493a4826423518",
            "2f1802fd857ffd7c571623ae73a785f8491de8d582a9183f6787bd2a2fde69be",
            "bc0b3d0787f9242c5cad017b9b17709d80fcbedabc9245832046d647bdfe298e",
            "2ff07829412154549fbe8e2b35dce76f44d04b31869381a750608029cc218012",
            "7a8aea913f40fb23d79201791ba38e36a8ea5810da168545be567ec34aac7b3b",
        ),
    ),
    (
        2048,
        3,
        concat!(
            "e6b47cc752eab98a6f3c7bb3da362b5afe74176cab69ee35a708ed0179164252",
            "02524d7e80171f112e8e5d99d4ab0b71f4ac27af7ac4a619443e4c1f0b20f475",
            "06b9fb48c98c388a387d877b6673801cf84766ac5bc71f345349e49fc02a4f9c",
            "f46239ce3d32312f732c0e71558dd075ee27cc8284a19aed3dce259c9538f3a3",
        ),
        concat!(
            "d2c4b38eab3316cc944348208cae1d98a57437384e4fb1ab8be60e4c3f8eeb47",
            "498976f83c3f8e3e8eadcdc8e8cfa3f6bf109ef73b6dbafdd7dbae39808bc176",
            "ce8b349015000f371cdfd7187fc651bd96570b7f4b6c5f587280a32e313817d8",
            "597f394b6dbeff8e68ba0d556b9059415dd0d9801bfcfbf8c4af5c0311f9d7ed",
        ),
    ),
];

struct RsaFixture {
    bits: usize,
    e: usize,
    private: RsaPrivateKey,
    public: RsaPublicKey,
    ours: Option<OurRsaKey>,
}

impl RsaFixture {
    fn len(&self) -> usize {
        self.bits.div_ceil(8)
    }

    fn sign_raw(&self, representative: &BigUint) -> Option<Vec<u8>> {
        if representative >= self.public.n() {
            return None;
        }
        let signature =
            rsa_decrypt(None::<&mut ChaCha20Rng>, &self.private, representative).ok()?;
        be_bytes(&signature, self.len())
    }

    fn recover(&self, signature: &[u8]) -> BigUint {
        BigUint::from_bytes_be(signature).modpow(self.public.e(), self.public.n())
    }
}

fn rsa_fixtures() -> &'static [RsaFixture] {
    static KEYS: OnceLock<Vec<RsaFixture>> = OnceLock::new();
    KEYS.get_or_init(|| {
        RSA_KEYS
            .iter()
            .map(|&(bits, e, p, q)| {
                let p = BigUint::parse_bytes(p.as_bytes(), 16).unwrap();
                let q = BigUint::parse_bytes(q.as_bytes(), 16).unwrap();
                let private = RsaPrivateKey::from_p_q(p, q, BigUint::from(e)).unwrap();
                assert_eq!(private.n().bits(), bits);
                let public = private.to_public_key();
                let ours =
                    OurRsaKey::new(&public.n().to_bytes_be(), &public.e().to_bytes_be()).ok();
                assert_eq!(ours.is_some(), bits >= 2048);
                RsaFixture {
                    bits,
                    e: e as usize,
                    private,
                    public,
                    ours,
                }
            })
            .collect()
    })
}

const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P256_PRIME: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
const P384_ORDER: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";
const P384_PRIME: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff";
/// The Ed25519 group order L.
const L: &str = "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed";

fn big_hex(text: &str) -> BigUint {
    BigUint::parse_bytes(text.as_bytes(), 16).unwrap()
}

fn be_bytes(value: &BigUint, len: usize) -> Option<Vec<u8>> {
    let bytes = value.to_bytes_be();
    let bytes = if bytes == [0] { Vec::new() } else { bytes };
    let mut out = vec![0; len.checked_sub(bytes.len())?];
    out.extend_from_slice(&bytes);
    Some(out)
}

fn le_bytes(value: &BigUint, len: usize) -> Option<Vec<u8>> {
    let mut bytes = value.to_bytes_le();
    if bytes.len() > len {
        return None;
    }
    bytes.resize(len, 0);
    Some(bytes)
}

/// ECDSA keys: d = 1 (Q = G), d = n - 1 (Q = -G), and two others.
struct EcFixture<S, O, R> {
    signer: S,
    x: Vec<u8>,
    y: Vec<u8>,
    ours: O,
    reference: R,
}

macro_rules! ec_fixtures {
    ($fn_name:ident, $krate:ident, $ours:ty, $bytes:literal, $order:expr) => {
        fn $fn_name(
        ) -> &'static [EcFixture<$krate::ecdsa::SigningKey, $ours, $krate::ecdsa::VerifyingKey>] {
            static KEYS: OnceLock<
                Vec<EcFixture<$krate::ecdsa::SigningKey, $ours, $krate::ecdsa::VerifyingKey>>,
            > = OnceLock::new();
            KEYS.get_or_init(|| {
                let n = big_hex($order);
                [
                    BigUint::from(1u8),
                    &n - 1u8,
                    BigUint::from(0x5eedu32),
                    &n >> 1,
                ]
                .iter()
                .map(|d| {
                    let signer =
                        $krate::ecdsa::SigningKey::from_slice(&be_bytes(d, $bytes).unwrap())
                            .unwrap();
                    let reference = *signer.verifying_key();
                    let point = reference.to_sec1_point(false);
                    let bytes = point.as_bytes();
                    let (x, y) = (bytes[1..1 + $bytes].to_vec(), bytes[1 + $bytes..].to_vec());
                    let ours = <$ours>::from_coordinates(&x, &y).unwrap();
                    EcFixture {
                        signer,
                        x,
                        y,
                        ours,
                        reference,
                    }
                })
                .collect()
            })
        }
    };
}

ec_fixtures!(p256_fixtures, p256, P256Key, 32, P256_ORDER);
ec_fixtures!(p384_fixtures, p384, P384Key, 48, P384_ORDER);

/// How an Ed25519 fixed key signs.
enum EdSigner {
    Dalek(ed25519_dalek::SigningKey),
    /// A = aB + T: S = r + ka with R = rB.
    Scalar(Scalar),
    /// A small-order key: the "signature" (identity, 0).
    Forged,
}

struct EdFixture {
    public: [u8; 32],
    signer: EdSigner,
    ours: Option<OurEd25519Key>,
}

/// A dalek key, a prime-order and a mixed-order key with known scalars, a
/// small-order key, and a non-canonical (y + p) encoding of a point.
fn ed_fixtures() -> &'static [EdFixture] {
    static KEYS: OnceLock<Vec<EdFixture>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dalek = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);
        let a = Scalar::from_bytes_mod_order([0x35; 32]);
        let prime = EdwardsPoint::mul_base(&a);
        let non_canonical = (2..19)
            .map(|y| {
                let mut bytes = [0xff; 32];
                bytes[0] = 0xed + y;
                bytes[31] = 0x7f;
                bytes
            })
            .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_some())
            .unwrap();
        let keys = [
            (dalek.verifying_key().to_bytes(), EdSigner::Dalek(dalek)),
            (prime.compress().to_bytes(), EdSigner::Scalar(a)),
            (
                (prime + EIGHT_TORSION[1]).compress().to_bytes(),
                EdSigner::Scalar(a),
            ),
            (EIGHT_TORSION[3].compress().to_bytes(), EdSigner::Forged),
            (non_canonical, EdSigner::Forged),
        ];
        keys.into_iter()
            .map(|(public, signer)| EdFixture {
                ours: OurEd25519Key::from_bytes(&public),
                public,
                signer,
            })
            .collect()
    })
}

// ----- signing -----

/// A deterministic RNG per input (PSS salts), so a crash replays.
fn rng_for(message: &[u8]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(Sha256::digest(message).into())
}

fn hash_of(algorithm: Algorithm) -> Hash {
    match algorithm {
        Algorithm::Rs384 | Algorithm::Ps384 => Hash::Sha384,
        Algorithm::Rs512 | Algorithm::Ps512 => Hash::Sha512,
        _ => Hash::Sha256,
    }
}

fn digest(hash: Hash, message: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha256 => Sha256::digest(message).to_vec(),
        Hash::Sha384 => Sha384::digest(message).to_vec(),
        Hash::Sha512 => Sha512::digest(message).to_vec(),
    }
}

fn is_pss(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512
    )
}

/// Signatures already made, by key, algorithm, salt length and message: RSA
/// private operations (instrumented like everything else) dominate a run, and the
/// fuzzer keeps coming back to the messages of its corpus. Signing is deterministic
/// (PSS salts come from [`rng_for`]), so a cached signature is the one a fresh
/// run makes.
type SignatureCache = HashMap<((usize, usize), Algorithm, Option<usize>, Vec<u8>), Option<Vec<u8>>>;

fn rsa_sign(
    fixture: &RsaFixture,
    algorithm: Algorithm,
    message: &[u8],
    salt_len: Option<usize>,
) -> Option<Vec<u8>> {
    static CACHE: OnceLock<Mutex<SignatureCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (
        (fixture.bits, fixture.e),
        algorithm,
        salt_len,
        message.to_vec(),
    );
    if let Some(signature) = cache.lock().unwrap().get(&key) {
        return signature.clone();
    }
    let signature = rsa_sign_uncached(fixture, algorithm, message, salt_len);
    let mut cache = cache.lock().unwrap();
    if cache.len() >= 4096 {
        cache.clear();
    }
    cache.insert(key, signature.clone());
    signature
}

fn rsa_sign_uncached(
    fixture: &RsaFixture,
    algorithm: Algorithm,
    message: &[u8],
    salt_len: Option<usize>,
) -> Option<Vec<u8>> {
    let hash = hash_of(algorithm);
    let hashed = digest(hash, message);
    let salt = salt_len.unwrap_or(hashed.len());
    let mut rng = rng_for(message);
    let key = &fixture.private;
    match (is_pss(algorithm), hash) {
        (false, Hash::Sha256) => key.sign(Pkcs1v15Sign::new::<Sha256>(), &hashed),
        (false, Hash::Sha384) => key.sign(Pkcs1v15Sign::new::<Sha384>(), &hashed),
        (false, Hash::Sha512) => key.sign(Pkcs1v15Sign::new::<Sha512>(), &hashed),
        (true, Hash::Sha256) => {
            key.sign_with_rng(&mut rng, Pss::new_with_salt::<Sha256>(salt), &hashed)
        }
        (true, Hash::Sha384) => {
            key.sign_with_rng(&mut rng, Pss::new_with_salt::<Sha384>(salt), &hashed)
        }
        (true, Hash::Sha512) => {
            key.sign_with_rng(&mut rng, Pss::new_with_salt::<Sha512>(salt), &hashed)
        }
    }
    .ok()
}

fn digest_info_prefix(hash: Hash, with_null: bool) -> Vec<u8> {
    let (id, len) = match hash {
        Hash::Sha256 => (1, 32),
        Hash::Sha384 => (2, 48),
        Hash::Sha512 => (3, 64),
    };
    let mut algorithm = vec![
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, id,
    ];
    if with_null {
        algorithm.extend_from_slice(&[0x05, 0x00]);
    }
    let mut out = vec![
        0x30,
        (algorithm.len() + 4 + len) as u8,
        0x30,
        algorithm.len() as u8,
    ];
    out.extend_from_slice(&algorithm);
    out.extend_from_slice(&[0x04, len as u8]);
    out
}

fn flip_bits(bytes: &mut [u8], flips: &[u16]) {
    let bits = 8 * bytes.len();
    if bits == 0 {
        return;
    }
    for &flip in flips {
        let bit = usize::from(flip) % bits;
        bytes[bit / 8] ^= 0x80 >> (bit % 8);
    }
}

/// The signature of an encoded message, or `None` when it is not below n.
fn rsa_encoded(
    fixture: &RsaFixture,
    algorithm: Algorithm,
    message: &[u8],
    encoding: &Encoding,
) -> Option<Vec<u8>> {
    let len = fixture.len();
    let hash = hash_of(algorithm);
    let block = match encoding {
        Encoding::Pkcs1 {
            block_type,
            padding_delta,
            with_null,
            other_hash,
            garbage,
            flips,
        } => {
            let prefix_hash = if *other_hash { Hash::Sha512 } else { hash };
            let t = [
                digest_info_prefix(prefix_hash, *with_null),
                digest(hash, message),
            ]
            .concat();
            let garbage = &garbage[..garbage.len().min(len / 2)];
            let padding = (len.checked_sub(3 + t.len() + garbage.len())? as isize
                + isize::from(*padding_delta))
            .max(0) as usize;
            let mut block = vec![0x00, *block_type];
            block.extend(std::iter::repeat_n(0xff, padding));
            block.push(0x00);
            block.extend_from_slice(&t);
            block.extend_from_slice(garbage);
            // Keep the last `len` bytes, or pad on the left.
            let mut block = if block.len() > len {
                block[block.len() - len..].to_vec()
            } else {
                [vec![0; len - block.len()], block].concat()
            };
            flip_bits(&mut block, flips);
            block
        }
        Encoding::Pss {
            salt_len,
            flips,
            top,
        } => {
            // `None` when the salt does not fit the key.
            let valid = rsa_sign(fixture, algorithm, message, salt_len.map(usize::from))?;
            let mut em = fixture.recover(&valid);
            if *top {
                em += BigUint::from(1u8) << (fixture.bits - 1);
            }
            let mut block = be_bytes(&em, len)?;
            flip_bits(&mut block, flips);
            block
        }
        Encoding::Raw(bytes) => {
            let bytes = &bytes[bytes.len().saturating_sub(len)..];
            [vec![0; len - bytes.len()], bytes.to_vec()].concat()
        }
    };
    fixture.sign_raw(&BigUint::from_bytes_be(&block))
}

// ----- verdicts -----

fn rsa_ours(fixture: &RsaFixture, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    let Some(key) = &fixture.ours else {
        return false;
    };
    if is_pss(algorithm) {
        verify_pss(key, hash_of(algorithm), message, signature)
    } else {
        verify_pkcs1v15(key, hash_of(algorithm), message, signature)
    }
}

fn rsa_reference(
    fixture: &RsaFixture,
    algorithm: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let key = &fixture.public;
    macro_rules! verify {
        ($module:ident, $digest:ty) => {
            rsa::$module::Signature::try_from(signature).is_ok_and(|signature| {
                rsa::$module::VerifyingKey::<$digest>::new(key.clone())
                    .verify(message, &signature)
                    .is_ok()
            })
        };
    }
    let crate_verdict = match (is_pss(algorithm), hash_of(algorithm)) {
        (false, Hash::Sha256) => verify!(pkcs1v15, Sha256),
        (false, Hash::Sha384) => verify!(pkcs1v15, Sha384),
        (false, Hash::Sha512) => verify!(pkcs1v15, Sha512),
        (true, Hash::Sha256) => verify!(pss, Sha256),
        (true, Hash::Sha384) => verify!(pss, Sha384),
        (true, Hash::Sha512) => verify!(pss, Sha512),
    };
    // RFC 7518 3.3: at least 2048 bits. RFC 8017 8.1.2 step 2c: the PSS
    // representative fits in emLen bytes (rsa 0.9.10 drops the extra top byte
    // unchecked when modBits ≡ 1 mod 8).
    let em_len = (fixture.bits - 1).div_ceil(8);
    let fits = !is_pss(algorithm)
        || em_len == fixture.len()
        || !crate_verdict
        || fixture.recover(signature).bits() <= 8 * em_len;
    fixture.bits >= 2048 && crate_verdict && fits
}

fn ed25519_reference(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
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

// ----- edits -----

/// What `Special`, `NegateSecond` and `AddOrder` mean for an algorithm.
struct Shape {
    /// Bytes of each half (ECDSA r and s, Ed25519 R and S); 0 for RSA (one number).
    half: usize,
    little_endian: bool,
    order: BigUint,
    other: Vec<BigUint>,
}

fn special_value(shape: &Shape, special: Special, current: &BigUint) -> Option<BigUint> {
    let bytes = if shape.half == 0 { 1024 } else { shape.half };
    Some(match special {
        Special::Zero => BigUint::from(0u8),
        Special::One => BigUint::from(1u8),
        Special::OrderMinusOne => &shape.order - 1u8,
        Special::Order => shape.order.clone(),
        Special::OrderPlusOne => &shape.order + 1u8,
        Special::Other(index) => {
            if shape.other.is_empty() {
                current + &shape.order
            } else {
                shape.other[usize::from(index) % shape.other.len()].clone()
            }
        }
        Special::AllOnes => (BigUint::from(1u8) << (8 * bytes)) - 1u8,
    })
}

fn encode(shape: &Shape, value: &BigUint, len: usize) -> Option<Vec<u8>> {
    if shape.little_endian {
        le_bytes(value, len)
    } else {
        be_bytes(value, len)
    }
}

fn decode(shape: &Shape, bytes: &[u8]) -> BigUint {
    if shape.little_endian {
        BigUint::from_bytes_le(bytes)
    } else {
        BigUint::from_bytes_be(bytes)
    }
}

fn apply(shape: &Shape, signature: &mut Vec<u8>, edit: &Edit) {
    let len = signature.len();
    // The part an edit of numbers works on: a half, or the whole RSA signature.
    // The second half (ECDSA s, Ed25519 S), or the whole RSA signature.
    let (start, part_len) = match shape.half {
        0 => (0, len),
        half_len => (half_len, half_len),
    };
    let fits = |start: usize, part: usize| start + part <= len;
    match edit {
        Edit::FlipBit(bit) if len > 0 => {
            let bit = usize::from(*bit) % (8 * len);
            signature[bit / 8] ^= 0x80 >> (bit % 8);
        }
        Edit::SetByte(index, value) if len > 0 => signature[usize::from(*index) % len] = *value,
        Edit::Truncate(keep) => signature.truncate(usize::from(*keep) % (len + 1)),
        Edit::Append(bytes) => signature.extend_from_slice(&bytes[..bytes.len().min(64)]),
        Edit::Prepend(bytes) => {
            let bytes = &bytes[..bytes.len().min(64)];
            signature.splice(0..0, bytes.iter().copied());
        }
        Edit::Special(half, special) => {
            let (start, part) = match (shape.half, half) {
                (0, _) => (0, len),
                (half_len, Half::First) => (0, half_len),
                (half_len, Half::Second) => (half_len, half_len),
            };
            if !fits(start, part) {
                return;
            }
            // Ed25519's R: small-order and non-canonical encodings.
            if shape.half == 32 && matches!(half, Half::First) {
                if let Special::Other(index) = special {
                    let encodings = ed25519_special_r();
                    let encoding = &encodings[usize::from(*index) % encodings.len()];
                    signature[..32].copy_from_slice(encoding);
                    return;
                }
            }
            let current = decode(shape, &signature[start..start + part]);
            if let Some(bytes) = special_value(shape, *special, &current)
                .and_then(|value| encode(shape, &value, part))
            {
                signature[start..start + part].copy_from_slice(&bytes);
            }
        }
        Edit::SwapHalves if shape.half > 0 && len == 2 * shape.half => {
            let (first, second) = signature.split_at_mut(shape.half);
            first.swap_with_slice(second);
        }
        Edit::NegateSecond | Edit::AddOrder if fits(start, part_len) => {
            let current = decode(shape, &signature[start..start + part_len]);
            let value = match edit {
                Edit::NegateSecond if current <= shape.order => &shape.order - &current,
                Edit::AddOrder => current + &shape.order,
                _ => return,
            };
            if let Some(bytes) = encode(shape, &value, part_len) {
                signature[start..start + part_len].copy_from_slice(&bytes);
            }
        }
        Edit::TorsionOnFirst(index) if shape.half == 32 && len >= 32 => {
            let r: [u8; 32] = signature[..32].try_into().unwrap();
            if let Some(point) = CompressedEdwardsY(r).decompress() {
                let shifted = point + EIGHT_TORSION[usize::from(*index) % 8];
                signature[..32].copy_from_slice(&shifted.compress().to_bytes());
            }
        }
        _ => {}
    }
}

/// Small-order points as encoded, canonically and not (y + p, x = 0 with the sign bit).
fn ed25519_special_r() -> &'static [[u8; 32]] {
    static ENCODINGS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let mut out: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|point| point.compress().to_bytes())
            .collect();
        for y in [0u8, 1] {
            for sign in [0u8, 0x80] {
                let mut bytes = [0xff; 32];
                bytes[0] = 0xed + y;
                bytes[31] = 0x7f | sign;
                out.push(bytes);
            }
        }
        let mut identity = [0; 32];
        identity[0] = 1;
        identity[31] = 0x80;
        out.push(identity);
        out
    })
}

fn edited(shape: &Shape, valid: Vec<u8>, input: &SignatureInput) -> Option<Vec<u8>> {
    match input {
        SignatureInput::Edited(edits) => {
            let mut signature = valid;
            for edit in edits.iter().take(16) {
                apply(shape, &mut signature, edit);
            }
            Some(signature)
        }
        SignatureInput::Raw(bytes) => Some(bytes.clone()),
        SignatureInput::Encoded(_) => None,
    }
}

fn fail(what: &str, ours: bool, reference: bool, input: &Input, signature: &[u8]) -> ! {
    panic!(
        "{what}: ours {ours}, reference {reference}; signature {}; input {input:?}",
        signature
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
}

fn check_rsa(input: &Input) {
    let fixtures = rsa_fixtures();
    let fixture = &fixtures[usize::from(input.key) % fixtures.len()];
    let message = &input.message;
    let signature = match &input.signature {
        SignatureInput::Encoded(encoding) => {
            match rsa_encoded(fixture, input.algorithm, message, encoding) {
                Some(signature) => signature,
                None => return,
            }
        }
        other => {
            let valid = rsa_sign(fixture, input.algorithm, message, None).unwrap();
            if fixture.ours.is_some() {
                assert!(rsa_ours(fixture, input.algorithm, message, &valid));
            }
            let shape = Shape {
                half: 0,
                little_endian: false,
                order: fixture.public.n().clone(),
                other: Vec::new(),
            };
            edited(&shape, valid, other).unwrap()
        }
    };
    let ours = rsa_ours(fixture, input.algorithm, message, &signature);
    let reference = rsa_reference(fixture, input.algorithm, message, &signature);
    if ours != reference {
        fail(
            &format!("RSA-{}", fixture.bits),
            ours,
            reference,
            input,
            &signature,
        );
    }
}

macro_rules! check_ecdsa {
    ($fn_name:ident, $fixtures:ident, $krate:ident, $ours:ty, $bytes:literal, $order:expr, $prime:expr) => {
        fn $fn_name(input: &Input) {
            use $krate::ecdsa::signature::{Signer as _, Verifier as _};
            let fixtures = $fixtures();
            let fixture = &fixtures[usize::from(input.key) % fixtures.len()];
            let message = &input.message;
            let valid: $krate::ecdsa::Signature = fixture.signer.sign(message);
            let valid = valid.to_bytes().to_vec();
            assert!(fixture.ours.verify(message, &valid));
            let shape = Shape {
                half: $bytes,
                little_endian: false,
                order: big_hex($order),
                other: vec![big_hex($prime)],
            };
            let Some(signature) = edited(&shape, valid, &input.signature) else {
                return;
            };
            let reference_verify = |key: &$krate::ecdsa::VerifyingKey| {
                $krate::ecdsa::Signature::from_slice(&signature)
                    .is_ok_and(|signature| key.verify(message, &signature).is_ok())
            };
            let (ours, reference) = match &input.raw_key {
                None => (
                    fixture.ours.verify(message, &signature),
                    reference_verify(&fixture.reference),
                ),
                Some(raw) => {
                    let (x, y) = raw.split_at(raw.len() / 2);
                    let ours_key = <$ours>::from_coordinates(x, y);
                    let reference_key = (x.len() == $bytes && y.len() == $bytes)
                        .then(|| [&[0x04][..], x, y].concat())
                        .and_then(|sec1| $krate::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).ok());
                    if ours_key.is_some() != reference_key.is_some() {
                        fail(
                            "EC key",
                            ours_key.is_some(),
                            reference_key.is_some(),
                            input,
                            &signature,
                        );
                    }
                    (
                        ours_key.is_some_and(|key| key.verify(message, &signature)),
                        reference_key.is_some_and(|key| reference_verify(&key)),
                    )
                }
            };
            // Keep the fixed key's coordinates in use (they name the key in a crash).
            debug_assert_eq!(fixture.x.len() + fixture.y.len(), 2 * $bytes);
            if ours != reference {
                fail(stringify!($krate), ours, reference, input, &signature);
            }
        }
    };
}

check_ecdsa!(
    check_p256,
    p256_fixtures,
    p256,
    P256Key,
    32,
    P256_ORDER,
    P256_PRIME
);
check_ecdsa!(
    check_p384,
    p384_fixtures,
    p384,
    P384Key,
    48,
    P384_ORDER,
    P384_PRIME
);

fn check_ed25519(input: &Input) {
    let fixtures = ed_fixtures();
    let fixture = &fixtures[usize::from(input.key) % fixtures.len()];
    let message = &input.message;
    let valid = match &fixture.signer {
        EdSigner::Dalek(signer) => signer.sign(message).to_bytes().to_vec(),
        EdSigner::Scalar(a) => {
            let wide: [u8; 64] = Sha512::digest([&[0x72][..], message].concat()).into();
            let r = Scalar::from_bytes_mod_order_wide(&wide);
            let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
            let k: [u8; 64] = Sha512::new()
                .chain_update(big_r)
                .chain_update(fixture.public)
                .chain_update(message)
                .finalize()
                .into();
            let s = r + Scalar::from_bytes_mod_order_wide(&k) * a;
            [&big_r[..], s.as_bytes()].concat()
        }
        EdSigner::Forged => {
            let mut identity = [0u8; 64];
            identity[0] = 1;
            identity.to_vec()
        }
    };
    let shape = Shape {
        half: 32,
        little_endian: true,
        order: big_hex(L),
        other: Vec::new(),
    };
    let Some(signature) = edited(&shape, valid, &input.signature) else {
        return;
    };
    let (ours, reference) = match &input.raw_key {
        None => (
            fixture
                .ours
                .as_ref()
                .is_some_and(|key| key.verify(message, &signature)),
            ed25519_reference(&fixture.public, message, &signature),
        ),
        Some(raw) => (
            OurEd25519Key::from_bytes(raw).is_some_and(|key| key.verify(message, &signature)),
            ed25519_reference(raw, message, &signature),
        ),
    };
    if ours != reference {
        fail("Ed25519", ours, reference, input, &signature);
    }
}

fuzz_target!(|input: Input| {
    match input.algorithm {
        Algorithm::Es256 => check_p256(&input),
        Algorithm::Es384 => check_p384(&input),
        Algorithm::EdDsa => check_ed25519(&input),
        _ => check_rsa(&input),
    }
});
