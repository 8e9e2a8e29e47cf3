//! Points of edwards25519 (RFC 8032 5.1): -x^2 + y^2 = 1 + d·x^2·y^2 over GF(p),
//! p = 2^255 - 19, coordinates in Montgomery form.
//!
//! Sums are kept in extended coordinates (x = X/Z, y = Y/Z, x·y = T/Z: Hisil, Wong,
//! Carter and Dawson, "Twisted Edwards Curves Revisited", 2008). Their formulas
//! (RFC 8032 5.1.4) are complete on this curve: they hold for any two points, the
//! identity and P = ±Q included, so unlike the Weierstrass code nothing needs a
//! special case. Table entries are affine and kept as (y + x, y - x, 2d·x·y), the
//! form an addition consumes, which makes each addition 7 multiplications.
//!
//! Variable time: public points only.

use crate::crypto::ec::field::{from_be_bytes, is_zero, less_than, Limbs, Modulus};

/// p = 2^255 - 19.
const P: Limbs<8> = [
    0xffffffed, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x7fffffff,
];
/// d = -121665/121666 mod p.
const D: Limbs<8> = [
    0x135978a3, 0x75eb4dca, 0x4141d8ab, 0x00700a4d, 0x7779e898, 0x8cc74079, 0x2b6ffe73, 0x52036cee,
];
/// A square root of -1: 2^((p-1)/4) mod p.
const SQRT_MINUS_ONE: Limbs<8> = [
    0x4a0ea0b0, 0xc4ee1b27, 0xad2fe478, 0x2f431806, 0x3dfbd7a7, 0x2b4d0099, 0x4fc1df0b, 0x2b832480,
];
/// The base point B: y = 4/5 and the even x.
const BASE_X: Limbs<8> = [
    0x8f25d51a, 0xc9562d60, 0x9525a7b2, 0x692cc760, 0xfdd6dc5c, 0xc0a4e231, 0xcd6e53fe, 0x216936d3,
];
const BASE_Y: Limbs<8> = [
    0x66666658, 0x66666666, 0x66666666, 0x66666666, 0x66666666, 0x66666666, 0x66666666, 0x66666666,
];
/// (p - 5)/8 = 2^252 - 3: the exponent of RFC 8032's square-root candidate.
const SQRT_EXPONENT: Limbs<8> = [
    0xfffffffd, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x0fffffff,
];

/// An encoded point or field element: 32 bytes, little-endian.
pub type Encoding = [u8; 32];

/// An affine point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine {
    pub x: Limbs<8>,
    pub y: Limbs<8>,
}

/// A point in extended coordinates; never has Z = 0.
#[derive(Clone, Copy, Debug)]
pub struct Extended {
    x: Limbs<8>,
    y: Limbs<8>,
    z: Limbs<8>,
    t: Limbs<8>,
}

/// An affine point as an addition takes it.
#[derive(Clone, Copy, Debug)]
pub struct Cached {
    y_plus_x: Limbs<8>,
    y_minus_x: Limbs<8>,
    xy_2d: Limbs<8>,
}

/// The field with the curve's constants, all in Montgomery form.
#[derive(Debug)]
pub struct Curve {
    pub p: Modulus<8>,
    d: Limbs<8>,
    d2: Limbs<8>,
    sqrt_minus_one: Limbs<8>,
    pub base: Affine,
}

impl Curve {
    pub fn new() -> Self {
        let p = Modulus::new(P);
        let d = p.to_montgomery(&D);
        Self {
            d2: p.add(&d, &d),
            d,
            sqrt_minus_one: p.to_montgomery(&SQRT_MINUS_ONE),
            base: Affine {
                x: p.to_montgomery(&BASE_X),
                y: p.to_montgomery(&BASE_Y),
            },
            p,
        }
    }

    pub fn identity(&self) -> Extended {
        Extended {
            x: [0; 8],
            y: self.p.one,
            z: self.p.one,
            t: [0; 8],
        }
    }

    pub fn is_identity(&self, point: &Extended) -> bool {
        is_zero(&point.x) && point.y == point.z
    }

    pub fn extended(&self, point: &Affine) -> Extended {
        Extended {
            x: point.x,
            y: point.y,
            z: self.p.one,
            t: self.p.mul(&point.x, &point.y),
        }
    }

    pub fn cached(&self, point: &Affine) -> Cached {
        let p = &self.p;
        Cached {
            y_plus_x: p.add(&point.y, &point.x),
            y_minus_x: p.sub(&point.y, &point.x),
            xy_2d: p.mul(&p.mul(&point.x, &point.y), &self.d2),
        }
    }

    /// a + b, or a - b when `negate`: 7M. Negating (x, y) gives (-x, y), which
    /// swaps y + x with y - x and flips the sign of x·y, which swaps F with G.
    pub fn add(&self, a: &Extended, b: &Cached, negate: bool) -> Extended {
        let p = &self.p;
        let (b_plus, b_minus) = if negate {
            (&b.y_minus_x, &b.y_plus_x)
        } else {
            (&b.y_plus_x, &b.y_minus_x)
        };
        let minus = p.mul(&p.sub(&a.y, &a.x), b_minus);
        let plus = p.mul(&p.add(&a.y, &a.x), b_plus);
        let c = p.mul(&a.t, &b.xy_2d);
        let d = p.add(&a.z, &a.z);
        let e = p.sub(&plus, &minus);
        let h = p.add(&plus, &minus);
        let (f, g) = if negate {
            (p.add(&d, &c), p.sub(&d, &c))
        } else {
            (p.sub(&d, &c), p.add(&d, &c))
        };
        Extended {
            x: p.mul(&e, &f),
            y: p.mul(&g, &h),
            z: p.mul(&f, &g),
            t: p.mul(&e, &h),
        }
    }

    /// 2a: 4M + 4S.
    pub fn double(&self, a: &Extended) -> Extended {
        let p = &self.p;
        let xx = p.square(&a.x);
        let yy = p.square(&a.y);
        let zz = p.square(&a.z);
        let c = p.add(&zz, &zz);
        let h = p.add(&xx, &yy);
        let e = p.sub(&h, &p.square(&p.add(&a.x, &a.y)));
        let g = p.sub(&xx, &yy);
        let f = p.add(&c, &g);
        Extended {
            x: p.mul(&e, &f),
            y: p.mul(&g, &h),
            z: p.mul(&f, &g),
            t: p.mul(&e, &h),
        }
    }

    /// Whether 8·point is the identity. Such a public key would let anyone sign:
    /// [k]A then lies in a group of eight points, so k hardly matters.
    pub fn has_small_order(&self, point: &Affine) -> bool {
        let eight_times = (0..3).fold(self.extended(point), |sum, _| self.double(&sum));
        self.is_identity(&eight_times)
    }

    /// Affine forms with one inversion for all (Montgomery's trick: invert the
    /// product of the Z, then peel factors off backwards).
    pub fn to_affine_batch(&self, points: &[Extended]) -> Option<Vec<Affine>> {
        let p = &self.p;
        let mut prefix = Vec::with_capacity(points.len());
        let mut product = p.one;
        for point in points {
            product = p.mul(&product, &point.z);
            prefix.push(product);
        }
        let mut inverse = p.invert(&product)?;
        let mut affine = vec![
            Affine {
                x: [0; 8],
                y: [0; 8]
            };
            points.len()
        ];
        let earlier = prefix.iter().rev().skip(1).chain(std::iter::once(&p.one));
        for ((point, out), before) in points
            .iter()
            .rev()
            .zip(affine.iter_mut().rev())
            .zip(earlier)
        {
            let z_inverse = p.mul(&inverse, before);
            inverse = p.mul(&inverse, &point.z);
            out.x = p.mul(&point.x, &z_inverse);
            out.y = p.mul(&point.y, &z_inverse);
        }
        Some(affine)
    }

    /// The RFC 8032 5.1.2 encoding: y, with the low bit of x in the top bit.
    pub fn encode(&self, point: &Extended) -> Option<Encoding> {
        let z_inverse = self.p.invert(&point.z)?;
        let x = self.p.leave_montgomery(&self.p.mul(&point.x, &z_inverse));
        let y = self.p.leave_montgomery(&self.p.mul(&point.y, &z_inverse));
        let mut encoding = to_le_bytes(&y);
        if let Some(last) = encoding.last_mut() {
            *last |= (is_odd(&x) as u8) << 7;
        }
        Some(encoding)
    }

    /// The point with this encoding, decoded as RFC 8032 5.1.3 says: `None` when y
    /// is not below p, when no x fits y, or when x = 0 comes with the sign bit set.
    pub fn decode(&self, encoding: &Encoding) -> Option<Affine> {
        let mut y_bytes = *encoding;
        let last = y_bytes.last_mut()?;
        let x_odd = *last >> 7 == 1;
        *last &= 0x7f;
        let y = from_le_bytes(&y_bytes)?;
        if !less_than(&y, &self.p.m) {
            return None;
        }
        let y = self.p.to_montgomery(&y);
        let x = self.recover_x(&y)?;
        let x_plain = self.p.leave_montgomery(&x);
        if is_zero(&x_plain) && x_odd {
            return None;
        }
        let x = if is_odd(&x_plain) == x_odd {
            x
        } else {
            self.p.neg(&x)
        };
        Some(Affine { x, y })
    }

    /// A root x of x^2 = u/v, u = y^2 - 1, v = d·y^2 + 1 (the curve equation solved
    /// for x), if there is one. RFC 8032 5.1.3: the candidate u·v^3·(u·v^7)^((p-5)/8)
    /// is (u/v)^((p+3)/8) without an inversion. When u/v has a root, the candidate's
    /// square is u/v or -u/v, and in the second case multiplying by sqrt(-1) fixes it.
    fn recover_x(&self, y: &Limbs<8>) -> Option<Limbs<8>> {
        let p = &self.p;
        let yy = p.square(y);
        let u = p.sub(&yy, &p.one);
        let v = p.add(&p.mul(&self.d, &yy), &p.one);
        let v3 = p.mul(&p.square(&v), &v);
        let uv3 = p.mul(&u, &v3);
        let uv7 = p.mul(&uv3, &p.square(&p.square(&v)));
        let x = p.mul(&uv3, &self.pow(&uv7, &SQRT_EXPONENT));
        let vxx = p.mul(&v, &p.square(&x));
        if vxx == u {
            Some(x)
        } else if vxx == p.neg(&u) {
            Some(p.mul(&x, &self.sqrt_minus_one))
        } else {
            None
        }
    }

    /// base^exponent by square-and-multiply; only key decoding uses it.
    fn pow(&self, base: &Limbs<8>, exponent: &Limbs<8>) -> Limbs<8> {
        let mut result = self.p.one;
        for limb in exponent.iter().rev() {
            for bit in (0..32).rev() {
                result = self.p.square(&result);
                if (limb >> bit) & 1 == 1 {
                    result = self.p.mul(&result, base);
                }
            }
        }
        result
    }
}

fn is_odd(value: &Limbs<8>) -> bool {
    value.first().is_some_and(|low| low & 1 == 1)
}

/// The number with these little-endian bytes, if there are exactly 32. Reversed
/// for the big-endian reader ECDSA already has: smaller than a second loop.
pub fn from_le_bytes(bytes: &[u8]) -> Option<Limbs<8>> {
    let mut big_endian: [u8; 32] = bytes.try_into().ok()?;
    big_endian.reverse();
    from_be_bytes(&big_endian)
}

fn to_le_bytes(limbs: &Limbs<8>) -> Encoding {
    let mut bytes = [0u8; 32];
    for (chunk, limb) in bytes.chunks_exact_mut(4).zip(limbs) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::ec::field::small;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// k·P by plain double-and-add, the reference for the tables.
    pub fn multiply(curve: &Curve, point: &Affine, k: &Limbs<8>) -> Extended {
        let cached = curve.cached(point);
        let mut sum = curve.identity();
        for bit in (0..256).rev() {
            sum = curve.double(&sum);
            if (k[bit / 32] >> (bit % 32)) & 1 == 1 {
                sum = curve.add(&sum, &cached, false);
            }
        }
        sum
    }

    pub fn affine(curve: &Curve, point: &Extended) -> Affine {
        curve.to_affine_batch(&[*point]).unwrap()[0]
    }

    fn on_curve(curve: &Curve, point: &Affine) -> bool {
        let p = &curve.p;
        let xx = p.square(&point.x);
        let yy = p.square(&point.y);
        let left = p.sub(&yy, &xx);
        let right = p.add(&p.one, &p.mul(&curve.d, &p.mul(&xx, &yy)));
        left == right
    }

    fn mont(curve: &Curve, value: u32) -> Limbs<8> {
        curve.p.to_montgomery(&small(value))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn constants_are_what_their_names_say() {
        let curve = Curve::new();
        let p = &curve.p;
        // d·121666 = -121665.
        assert_eq!(
            p.mul(&curve.d, &mont(&curve, 121666)),
            p.neg(&mont(&curve, 121665))
        );
        assert_eq!(p.square(&curve.sqrt_minus_one), p.neg(&p.one), "sqrt(-1)");
        // y = 4/5.
        assert_eq!(p.mul(&curve.base.y, &mont(&curve, 5)), mont(&curve, 4));
        assert!(on_curve(&curve, &curve.base));
        let mut encoded_base = [0x66u8; 32];
        encoded_base[0] = 0x58;
        assert_eq!(
            curve.encode(&curve.extended(&curve.base)),
            Some(encoded_base)
        );
        assert_eq!(curve.decode(&encoded_base), Some(curve.base));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn square_roots_are_found_exactly_for_squares() {
        let curve = Curve::new();
        let p = &curve.p;
        // (p - 1)/2: Euler's criterion, a^((p-1)/2) = 1 exactly for nonzero squares.
        let half_order = [
            0xfffffff6, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
            0x3fffffff,
        ];
        // y = 1 and 9 take the candidate as it is, 0, 3, 4 and 5 need the sqrt(-1)
        // fix-up, 2 and 1000 have no x.
        for y in [0u32, 1, 2, 3, 4, 5, 9, 1000] {
            let y = mont(&curve, y);
            let yy = p.square(&y);
            let u = p.sub(&yy, &p.one);
            let v = p.add(&p.mul(&curve.d, &yy), &p.one);
            let ratio = p.mul(&u, &p.invert(&v).unwrap());
            let is_square = is_zero(&ratio) || curve.pow(&ratio, &half_order) == p.one;
            match curve.recover_x(&y) {
                Some(x) => assert_eq!(p.square(&x), ratio),
                None => assert!(!is_square),
            }
            assert_eq!(curve.recover_x(&y).is_some(), is_square);
        }
        let three = mont(&curve, 3);
        let power = (0..77).fold(p.one, |power, _| p.mul(&power, &three));
        assert_eq!(curve.pow(&three, &small(77)), power);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn group_law_holds() {
        let curve = Curve::new();
        let b = curve.base;
        let b_cached = curve.cached(&b);
        let b_extended = curve.extended(&b);
        let doubled = curve.double(&b_extended);
        let added = curve.add(&b_extended, &b_cached, false);
        assert_eq!(affine(&curve, &doubled), affine(&curve, &added));
        assert!(on_curve(&curve, &affine(&curve, &doubled)));
        assert!(curve.is_identity(&curve.add(&b_extended, &b_cached, true)));
        let three = curve.add(&doubled, &b_cached, false);
        assert_eq!(
            affine(&curve, &curve.add(&three, &b_cached, true)),
            affine(&curve, &doubled)
        );
        // The identity needs no special case.
        let from_identity = curve.add(&curve.identity(), &b_cached, false);
        assert_eq!(affine(&curve, &from_identity), b);
        assert!(curve.is_identity(&curve.double(&curve.identity())));
        // B has order L.
        let l = super::super::L;
        assert!(curve.is_identity(&multiply(&curve, &b, &l)));
        assert!(!curve.has_small_order(&b));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn encodings_round_trip_and_invalid_ones_are_refused() {
        let curve = Curve::new();
        let mut point = curve.base;
        for k in 1..20u32 {
            let encoding = curve.encode(&curve.extended(&point)).unwrap();
            assert_eq!(curve.decode(&encoding), Some(point), "{k}·B");
            let mut flipped = encoding;
            flipped[31] ^= 0x80;
            let negated = curve.decode(&flipped).unwrap();
            assert_eq!(negated.x, curve.p.neg(&point.x));
            point = affine(
                &curve,
                &curve.add(&curve.extended(&point), &curve.cached(&curve.base), false),
            );
        }
        // y = p and y = p + 1 (the canonical 0 and 1 plus p).
        let mut y_is_p = to_le_bytes(&P);
        assert_eq!(curve.decode(&y_is_p), None);
        y_is_p[0] += 1;
        assert_eq!(curve.decode(&y_is_p), None);
        // y = 1 is the identity (x = 0); with the sign bit set it is refused.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let decoded = curve.decode(&identity).unwrap();
        assert!(curve.has_small_order(&decoded));
        identity[31] |= 0x80;
        assert_eq!(curve.decode(&identity), None);
        // y = 2 is no point: (y^2 - 1)/(d·y^2 + 1) is not a square.
        let mut two = [0u8; 32];
        two[0] = 2;
        assert_eq!(curve.decode(&two), None);
        // y = -1 is the point of order 2.
        let minus_one = to_le_bytes(&curve.p.leave_montgomery(&curve.p.neg(&curve.p.one)));
        assert!(curve.has_small_order(&curve.decode(&minus_one).unwrap()));
    }
}
