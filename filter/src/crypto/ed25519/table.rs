//! Precomputed multiples of a fixed edwards25519 point, laid out as the ECDSA
//! tables are (`ec/table.rs`, whose shapes and signed digits this shares): row r
//! holds j·2^(w·s·r)·P for j = 1..=2^(w-1), so each nonzero digit of a scalar is
//! one addition.

use super::point::{Affine, Cached, Curve, Extended};
use crate::crypto::ec::field::Limbs;
use crate::crypto::ec::table::{signed_digits, Shape};

#[derive(Debug)]
pub struct Table {
    shape: Shape,
    /// Row-major: row r, entry j - 1.
    entries: Vec<Cached>,
}

impl Table {
    /// The table of `point`; each row's affine entries, and the next row's base,
    /// come from one batched inversion.
    pub fn new(curve: &Curve, point: &Affine, shape: Shape) -> Option<Self> {
        let half = shape.half();
        let mut entries = Vec::with_capacity(shape.rows * half);
        let mut base = *point;
        for _ in 0..shape.rows {
            let base_cached = curve.cached(&base);
            let mut row = Vec::with_capacity(half + 1);
            let mut multiple = curve.extended(&base);
            row.push(multiple);
            for _ in 1..half {
                multiple = curve.add(&multiple, &base_cached, false);
                row.push(multiple);
            }
            // The next row's base: half·base doubled w·s - w + 1 times is 2^(w·s)·base.
            for _ in 0..shape.window * shape.stride - shape.window + 1 {
                multiple = curve.double(&multiple);
            }
            row.push(multiple);
            let mut affine = curve.to_affine_batch(&row)?;
            base = affine.pop()?;
            entries.extend(affine.iter().map(|entry| curve.cached(entry)));
        }
        Some(Self { shape, entries })
    }

    pub fn stride(&self) -> usize {
        self.shape.stride
    }

    pub fn window(&self) -> usize {
        self.shape.window
    }

    /// Memory held by the entries.
    pub fn bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<Cached>()
    }

    pub fn digits(&self, scalar: &Limbs<8>) -> Vec<i8> {
        signed_digits(scalar, self.shape.window, self.shape.digits())
    }

    /// Adds the terms of the digits at indices ≡ `phase` (mod s) into `sum`, or
    /// subtracts them when `negate`.
    pub fn add_phase(
        &self,
        curve: &Curve,
        sum: &mut Extended,
        digits: &[i8],
        phase: usize,
        negate: bool,
    ) {
        let rows = self.entries.chunks_exact(self.shape.half());
        let phase_digits = digits.iter().skip(phase).step_by(self.shape.stride);
        for (row, &digit) in rows.zip(phase_digits) {
            if digit == 0 {
                continue;
            }
            if let Some(entry) = row.get(usize::from(digit.unsigned_abs() - 1)) {
                *sum = curve.add(sum, entry, (digit < 0) != negate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ec::field::small;
    use crate::crypto::ed25519::point::tests::{affine, multiply};
    use crate::crypto::ed25519::L;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Sums with the table (all phases, doubling between them) as `verify` does.
    fn table_multiply(curve: &Curve, table: &Table, k: &Limbs<8>, negate: bool) -> Extended {
        let digits = table.digits(k);
        let mut sum = curve.identity();
        for phase in (0..table.stride()).rev() {
            if phase + 1 < table.stride() {
                for _ in 0..table.window() {
                    sum = curve.double(&sum);
                }
            }
            table.add_phase(curve, &mut sum, &digits, phase, negate);
        }
        sum
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn table_sums_equal_double_and_add() {
        let curve = Curve::new();
        let point = affine(&curve, &multiply(&curve, &curve.base, &small(12345)));
        let mut l_minus_1 = L;
        l_minus_1[0] -= 1;
        let mut scalars = vec![small(1), small(77), l_minus_1];
        // xorshift limbs below 2^252 < L.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3 {
            let mut k = [0u32; 8];
            for limb in &mut k {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *limb = state as u32;
            }
            k[7] &= 0x0fff_ffff;
            scalars.push(k);
        }
        for (window, stride) in [(4, 1), (5, 2), (3, 3), (6, 1)] {
            let table = Table::new(&curve, &point, Shape::new(253, window, stride)).unwrap();
            for k in &scalars {
                let expected = affine(&curve, &multiply(&curve, &point, k));
                let sum = table_multiply(&curve, &table, k, false);
                assert_eq!(affine(&curve, &sum), expected);
                let difference = table_multiply(&curve, &table, k, true);
                assert_eq!(affine(&curve, &difference).x, curve.p.neg(&expected.x));
            }
            assert!(curve.is_identity(&table_multiply(&curve, &table, &L, false)));
        }
    }
}
