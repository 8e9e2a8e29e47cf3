//! Precomputed multiples of a fixed point, so that k·P costs mostly additions.
//!
//! The scalar is recoded into signed base-2^w digits d_i in [-2^(w-1), 2^(w-1)], so
//! k = Σ d_i·2^(w·i). Row r of a table holds j·2^(w·s·r)·P for j = 1..=2^(w-1); with
//! stride s = 1 every digit is one table addition and no doubling is needed; a
//! stride s > 1 cuts the table s-fold and costs w doublings per extra phase, shared
//! by everything added into the same sum (Horner over the digit index mod s).

use super::field::{Limbs, Modulus};
use super::point::{to_affine_batch, Affine, Jacobian};

/// The dimensions of a table for scalars of `bits` bits.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Digit width w, at most 7 so that digits fit an `i8`.
    pub window: usize,
    /// Digits per row, s.
    pub stride: usize,
    /// Rows, enough for `digits` = rows·s digits.
    pub rows: usize,
}

impl Shape {
    /// The shape for `bits`-bit scalars. One bit more than the scalar is covered
    /// because the recoding can carry out of the top digit.
    pub const fn new(bits: usize, window: usize, stride: usize) -> Self {
        let digits = (bits + 1).div_ceil(window);
        Self {
            window,
            stride,
            rows: digits.div_ceil(stride),
        }
    }

    pub fn half(&self) -> usize {
        1 << (self.window - 1)
    }

    pub fn digits(&self) -> usize {
        self.rows * self.stride
    }
}

#[derive(Debug)]
pub struct Table<const N: usize> {
    shape: Shape,
    /// Row-major: row r, entry j - 1.
    points: Vec<Affine<N>>,
}

impl<const N: usize> Table<N> {
    /// The table of `point`, which must be on the curve and not the identity, so
    /// that no multiple below is the identity (the group order is a prime above all
    /// of them), and each row's affine base comes from one batched inversion.
    pub fn new(field: &Modulus<N>, point: &Affine<N>, shape: Shape) -> Option<Self> {
        let half = shape.half();
        let mut points = Vec::with_capacity(shape.rows * half);
        let mut base = *point;
        for _ in 0..shape.rows {
            let mut row = Vec::with_capacity(half + 1);
            let mut multiple = Jacobian::from_affine(field, &base);
            row.push(multiple);
            for _ in 1..half {
                multiple = multiple.add_affine(field, &base, false);
                row.push(multiple);
            }
            // The next row's base: half·base doubled w·s - w + 1 times is 2^(w·s)·base.
            for _ in 0..shape.window * shape.stride - shape.window + 1 {
                multiple = multiple.double(field);
            }
            row.push(multiple);
            let mut affine = to_affine_batch(field, &row)?;
            base = affine.pop()?;
            points.extend(affine);
        }
        Some(Self { shape, points })
    }

    pub fn stride(&self) -> usize {
        self.shape.stride
    }

    pub fn window(&self) -> usize {
        self.shape.window
    }

    /// Memory held by the points.
    pub fn bytes(&self) -> usize {
        self.points.len() * std::mem::size_of::<Affine<N>>()
    }

    pub fn digits(&self, scalar: &Limbs<N>) -> Vec<i8> {
        signed_digits(scalar, self.shape.window, self.shape.digits())
    }

    /// Adds the terms of the digits at indices ≡ `phase` (mod s) into `sum`.
    pub fn add_phase(
        &self,
        field: &Modulus<N>,
        sum: &mut Jacobian<N>,
        digits: &[i8],
        phase: usize,
    ) {
        let rows = self.points.chunks_exact(self.shape.half());
        let phase_digits = digits.iter().skip(phase).step_by(self.shape.stride);
        for (row, &digit) in rows.zip(phase_digits) {
            if digit == 0 {
                continue;
            }
            if let Some(point) = row.get(usize::from(digit.unsigned_abs() - 1)) {
                *sum = sum.add_affine(field, point, digit < 0);
            }
        }
    }
}

/// `count` signed digits of `window` bits: each digit above 2^(w-1) becomes
/// d - 2^w and carries one into the next. `window` must be 1..=7.
pub fn signed_digits<const N: usize>(scalar: &Limbs<N>, window: usize, count: usize) -> Vec<i8> {
    let half = 1i32 << (window - 1);
    let mut carry = 0i32;
    (0..count)
        .map(|index| {
            let value = bits_at(scalar, index * window, window) as i32 + carry;
            carry = i32::from(value > half);
            (value - (carry << window)) as i8
        })
        .collect()
}

/// The `width` bits of `scalar` starting at bit `position` (zero past the top).
fn bits_at<const N: usize>(scalar: &Limbs<N>, position: usize, width: usize) -> u32 {
    let limb = |index: usize| u64::from(scalar.get(index).copied().unwrap_or(0));
    let index = position / 32;
    let pair = limb(index) | (limb(index + 1) << 32);
    ((pair >> (position % 32)) & ((1 << width) - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ec::curves::{p256, p384};
    use crate::crypto::ec::point::tests::{affine, multiply};
    use crate::crypto::ec::Curve;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn value_of(digits: &[i8], window: usize) -> i128 {
        digits
            .iter()
            .rev()
            .fold(0i128, |sum, &digit| (sum << window) + i128::from(digit))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn signed_digits_recompose_to_the_scalar() {
        for window in 1..=7 {
            for value in [0u64, 1, 0x5a, 0xffff_ffff, 0x8000_0000_0000_0001, u64::MAX] {
                let scalar = [value as u32, (value >> 32) as u32];
                let digits = signed_digits(&scalar, window, 65usize.div_ceil(window));
                let half = 1i8 << (window - 1).min(6);
                assert!(digits
                    .iter()
                    .all(|&d| -half <= d && i16::from(d) <= 1 << (window - 1)));
                assert_eq!(value_of(&digits, window), i128::from(value), "w={window}");
            }
        }
    }

    /// Sums with the table (all phases, doubling between them) as `verify` does.
    fn table_multiply<const N: usize>(
        curve: &Curve<N>,
        table: &Table<N>,
        k: &Limbs<N>,
    ) -> Jacobian<N> {
        let digits = table.digits(k);
        let mut sum = Jacobian::identity();
        for phase in (0..table.stride()).rev() {
            if phase + 1 < table.stride() {
                for _ in 0..table.window() {
                    sum = sum.double(&curve.p);
                }
            }
            table.add_phase(&curve.p, &mut sum, &digits, phase);
        }
        sum
    }

    fn check_tables<const N: usize>(curve: &Curve<N>, bits: usize) {
        let g = curve.g;
        let point = affine(
            curve,
            &multiply(curve, &g, &crate::crypto::ec::field::small(12345)),
        );
        let mut scalars = vec![
            crate::crypto::ec::field::small::<N>(1),
            crate::crypto::ec::field::small::<N>(77),
            curve.n.sub(&curve.n.m, &crate::crypto::ec::field::small(1)),
        ];
        let mut k = [0x9e37_79b9u32; N];
        for _ in 0..3 {
            k = curve.n.reduce_once(&curve.n.mul(&k, &k));
            scalars.push(k);
        }
        for (window, stride) in [(4, 1), (5, 2), (3, 3)] {
            let table = Table::new(&curve.p, &point, Shape::new(bits, window, stride)).unwrap();
            for k in &scalars {
                let expected = affine(curve, &multiply(curve, &point, k));
                assert_eq!(affine(curve, &table_multiply(curve, &table, k)), expected);
            }
            assert!(table_multiply(curve, &table, &curve.n.m).is_identity());
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn table_sums_equal_double_and_add() {
        check_tables(p256(), 256);
        check_tables(p384(), 384);
    }
}
