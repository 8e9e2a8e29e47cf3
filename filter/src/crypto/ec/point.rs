//! Points of a short-Weierstrass curve with a = -3, coordinates in Montgomery form.
//!
//! Sums are kept in Jacobian coordinates (x = X/Z^2, y = Y/Z^3), which need no
//! field inversion; table points are affine so each addition is the cheaper mixed
//! kind. Formulas from the Explicit-Formulas Database (hyperelliptic.org/EFD,
//! "g1p/auto-shortw-jacobian-3"). Variable time: public points only.

use super::field::{is_zero, Limbs, Modulus};

/// An affine point; never the identity, which has no affine coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine<const N: usize> {
    pub x: Limbs<N>,
    pub y: Limbs<N>,
}

/// A Jacobian point; Z = 0 is the identity (point at infinity).
#[derive(Clone, Copy, Debug)]
pub struct Jacobian<const N: usize> {
    pub x: Limbs<N>,
    pub y: Limbs<N>,
    pub z: Limbs<N>,
}

impl<const N: usize> Jacobian<N> {
    pub fn identity() -> Self {
        Self {
            x: [0; N],
            y: [0; N],
            z: [0; N],
        }
    }

    pub fn is_identity(&self) -> bool {
        is_zero(&self.z)
    }

    pub fn from_affine(field: &Modulus<N>, point: &Affine<N>) -> Self {
        Self {
            x: point.x,
            y: point.y,
            z: field.one,
        }
    }

    /// 2P, "dbl-2001-b": 3M + 5S. The identity doubles to itself (Z stays 0).
    pub fn double(&self, field: &Modulus<N>) -> Self {
        let delta = field.square(&self.z);
        let gamma = field.square(&self.y);
        let beta = field.mul(&self.x, &gamma);
        let alpha = field.mul(&field.sub(&self.x, &delta), &field.add(&self.x, &delta));
        let alpha = field.add(&alpha, &field.add(&alpha, &alpha));
        let beta4 = field.add(&beta, &beta);
        let beta4 = field.add(&beta4, &beta4);
        let x = field.sub(&field.square(&alpha), &field.add(&beta4, &beta4));
        let z = field.square(&field.add(&self.y, &self.z));
        let z = field.sub(&field.sub(&z, &gamma), &delta);
        let gamma2 = field.square(&gamma);
        let gamma8 = field.add(&gamma2, &gamma2);
        let gamma8 = field.add(&gamma8, &gamma8);
        let gamma8 = field.add(&gamma8, &gamma8);
        let y = field.sub(&field.mul(&alpha, &field.sub(&beta4, &x)), &gamma8);
        Self { x, y, z }
    }

    /// P + Q, or P - Q when `negate`, for an affine Q: 8M + 3S. Handles every
    /// special case (P the identity, P = ±Q), which adversarial scalars can reach.
    pub fn add_affine(&self, field: &Modulus<N>, other: &Affine<N>, negate: bool) -> Self {
        let other_y = if negate { field.neg(&other.y) } else { other.y };
        if self.is_identity() {
            return Self {
                x: other.x,
                y: other_y,
                z: field.one,
            };
        }
        let z1z1 = field.square(&self.z);
        let u2 = field.mul(&other.x, &z1z1);
        let s2 = field.mul(&other_y, &field.mul(&self.z, &z1z1));
        let h = field.sub(&u2, &self.x);
        let r = field.sub(&s2, &self.y);
        if is_zero(&h) {
            return if is_zero(&r) {
                self.double(field)
            } else {
                Self::identity()
            };
        }
        let hh = field.square(&h);
        let hhh = field.mul(&h, &hh);
        let v = field.mul(&self.x, &hh);
        let x = field.sub(&field.sub(&field.square(&r), &hhh), &field.add(&v, &v));
        let y = field.sub(
            &field.mul(&r, &field.sub(&v, &x)),
            &field.mul(&self.y, &hhh),
        );
        let z = field.mul(&self.z, &h);
        Self { x, y, z }
    }
}

/// Affine forms of points none of which is the identity, with one inversion for
/// all (Montgomery's trick: invert the product, then peel factors off backwards).
pub fn to_affine_batch<const N: usize>(
    field: &Modulus<N>,
    points: &[Jacobian<N>],
) -> Option<Vec<Affine<N>>> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut product = field.one;
    for point in points {
        product = field.mul(&product, &point.z);
        prefix.push(product);
    }
    let mut inverse = field.invert(&product)?;
    let mut affine = vec![
        Affine {
            x: [0; N],
            y: [0; N]
        };
        points.len()
    ];
    let earlier = prefix
        .iter()
        .rev()
        .skip(1)
        .chain(std::iter::once(&field.one));
    for ((point, out), before) in points
        .iter()
        .rev()
        .zip(affine.iter_mut().rev())
        .zip(earlier)
    {
        let z_inverse = field.mul(&inverse, before);
        inverse = field.mul(&inverse, &point.z);
        let z_inverse2 = field.square(&z_inverse);
        out.x = field.mul(&point.x, &z_inverse2);
        out.y = field.mul(&point.y, &field.mul(&z_inverse2, &z_inverse));
    }
    Some(affine)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::ec::curves::{p256, p384};
    use crate::crypto::ec::Curve;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// k·P by plain double-and-add, the reference for the tables.
    pub fn multiply<const N: usize>(
        curve: &Curve<N>,
        point: &Affine<N>,
        k: &Limbs<N>,
    ) -> Jacobian<N> {
        let mut sum = Jacobian::identity();
        for bit in (0..32 * N).rev() {
            sum = sum.double(&curve.p);
            if (k[bit / 32] >> (bit % 32)) & 1 == 1 {
                sum = sum.add_affine(&curve.p, point, false);
            }
        }
        sum
    }

    pub fn affine<const N: usize>(curve: &Curve<N>, point: &Jacobian<N>) -> Affine<N> {
        to_affine_batch(&curve.p, &[*point]).unwrap()[0]
    }

    fn check_group_law<const N: usize>(curve: &Curve<N>) {
        let g = curve.g;
        let g_jacobian = Jacobian::from_affine(&curve.p, &g);
        let doubled = g_jacobian.double(&curve.p);
        assert_eq!(
            affine(curve, &g_jacobian.add_affine(&curve.p, &g, false)),
            affine(curve, &doubled)
        );
        assert!(curve.on_curve(&affine(curve, &doubled)));
        assert!(g_jacobian.add_affine(&curve.p, &g, true).is_identity());
        let three = doubled.add_affine(&curve.p, &g, false);
        let back = affine(curve, &three.add_affine(&curve.p, &g, true));
        assert_eq!(back, affine(curve, &doubled));
        assert!(multiply(curve, &g, &curve.n.m).is_identity());
        let n_minus_1 = curve.n.sub(&curve.n.m, &crate::crypto::ec::field::small(1));
        let minus_g = affine(curve, &multiply(curve, &g, &n_minus_1));
        assert_eq!(minus_g.x, g.x);
        assert_eq!(minus_g.y, curve.p.neg(&g.y));
        assert!(Jacobian::<N>::identity().double(&curve.p).is_identity());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn group_law_holds_on_both_curves() {
        check_group_law(p256());
        check_group_law(p384());
    }
}
