//! Ed25519 signature verification: RFC 8032 5.1.7, pure Ed25519 (no context, no
//! prehash), which is JWS `EdDSA` with an `OKP` key on `Ed25519` (RFC 8037).
//!
//! Built on the ECDSA code (`ec`): the same Montgomery arithmetic for the field
//! (p = 2^255 - 19) and the group order L, the same table shapes and signed digits.
//! A verification computes [S]B - [k]A, k = SHA-512(R || A || M) mod L, as a sum of
//! precomputed multiples: the table of the base point B is built once per VM, the
//! table of a key A on that key's first verification (JWKS keys live for days).
//! One inversion makes the sum affine, and its encoding must equal R byte for byte.
//!
//! Comparing encodings is the cofactorless equation [S]B = R + [k]A with R decoded
//! as RFC 8032 5.1.3 says: the encoding of a point is unique, so an R whose y is
//! not below p, whose x is 0 with the sign bit set, or that is no point at all never
//! equals the sum's encoding, and no decoding of R is needed. With S below L (5.1.7)
//! this is exactly what Wycheproof's `ed25519_test.json` expects of every vector.
//! A key that does not decode, or has small order (8A = 0, which would let anyone
//! sign), verifies nothing, as with the `ed25519-compact` crate this replaced.
//!
//! Variable time throughout: fine for verification, where every input (key,
//! message, signature) is public; never use this for signing or any secret.

mod point;
mod table;

use crate::crypto::ec::field::{less_than, Limbs, Modulus};
use crate::crypto::ec::table::Shape;
use point::{from_le_bytes, Curve, Encoding, Extended};
use sha2::{Digest, Sha512};
use std::fmt;
use std::sync::{Arc, OnceLock};
use table::Table;

/// R || S, 32 bytes each.
pub const SIGNATURE_BYTES: usize = 64;

/// L = 2^252 + 27742317777372353535851937790883648493, the order of B.
const L: Limbs<8> = [
    0x5cf5d3ed, 0x5812631a, 0xa2f79cd6, 0x14def9de, 0x00000000, 0x00000000, 0x00000000, 0x10000000,
];

/// Table shapes (see `ec/table.rs`) for scalars below L < 2^253. The B table has
/// stride 1 and so needs no doublings: 43 rows × 32 points × 96 bytes = 132,096
/// bytes per VM. Key tables use stride 2, halving their memory for five doublings
/// per verification: 26 rows × 16 points × 96 bytes = 39,936 bytes per key used.
const BASE_SHAPE: Shape = Shape::new(253, 6, 1);
const KEY_SHAPE: Shape = Shape::new(253, 5, 2);

/// The curve, the group order and the B table, built once per VM on first use.
#[derive(Debug)]
struct Ed25519 {
    curve: Curve,
    order: Modulus<8>,
    base_table: OnceLock<Option<Table>>,
}

fn ed25519() -> &'static Ed25519 {
    static ED25519: OnceLock<Ed25519> = OnceLock::new();
    ED25519.get_or_init(|| Ed25519 {
        curve: Curve::new(),
        order: Modulus::new(L),
        base_table: OnceLock::new(),
    })
}

impl Ed25519 {
    fn base_table(&self) -> Option<&Table> {
        self.base_table
            .get_or_init(|| Table::new(&self.curve, &self.curve.base, BASE_SHAPE))
            .as_ref()
    }

    /// k = SHA-512(R || A || M) mod L.
    fn challenge(&self, r: &[u8], key: &Encoding, message: &[u8]) -> Option<Limbs<8>> {
        let hash = Sha512::new()
            .chain_update(r)
            .chain_update(key)
            .chain_update(message)
            .finalize();
        self.reduce_wide(&hash)
    }

    /// A 64-byte little-endian number mod L. The high half h stands for h·2^256,
    /// which is h in Montgomery form (the radix is 2^256); conversion into that form
    /// takes any value below 2^256, so neither half needs reducing first.
    fn reduce_wide(&self, bytes: &[u8]) -> Option<Limbs<8>> {
        let order = &self.order;
        let (low, high) = bytes.split_at_checked(32)?;
        let high = order.to_montgomery(&from_le_bytes(high)?);
        let low = order.leave_montgomery(&order.to_montgomery(&from_le_bytes(low)?));
        Some(order.add(&high, &low))
    }

    /// [s]B - [k]A. The key table's phases come first with doublings between them;
    /// the B table has stride 1 and so is added after the last doubling.
    fn combination(&self, key_table: &Table, s: &Limbs<8>, k: &Limbs<8>) -> Option<Extended> {
        let curve = &self.curve;
        let base_table = self.base_table()?;
        let k_digits = key_table.digits(k);
        let mut sum = curve.identity();
        for phase in (0..key_table.stride()).rev() {
            if phase + 1 < key_table.stride() {
                for _ in 0..key_table.window() {
                    sum = curve.double(&sum);
                }
            }
            key_table.add_phase(curve, &mut sum, &k_digits, phase, true);
        }
        base_table.add_phase(curve, &mut sum, &base_table.digits(s), 0, false);
        Some(sum)
    }
}

/// An Ed25519 public key: its encoding, and the table of its point once a
/// verification needed it. Clones share the table.
///
/// Only keys that verify something get a table, so a full JWKS (`jwks::MAX_KEYS`,
/// 64) costs at most 2.5 MB, and in practice the one or two keys an IdP signs with.
#[derive(Clone)]
pub struct VerifyingKey {
    encoding: Encoding,
    /// `None` inside once built means the encoding is no usable point.
    table: Arc<OnceLock<Option<Table>>>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifyingKey").field(&self.encoding).finish()
    }
}

impl VerifyingKey {
    /// The key with this 32-byte encoding, or `None` for any other length. Like
    /// Envoy's jwt_verify_lib, a JWKS refuses only keys of the wrong length: bytes
    /// that are no usable point make a key that verifies nothing.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            encoding: bytes.try_into().ok()?,
            table: Arc::default(),
        })
    }

    /// Whether `signature` (R || S) is a valid Ed25519 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.try_verify(message, signature).unwrap_or(false)
    }

    fn try_verify(&self, message: &[u8], signature: &[u8]) -> Option<bool> {
        let (r, s) = signature.split_at_checked(32)?;
        let s = from_le_bytes(s)?;
        // RFC 8032 5.1.7: S + L would verify wherever S does (signature malleability).
        if !less_than(&s, &L) {
            return Some(false);
        }
        let context = ed25519();
        let key_table = self.table()?;
        let k = context.challenge(r, &self.encoding, message)?;
        let sum = context.combination(key_table, &s, &k)?;
        Some(context.curve.encode(&sum)?.as_slice() == r)
    }

    fn table(&self) -> Option<&Table> {
        self.table
            .get_or_init(|| {
                let curve = &ed25519().curve;
                let point = curve.decode(&self.encoding)?;
                if curve.has_small_order(&point) {
                    return None;
                }
                Table::new(curve, &point, KEY_SHAPE)
            })
            .as_ref()
    }

    /// Builds this key's table and the base point's table now, so that the first
    /// token it verifies does not pay for them.
    pub fn prepare(&self) {
        let _ = ed25519().base_table();
        let _ = self.table();
    }

    /// Bytes held by this key's table, once built (for tests and measurements).
    pub fn table_bytes(&self) -> Option<usize> {
        self.table.get()?.as_ref().map(Table::bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    use crate::crypto::hex;

    /// RFC 8032 7.1 TEST 1024: a 1023-byte message.
    const TEST_1024_MESSAGE: [&str; 32] = [
        "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98",
        "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8",
        "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d",
        "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc",
        "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe",
        "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e",
        "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef",
        "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7",
        "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1",
        "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2",
        "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24",
        "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270",
        "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc",
        "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07",
        "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba",
        "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a",
        "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e",
        "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7",
        "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c",
        "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8",
        "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df",
        "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08",
        "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649",
        "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4",
        "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3",
        "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e",
        "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f",
        "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5",
        "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1",
        "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d",
        "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c",
        "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0",
    ];

    struct Vector {
        name: &'static str,
        public: Vec<u8>,
        message: Vec<u8>,
        signature: Vec<u8>,
    }

    fn vector(name: &'static str, public: Vec<u8>, message: Vec<u8>, signature: Vec<u8>) -> Vector {
        Vector {
            name,
            public,
            message,
            signature,
        }
    }

    /// RFC 8032 7.1: name, public key, message, signature.
    fn rfc8032_vectors() -> Vec<Vector> {
        vec![
            vector(
                "TEST 1",
                hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
                vec![],
                hex(
                    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                     5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
                ),
            ),
            vector(
                "TEST 2",
                hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"),
                hex("72"),
                hex(
                    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                     085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
                ),
            ),
            vector(
                "TEST 3",
                hex("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025"),
                hex("af82"),
                hex(
                    "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac\
                     18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
                ),
            ),
            vector(
                "TEST 1024",
                hex("278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e"),
                hex(&TEST_1024_MESSAGE.concat()),
                hex(
                    "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350\
                     aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
                ),
            ),
            vector(
                "TEST SHA(abc)",
                hex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf"),
                Sha512::digest(b"abc").to_vec(),
                hex(
                    "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589\
                     09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
                ),
            ),
        ]
    }

    /// S + L, little-endian (no carry out: S < L < 2^253).
    fn plus_l(s: &[u8]) -> Vec<u8> {
        let mut carry = 0u64;
        let mut sum = Vec::new();
        for (index, &byte) in s.iter().enumerate() {
            let l_byte = (L[index / 4] >> (8 * (index % 4))) as u8;
            let total = u64::from(byte) + u64::from(l_byte) + carry;
            sum.push(total as u8);
            carry = total >> 8;
        }
        assert_eq!(carry, 0);
        sum
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rfc8032_vectors_verify_and_changes_do_not() {
        assert_eq!(TEST_1024_MESSAGE.concat().len(), 2 * 1023);
        for Vector {
            name,
            public,
            message,
            signature,
        } in rfc8032_vectors()
        {
            let key = VerifyingKey::from_bytes(&public).unwrap();
            assert!(key.verify(&message, &signature), "{name}");
            let mut longer = message.clone();
            longer.push(0);
            assert!(!key.verify(&longer, &signature), "{name}: message");
            for index in [0, 31, 32, 63] {
                let mut changed = signature.clone();
                changed[index] ^= 1;
                assert!(!key.verify(&message, &changed), "{name}: byte {index}");
            }
            let mut other = public.clone();
            other[0] ^= 1;
            let other = VerifyingKey::from_bytes(&other).unwrap();
            assert!(!other.verify(&message, &signature), "{name}: key");
            assert!(!key.verify(&message, &signature[..63]), "{name}: short");
            let mut long = signature.clone();
            long.push(0);
            assert!(!key.verify(&message, &long), "{name}: long");
            // S + L is the same scalar, but not the canonical S.
            let (r, s) = signature.split_at(32);
            assert!(
                !key.verify(&message, &[r, &plus_l(s)].concat()),
                "{name}: S + L"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn tables_have_the_stated_sizes() {
        let test1 = rfc8032_vectors().remove(0);
        let key = VerifyingKey::from_bytes(&test1.public).unwrap();
        assert_eq!(key.table_bytes(), None);
        assert!(key.verify(&test1.message, &test1.signature));
        assert_eq!(key.table_bytes(), Some(39_936));
        // A clone shares the table.
        assert_eq!(key.clone().table_bytes(), Some(39_936));
        assert_eq!(ed25519().base_table().map(Table::bytes), Some(132_096));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_that_are_no_usable_point_verify_nothing() {
        assert!(VerifyingKey::from_bytes(&[0; 31]).is_none());
        assert!(VerifyingKey::from_bytes(&[0; 33]).is_none());
        let curve = &ed25519().curve;
        let base = curve.encode(&curve.extended(&curve.base)).unwrap();
        // With A the identity (y = 1), [S]B = R + [k]A holds for R = B and S = 1
        // whatever the message: small-order keys must be refused.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut one = [0u8; 32];
        one[0] = 1;
        let forged = [base, one].concat();
        let key = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(!key.verify(b"anything", &forged));
        assert_eq!(key.table_bytes(), None);
        // y = 2 is no point; y = p + 1 is 1 encoded non-canonically.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        for encoding in [off_curve, non_canonical] {
            let key = VerifyingKey::from_bytes(&encoding).unwrap();
            assert!(!key.verify(b"anything", &forged));
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn wide_numbers_reduce_mod_l() {
        let context = ed25519();
        // 2^512 - 1 mod L (computed with Python's integers).
        let expected: Limbs<8> = [
            0x449c0f00, 0xa40611e3, 0x68859347, 0xd00e1ba7, 0x17f5be65, 0xceec73d2, 0x7c309a3d,
            0x0399411b,
        ];
        assert_eq!(context.reduce_wide(&[0xff; 64]), Some(expected));
        let l_bytes: Vec<u8> = L.iter().flat_map(|limb| limb.to_le_bytes()).collect();
        // L and L·2^256 are 0 mod L; L - 1 stays.
        let zero = [0u32; 8];
        assert_eq!(
            context.reduce_wide(&[l_bytes.clone(), vec![0; 32]].concat()),
            Some(zero)
        );
        assert_eq!(
            context.reduce_wide(&[vec![0; 32], l_bytes.clone()].concat()),
            Some(zero)
        );
        let mut l_minus_1 = l_bytes.clone();
        l_minus_1[0] -= 1;
        let mut expected = L;
        expected[0] -= 1;
        assert_eq!(
            context.reduce_wide(&[l_minus_1, vec![0; 32]].concat()),
            Some(expected)
        );
        assert_eq!(context.reduce_wide(&[0; 63]), None);
    }
}
