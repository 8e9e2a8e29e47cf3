//! ECDSA verification on NIST P-256 (ES256) and P-384 (ES384).
//!
//! One implementation, generic over the limb count, serves both curves. A
//! verification computes u1·G + u2·Q as a sum of precomputed multiples: the table
//! of G is built once per VM, the table of a key Q on that key's first verification
//! (JWKS keys live for days and sign many tokens). Comparing x(R) with r happens in
//! Jacobian coordinates, so the only inversion is s^-1 mod n.
//!
//! Variable time throughout: fine for verification, where every input (key,
//! message, signature) is public; never use this for signing or any secret.

pub mod curves;
// Shared with `ed25519`: its field and group order use the same Montgomery
// arithmetic, its tables the same shapes and digit recoding.
pub(super) mod field;
mod point;
pub(super) mod table;

use field::{from_be_bytes, is_zero, less_than, Limbs, Modulus};
use point::{Affine, Jacobian};
use sha2::{Digest, Sha256, Sha384};
use std::fmt;
use std::sync::{Arc, OnceLock};
use table::{Shape, Table};

/// A curve y^2 = x^3 - 3x + b with a generator of prime order n.
#[derive(Debug)]
pub struct Curve<const N: usize> {
    name: &'static str,
    /// Field arithmetic modulo p.
    p: Modulus<N>,
    /// Scalar arithmetic modulo n.
    n: Modulus<N>,
    /// b in Montgomery form.
    b: Limbs<N>,
    /// The generator, in Montgomery form.
    g: Affine<N>,
    g_shape: Shape,
    key_shape: Shape,
    g_table: OnceLock<Option<Table<N>>>,
}

impl<const N: usize> Curve<N> {
    fn new(
        name: &'static str,
        p: Limbs<N>,
        n: Limbs<N>,
        b: Limbs<N>,
        g: Affine<N>,
        g_shape: Shape,
        key_shape: Shape,
    ) -> Self {
        let p = Modulus::new(p);
        Self {
            name,
            b: p.to_montgomery(&b),
            g: Affine {
                x: p.to_montgomery(&g.x),
                y: p.to_montgomery(&g.y),
            },
            p,
            n: Modulus::new(n),
            g_shape,
            key_shape,
            g_table: OnceLock::new(),
        }
    }

    /// Whether the (Montgomery-form) affine point satisfies the curve equation.
    fn on_curve(&self, point: &Affine<N>) -> bool {
        let field = &self.p;
        let x2 = field.square(&point.x);
        let x3_minus_3x = field.mul(
            &field.sub(
                &x2,
                &field.add(&field.one, &field.add(&field.one, &field.one)),
            ),
            &point.x,
        );
        field.square(&point.y) == field.add(&x3_minus_3x, &self.b)
    }

    fn g_table(&self) -> Option<&Table<N>> {
        self.g_table
            .get_or_init(|| Table::new(&self.p, &self.g, self.g_shape))
            .as_ref()
    }
}

/// An ECDSA public key, validated: on the curve, coordinates below p, so not the
/// identity (which has no affine coordinates). Clones share the lazily built table.
///
/// Only keys that verify something get a table, so a full JWKS (`jwks::MAX_KEYS`,
/// 64) costs at most 64 tables: 5.6 MB for P-256, 3.8 MB for P-384, and in practice
/// the two or three keys an IdP actually signs with.
#[derive(Clone)]
pub struct VerifyingKey<const N: usize> {
    curve: &'static Curve<N>,
    /// Q in Montgomery form.
    point: Affine<N>,
    table: Arc<OnceLock<Option<Table<N>>>>,
}

/// A P-256 key: ES256.
pub type P256Key = VerifyingKey<8>;
/// A P-384 key: ES384.
pub type P384Key = VerifyingKey<12>;

impl P256Key {
    /// The key with these big-endian coordinates of exactly 32 bytes each, if it is
    /// a valid point.
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Option<Self> {
        Self::new(curves::p256(), x, y)
    }

    /// ES256: ECDSA with SHA-256 over a JWS `r || s` signature (64 bytes).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_digest(&Sha256::digest(message), signature)
    }
}

impl P384Key {
    /// The key with these big-endian coordinates of exactly 48 bytes each, if it is
    /// a valid point.
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Option<Self> {
        Self::new(curves::p384(), x, y)
    }

    /// ES384: ECDSA with SHA-384 over a JWS `r || s` signature (96 bytes).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_digest(&Sha384::digest(message), signature)
    }
}

impl<const N: usize> fmt::Debug for VerifyingKey<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("curve", &self.curve.name)
            .field("x", &self.curve.p.leave_montgomery(&self.point.x))
            .finish_non_exhaustive()
    }
}

impl<const N: usize> VerifyingKey<N> {
    fn new(curve: &'static Curve<N>, x: &[u8], y: &[u8]) -> Option<Self> {
        let x = from_be_bytes::<N>(x)?;
        let y = from_be_bytes::<N>(y)?;
        if !less_than(&x, &curve.p.m) || !less_than(&y, &curve.p.m) {
            return None;
        }
        let point = Affine {
            x: curve.p.to_montgomery(&x),
            y: curve.p.to_montgomery(&y),
        };
        curve.on_curve(&point).then(|| Self {
            curve,
            point,
            table: Arc::default(),
        })
    }

    fn table(&self) -> Option<&Table<N>> {
        self.table
            .get_or_init(|| Table::new(&self.curve.p, &self.point, self.curve.key_shape))
            .as_ref()
    }

    /// Builds this key's table and the curve's generator table now, so that the
    /// first token it verifies does not pay for them.
    pub fn prepare(&self) {
        let _ = self.curve.g_table();
        let _ = self.table();
    }

    /// Bytes held by this key's table, once built (for tests and measurements).
    pub fn table_bytes(&self) -> Option<usize> {
        self.table.get()?.as_ref().map(Table::bytes)
    }

    /// ECDSA verification (SEC 1 4.1.4) of a P1363 `r || s` signature over a digest
    /// as long as n (true of ES256 and ES384, so the digest is e without shifting).
    fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> bool {
        self.try_verify_digest(digest, signature).unwrap_or(false)
    }

    /// r and s of a P1363 signature: exactly as long as the field each, and both
    /// in [1, n) (SEC 1 4.1.4 step 1); `None` for a signature that never verifies.
    fn scalars(&self, signature: &[u8]) -> Option<(Limbs<N>, Limbs<N>)> {
        let (r, s) = signature.split_at_checked(4 * N)?;
        let r = from_be_bytes::<N>(r)?;
        let s = from_be_bytes::<N>(s)?;
        let in_range = |v: &Limbs<N>| !is_zero(v) && less_than(v, &self.curve.n.m);
        (in_range(&r) && in_range(&s)).then_some((r, s))
    }

    /// The big-endian r and s of a JWS signature this module would go on to
    /// verify, for a verifier elsewhere (the host's) that takes them in another
    /// encoding: the same checks as [`Self::verify`], so no signature the module
    /// rejects on its form reaches the other verifier.
    pub fn signature_halves<'s>(&self, signature: &'s [u8]) -> Option<(&'s [u8], &'s [u8])> {
        self.scalars(signature)?;
        signature.split_at_checked(4 * N)
    }

    fn try_verify_digest(&self, digest: &[u8], signature: &[u8]) -> Option<bool> {
        let curve = self.curve;
        let (r, s) = self.scalars(signature)?;
        // e < 2^(32N) < 2n, so one subtraction reduces it.
        let e = curve.n.reduce_once(&from_be_bytes::<N>(digest)?);
        // w = s^-1 in Montgomery form; a plain times a Montgomery value is plain.
        let w = curve.n.to_montgomery(&curve.n.invert_plain(&s)?);
        let u1 = curve.n.mul(&e, &w);
        let u2 = curve.n.mul(&r, &w);
        let sum = self.linear_combination(&u1, &u2)?;
        Some(self.x_matches(&sum, &r))
    }

    /// u1·G + u2·Q. The key table's phases come first with doublings between them;
    /// the G table has stride 1 and so is added after the last doubling.
    fn linear_combination(&self, u1: &Limbs<N>, u2: &Limbs<N>) -> Option<Jacobian<N>> {
        let field = &self.curve.p;
        let g_table = self.curve.g_table()?;
        let q_table = self.table()?;
        let q_digits = q_table.digits(u2);
        let mut sum = Jacobian::identity();
        for phase in (0..q_table.stride()).rev() {
            if phase + 1 < q_table.stride() {
                for _ in 0..q_table.window() {
                    sum = sum.double(field);
                }
            }
            q_table.add_phase(field, &mut sum, &q_digits, phase);
        }
        g_table.add_phase(field, &mut sum, &g_table.digits(u1), 0);
        Some(sum)
    }

    /// Whether x(R) mod n = r, without inverting Z: x(R) = X/Z^2 lies in [0, p), so
    /// it is r or (when below p) r + n; since p < 2n, no other value reduces to r.
    fn x_matches(&self, sum: &Jacobian<N>, r: &Limbs<N>) -> bool {
        if sum.is_identity() {
            return false;
        }
        let field = &self.curve.p;
        let z2 = field.square(&sum.z);
        let matches =
            |candidate: &Limbs<N>| field.mul(&field.to_montgomery(candidate), &z2) == sum.x;
        if matches(r) {
            return true;
        }
        let (r_plus_n, carry) = field::add_carry(r, &self.curve.n.m);
        !carry && less_than(&r_plus_n, &field.m) && matches(&r_plus_n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    use crate::crypto::hex;

    /// RFC 6979 A.2.5, P-256 with SHA-256, message "sample".
    const P256_X: &str = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6";
    const P256_Y: &str = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299";
    const P256_SIG: &str = "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716\
                            F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8";
    /// RFC 6979 A.2.6, P-384 with SHA-384, message "sample".
    const P384_X: &str = "EC3A4E415B4E19A4568618029F427FA5DA9A8BC4AE92E02E06AAE5286B300C64DEF8F0EA9055866064A254515480BC13";
    const P384_Y: &str = "8015D9B72D7D57244EA8EF9AC0C621896708A59367F9DFB9F54CA84B3F1C9DB1288B231C3AE0D4FE7344FD2533264720";
    const P384_SIG: &str = "94EDBB92A5ECB8AAD4736E56C691916B3F88140666CE9FA73D64C4EA95AD133C81A648152E44ACF96E36DD1E80FABE46\
                            99EF4AEB15F178CEA1FE40DB2603138F130E740A19624526203B6351D0A3A94FA329C145786E679E7B82C71A38628AC8";

    #[wasm_bindgen_test(unsupported = test)]
    fn rfc6979_signatures_verify_and_changes_do_not() {
        let p256 = P256Key::from_coordinates(&hex(P256_X), &hex(P256_Y)).unwrap();
        let p384 = P384Key::from_coordinates(&hex(P384_X), &hex(P384_Y)).unwrap();
        let (sig256, sig384) = (hex(P256_SIG), hex(P384_SIG));
        assert!(p256.verify(b"sample", &sig256));
        assert!(p384.verify(b"sample", &sig384));
        assert!(!p256.verify(b"samplE", &sig256));
        assert!(!p384.verify(b"samplE", &sig384));
        assert!(!p256.verify(b"sample", &sig256[..63]));
        assert!(!p256.verify(b"sample", &sig384));
        // The sizes stated in curves.rs.
        assert_eq!(p256.table_bytes(), Some(88_064));
        assert_eq!(p384.table_bytes(), Some(59_904));
        assert_eq!(curves::p256().g_table().map(Table::bytes), Some(151_552));
        assert_eq!(curves::p384().g_table().map(Table::bytes), Some(199_680));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn invalid_points_are_refused() {
        let (x, y) = (hex(P256_X), hex(P256_Y));
        assert!(P256Key::from_coordinates(&x, &x).is_none());
        assert!(P256Key::from_coordinates(&x, &y[1..]).is_none());
        assert!(P256Key::from_coordinates(&[0; 32], &[0; 32]).is_none());
        // y + p has the same value mod p but is not a canonical coordinate.
        let p = curves::P256_P;
        let y_limbs = from_be_bytes::<8>(&y).unwrap();
        let (y_plus_p, carry) = field::add_carry(&y_limbs, &p);
        if !carry {
            let bytes: Vec<u8> = y_plus_p
                .iter()
                .rev()
                .flat_map(|l| l.to_be_bytes())
                .collect();
            assert!(P256Key::from_coordinates(&x, &bytes).is_none());
        }
    }
}
