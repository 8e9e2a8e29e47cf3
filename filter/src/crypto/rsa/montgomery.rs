//! Modular exponentiation for RSA verification, in Montgomery form on 32-bit limbs.
//!
//! Variable time: branches and early exits depend on the values. That is safe only
//! because RSA verification handles public data (key, signature, message); never use
//! this for signing or anything secret.
//!
//! Limbs are `u32` with `u64` products because wasm32 has no 64×64→128 multiply:
//! under V8 that makes 32-bit limbs the fast choice. Numbers are little-endian limb
//! vectors. A residue takes `len + 1` limbs (`len` = limbs of n): the spare top limb
//! holds the bit that a Montgomery product may carry before its final subtraction.

use std::cmp::Ordering;

/// An odd modulus n > 1 with its Montgomery constants (R = 2^(32·len)), computed
/// once per key so that each verification only multiplies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modulus {
    /// n, little-endian; the top limb is non-zero.
    limbs: Vec<u32>,
    /// -n⁻¹ mod 2^32.
    n0_inv: u32,
    /// R² mod n, as a residue: multiplying by it enters Montgomery form.
    r_squared: Vec<u32>,
}

/// Buffers reused by every product of one exponentiation.
struct Scratch {
    /// The product being reduced (`len + 1` limbs).
    product: Vec<u32>,
    /// A full square before its reduction (`2·len` limbs).
    wide: Vec<u32>,
}

impl Modulus {
    /// `None` unless `limbs` (little-endian, leading zero limbs allowed) is odd and > 1.
    pub fn new(mut limbs: Vec<u32>) -> Option<Self> {
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        let low = *limbs.first()?;
        if low % 2 == 0 || limbs == [1] {
            return None;
        }
        let mut modulus = Self {
            limbs,
            n0_inv: negated_inverse(low),
            r_squared: Vec::new(),
        };
        modulus.r_squared = modulus.compute_r_squared();
        Some(modulus)
    }

    /// `base^exponent mod n` as `len` limbs, or `None` unless `base < n`.
    ///
    /// Left-to-right square-and-multiply. The last multiplication (e is odd for RSA)
    /// takes the plain base rather than its Montgomery form, which leaves Montgomery
    /// form for free: (b^(e-1)·R)·b·R⁻¹ = b^e. For e = 65537 that is 1 + 16 + 1
    /// products.
    pub fn pow(&self, base: &[u32], exponent: u64) -> Option<Vec<u32>> {
        let len = self.limbs.len();
        if base.iter().skip(len).any(|&limb| limb != 0) {
            return None;
        }
        let mut plain = base.to_vec();
        plain.resize(len + 1, 0);
        if !self.is_reduced(&plain) {
            return None;
        }
        if exponent == 0 {
            let mut one = vec![0; len];
            if let Some(low) = one.first_mut() {
                *low = 1;
            }
            return Some(one);
        }
        let mut scratch = Scratch {
            product: vec![0; len + 1],
            wide: vec![0; 2 * len],
        };
        let entered = self.to_montgomery(&plain, &mut scratch);
        let mut x = entered.clone();
        let top = u64::BITS - 1 - exponent.leading_zeros();
        for bit in (1..top).rev() {
            self.square(&mut x, &mut scratch);
            if (exponent >> bit) & 1 == 1 {
                self.multiply(&mut x, &entered, &mut scratch);
            }
        }
        if top > 0 {
            self.square(&mut x, &mut scratch);
            if exponent & 1 == 1 {
                self.multiply(&mut x, &plain, &mut scratch);
                x.truncate(len);
                return Some(x);
            }
        }
        Some(self.truncated(x, &mut scratch))
    }

    /// Leaves Montgomery form (multiplies by 1) and drops the spare limb.
    fn truncated(&self, mut x: Vec<u32>, scratch: &mut Scratch) -> Vec<u32> {
        let mut one = vec![0; x.len()];
        if let Some(low) = one.first_mut() {
            *low = 1;
        }
        self.multiply(&mut x, &one, scratch);
        x.truncate(self.limbs.len());
        x
    }

    fn to_montgomery(&self, x: &[u32], scratch: &mut Scratch) -> Vec<u32> {
        let mut entered = self.r_squared.clone();
        self.multiply(&mut entered, x, scratch);
        entered
    }

    /// x ← x·y·R⁻¹ mod n.
    fn multiply(&self, x: &mut Vec<u32>, y: &[u32], scratch: &mut Scratch) {
        self.montgomery_product(&mut scratch.product, x, y);
        std::mem::swap(x, &mut scratch.product);
    }

    /// x ← x²·R⁻¹ mod n.
    fn square(&self, x: &mut Vec<u32>, scratch: &mut Scratch) {
        square_wide(&mut scratch.wide, x.get(..self.limbs.len()).unwrap_or(x));
        self.reduce_wide(&mut scratch.product, &mut scratch.wide);
        std::mem::swap(x, &mut scratch.product);
    }

    /// t ← a·b·R⁻¹ mod n for a, b < n (`len` limbs used of each; t has `len + 1`).
    ///
    /// FIOS: one pass per limb of b both adds a·bᵢ and cancels the low limb with a
    /// multiple of n, shifting down one limb as it writes. Two carries keep every
    /// sum within u64: (2^32−1) + (2^32−1)² + (2^32−1) = 2^64 − 1. The invariant
    /// t < 2n keeps t's top limb at 0 or 1.
    fn montgomery_product(&self, t: &mut [u32], a: &[u32], b: &[u32]) {
        t.fill(0);
        let (Some((&n0, n_rest)), Some((&a0, a_rest))) =
            (self.limbs.split_first(), a.split_first())
        else {
            return;
        };
        for &b_limb in b.iter().take(self.limbs.len()) {
            let Some((t0, t_rest)) = t.split_first_mut() else {
                return;
            };
            let b_limb = u64::from(b_limb);
            let first = u64::from(*t0) + u64::from(a0) * b_limb;
            let m = u64::from((first as u32).wrapping_mul(self.n0_inv));
            let cancelled = (first & 0xffff_ffff) + m * u64::from(n0);
            let (mut carry_ab, mut carry_mn) = (first >> 32, cancelled >> 32);
            let mut previous = t0;
            let mut rest = t_rest.iter_mut();
            // `a_rest` and `n_rest` first: zip stops on them without consuming the top limb.
            for ((&a_limb, &n_limb), t_limb) in a_rest.iter().zip(n_rest).zip(&mut rest) {
                let ab = u64::from(*t_limb) + u64::from(a_limb) * b_limb + carry_ab;
                let mn = (ab & 0xffff_ffff) + m * u64::from(n_limb) + carry_mn;
                *previous = mn as u32;
                carry_ab = ab >> 32;
                carry_mn = mn >> 32;
                previous = t_limb;
            }
            if let Some(top) = rest.next() {
                let sum = u64::from(*top) + carry_ab + carry_mn;
                *previous = sum as u32;
                *top = (sum >> 32) as u32;
            }
        }
        self.subtract_if_not_reduced(t);
    }

    /// t ← w·R⁻¹ mod n for a `2·len`-limb w < n·R (w is consumed as scratch).
    ///
    /// Each step adds m·n to cancel w's lowest live limb; the step's carry out of the
    /// window lands where the next step's carry goes, so one spare bit (`overflow`)
    /// replaces a carry chain.
    fn reduce_wide(&self, t: &mut [u32], w: &mut [u32]) {
        let len = self.limbs.len();
        let mut overflow = 0u64;
        for start in 0..len {
            let Some(window) = w.get_mut(start..=start + len) else {
                return;
            };
            let Some((top, low)) = window.split_last_mut() else {
                return;
            };
            let m = u64::from(low.first().map_or(0, |&w0| w0.wrapping_mul(self.n0_inv)));
            let carry = add_multiple(low, &self.limbs, m);
            let sum = u64::from(*top) + carry + overflow;
            *top = sum as u32;
            overflow = sum >> 32;
        }
        let high = w.get(len..).unwrap_or_default();
        for (t_limb, &w_limb) in t.iter_mut().zip(high) {
            *t_limb = w_limb;
        }
        if let Some(spare) = t.last_mut() {
            *spare = overflow as u32;
        }
        self.subtract_if_not_reduced(t);
    }

    /// For a residue t < 2n: t ← t − n if t ≥ n.
    fn subtract_if_not_reduced(&self, t: &mut [u32]) {
        if self.is_reduced(t) {
            return;
        }
        let mut borrow = false;
        for (t_limb, &n_limb) in t.iter_mut().zip(&self.limbs) {
            let (difference, borrow_n) = t_limb.overflowing_sub(n_limb);
            let (difference, borrow_in) = difference.overflowing_sub(u32::from(borrow));
            *t_limb = difference;
            borrow = borrow_n || borrow_in;
        }
        if let Some(spare) = t.get_mut(self.limbs.len()) {
            *spare = spare.wrapping_sub(u32::from(borrow));
        }
    }

    /// x < n, for an x of `len + 1` limbs.
    fn is_reduced(&self, x: &[u32]) -> bool {
        let Some((&spare, low)) = x.split_last() else {
            return false;
        };
        spare == 0 && low.iter().rev().cmp(self.limbs.iter().rev()) == Ordering::Less
    }

    /// R² mod n = Montgomery form of 2^(32·len), from the Montgomery form of a
    /// small power of two 2^k, where 32·len = k·2^s: doubling 2^(bits−1) < n up to
    /// 2^k·R mod n, then s squarings. With k ≥ 64 that is about a hundred cheap
    /// doublings and five squarings per key, on every JWKS refresh.
    fn compute_r_squared(&self) -> Vec<u32> {
        let len = self.limbs.len();
        let top_bits = self
            .limbs
            .last()
            .map_or(0, |&top| u32::BITS - top.leading_zeros());
        let bits = 32 * (len - 1) + top_bits as usize;
        let power = 32 * len;
        let mut squarings = 0;
        while (power >> squarings) % 2 == 0 && power >> (squarings + 1) >= 64 {
            squarings += 1;
        }
        let mut x = vec![0; len + 1];
        if let Some(limb) = x.get_mut((bits - 1) / 32) {
            *limb = 1 << ((bits - 1) % 32);
        }
        // 32·len − (bits − 1) doublings reach R mod n, k more reach 2^k·R mod n.
        for _ in 0..(power + 1 - bits) + (power >> squarings) {
            self.double(&mut x);
        }
        let mut scratch = Scratch {
            product: vec![0; len + 1],
            wide: vec![0; 2 * len],
        };
        for _ in 0..squarings {
            self.square(&mut x, &mut scratch);
        }
        x
    }

    /// x ← 2x mod n for a residue x < n.
    fn double(&self, x: &mut [u32]) {
        let mut carry = 0;
        for limb in x.iter_mut() {
            let shifted = (*limb << 1) | carry;
            carry = *limb >> 31;
            *limb = shifted;
        }
        self.subtract_if_not_reduced(x);
    }
}

/// -n⁻¹ mod 2^32 for odd n, by Newton's iteration: each step doubles the correct low
/// bits, and n·n ≡ 1 (mod 8) gives the first three.
fn negated_inverse(n: u32) -> u32 {
    let mut inverse = n;
    for _ in 0..4 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(n.wrapping_mul(inverse)));
    }
    inverse.wrapping_neg()
}

/// w ← w + k·a over the shorter of the two, returning the carry out: one row of a
/// square or of a reduction, where nearly all of an RSA verification is spent.
/// Every u64 sum stays below 2^64: (2^32−1) + (2^32−1)² + (2^32−1).
fn add_multiple(w: &mut [u32], a: &[u32], k: u64) -> u64 {
    let mut carry = 0u64;
    for (w_limb, &a_limb) in w.iter_mut().zip(a) {
        let sum = u64::from(*w_limb) + k * u64::from(a_limb) + carry;
        *w_limb = sum as u32;
        carry = sum >> 32;
    }
    carry
}

/// w ← a² (w has `2·a.len()` limbs): each cross product once, doubled, plus the
/// squares on the diagonal; about half the multiplications of a general product.
fn square_wide(w: &mut [u32], a: &[u32]) {
    w.fill(0);
    for (i, &a_i) in a.iter().enumerate() {
        let (Some(others), Some(row)) = (a.get(i + 1..), w.get_mut(2 * i + 1..)) else {
            break;
        };
        let Some((row, after)) = row.split_at_mut_checked(others.len()) else {
            break;
        };
        let carry = add_multiple(row, others, u64::from(a_i));
        // Rows before this one end below here, so this limb is still zero.
        if let Some(w_limb) = after.first_mut() {
            *w_limb = carry as u32;
        }
    }
    let mut carry = 0u64;
    for (pair, &a_i) in w.chunks_exact_mut(2).zip(a) {
        let [low, high] = pair else {
            continue;
        };
        let square = u64::from(a_i) * u64::from(a_i);
        let sum_low = 2 * u64::from(*low) + (square & 0xffff_ffff) + carry;
        let sum_high = 2 * u64::from(*high) + (square >> 32) + (sum_low >> 32);
        *low = sum_low as u32;
        *high = sum_high as u32;
        carry = sum_high >> 32;
    }
}

/// Big-endian bytes → little-endian limbs (no length limit; leading zeros kept as
/// zero limbs).
pub fn limbs_from_be_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .rchunks(4)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0u32, |limb, &byte| (limb << 8) | u32::from(byte))
        })
        .collect()
}

/// Little-endian limbs → exactly `len` big-endian bytes, or `None` if the value
/// does not fit.
pub fn be_bytes_from_limbs(limbs: &[u32], len: usize) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = limbs
        .iter()
        .rev()
        .flat_map(|limb| limb.to_be_bytes())
        .collect();
    if bytes.len() < len {
        let mut padded = vec![0; len - bytes.len()];
        padded.append(&mut bytes);
        return Some(padded);
    }
    let excess = bytes.len() - len;
    if bytes.iter().take(excess).any(|&byte| byte != 0) {
        return None;
    }
    Some(bytes.split_off(excess))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Deterministic pseudo-random limbs (xorshift), so failures reproduce.
    fn limbs(seed: u64, count: usize) -> Vec<u32> {
        let mut state = seed | 1;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u32
            })
            .collect()
    }

    /// An odd modulus of exactly `bits` bits.
    fn odd_modulus(seed: u64, bits: usize) -> Vec<u32> {
        let mut n = limbs(seed, bits.div_ceil(32));
        let top_bits = bits - 32 * (n.len() - 1);
        let last = n.last_mut().unwrap();
        *last = (*last >> (32 - top_bits)) | (1 << (top_bits - 1));
        n[0] |= 1;
        n
    }

    // Reference arithmetic: slow and obviously right, on `len + 1`-limb values.

    fn compare(a: &[u32], b: &[u32]) -> Ordering {
        let width = a.len().max(b.len());
        let limb = |x: &[u32], i: usize| x.get(i).copied().unwrap_or(0);
        (0..width)
            .rev()
            .map(|i| limb(a, i).cmp(&limb(b, i)))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    fn subtract(a: &mut [u32], b: &[u32]) {
        let mut borrow = 0i64;
        for (i, limb) in a.iter_mut().enumerate() {
            let difference = i64::from(*limb) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
            *limb = difference as u32;
            borrow = i64::from(difference < 0);
        }
    }

    /// (a + b) mod n for a, b < n.
    fn add_mod(a: &[u32], b: &[u32], n: &[u32]) -> Vec<u32> {
        let mut sum = vec![0u32; n.len() + 1];
        let mut carry = 0u64;
        for (i, limb) in sum.iter_mut().enumerate() {
            let total = u64::from(a.get(i).copied().unwrap_or(0))
                + u64::from(b.get(i).copied().unwrap_or(0))
                + carry;
            *limb = total as u32;
            carry = total >> 32;
        }
        if compare(&sum, n).is_ge() {
            subtract(&mut sum, n);
        }
        sum.truncate(n.len());
        sum
    }

    /// a·b mod n by double-and-add over the bits of b.
    fn mul_mod(a: &[u32], b: &[u32], n: &[u32]) -> Vec<u32> {
        let mut result = vec![0u32; n.len()];
        for i in (0..32 * b.len()).rev() {
            result = add_mod(&result, &result, n);
            if (b[i / 32] >> (i % 32)) & 1 == 1 {
                result = add_mod(&result, a, n);
            }
        }
        result
    }

    fn pow_mod(base: &[u32], exponent: u64, n: &[u32]) -> Vec<u32> {
        let mut one = vec![0u32; n.len()];
        one[0] = 1;
        let mut result = one;
        for i in (0..u64::BITS - exponent.leading_zeros()).rev() {
            result = mul_mod(&result, &result, n);
            if (exponent >> i) & 1 == 1 {
                result = mul_mod(&result, base, n);
            }
        }
        result
    }

    /// `value` reduced below n, `len` limbs.
    fn reduced(mut value: Vec<u32>, n: &[u32]) -> Vec<u32> {
        value.truncate(n.len());
        let top = value.len() - 1;
        value[top] &= (1 << (31 - n[top].leading_zeros())) - 1;
        value
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn negated_inverse_times_n_is_minus_one() {
        for n in [1u32, 3, 0xffff_ffff, 0x8000_0001, 65537] {
            assert_eq!(n.wrapping_mul(negated_inverse(n)), u32::MAX, "{n}");
        }
        for n in limbs(7, 100) {
            assert_eq!((n | 1).wrapping_mul(negated_inverse(n | 1)), u32::MAX);
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn r_squared_matches_repeated_doubling() {
        for (seed, bits) in [(1, 33), (2, 64), (3, 2047), (4, 2048), (5, 2049), (6, 3072)] {
            let n = odd_modulus(seed, bits);
            let modulus = Modulus::new(n.clone()).unwrap();
            let mut expected = vec![0u32; n.len()];
            expected[0] = 1;
            for _ in 0..64 * n.len() {
                expected = add_mod(&expected, &expected, &n);
            }
            expected.push(0);
            assert_eq!(modulus.r_squared, expected, "{bits} bits");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn products_and_squares_match_the_reference() {
        for (seed, bits) in [(11, 32), (12, 95), (13, 1024), (14, 2048), (15, 2081)] {
            let n = odd_modulus(seed, bits);
            let modulus = Modulus::new(n.clone()).unwrap();
            let len = n.len();
            let mut scratch = Scratch {
                product: vec![0; len + 1],
                wide: vec![0; 2 * len],
            };
            let all_ones = reduced(vec![u32::MAX; len], &n);
            let mut n_minus_one = n.clone();
            n_minus_one[0] -= 1;
            let values = [
                reduced(limbs(seed + 100, len), &n),
                reduced(limbs(seed + 200, len), &n),
                all_ones,
                n_minus_one,
                vec![0; len],
            ];
            for a in &values {
                for b in &values {
                    // Montgomery form of a times b leaves Montgomery form: a·b mod n.
                    let mut x = modulus.to_montgomery(&padded(a), &mut scratch);
                    modulus.multiply(&mut x, &padded(b), &mut scratch);
                    assert_eq!(x[..len], mul_mod(a, b, &n)[..], "{bits} bits");
                    assert_eq!(x[len], 0);
                }
                let mut x = modulus.to_montgomery(&padded(a), &mut scratch);
                modulus.square(&mut x, &mut scratch);
                let x = modulus.truncated(x, &mut scratch);
                assert_eq!(x, mul_mod(a, a, &n), "{bits} bits");
            }
        }
    }

    fn padded(value: &[u32]) -> Vec<u32> {
        let mut value = value.to_vec();
        value.push(0);
        value
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn pow_matches_the_reference() {
        for (seed, bits) in [(21, 40), (22, 2048), (23, 2081)] {
            let n = odd_modulus(seed, bits);
            let modulus = Modulus::new(n.clone()).unwrap();
            let base = reduced(limbs(seed + 1, n.len()), &n);
            for exponent in [0, 1, 2, 3, 4, 17, 65537, 65538, (1 << 33) - 1] {
                assert_eq!(
                    modulus.pow(&base, exponent).unwrap(),
                    pow_mod(&base, exponent, &n),
                    "{bits} bits, e = {exponent}"
                );
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn pow_edge_cases() {
        let n = odd_modulus(31, 2048);
        let modulus = Modulus::new(n.clone()).unwrap();
        let zero = vec![0u32; n.len()];
        let mut one = zero.clone();
        one[0] = 1;
        let mut n_minus_one = n.clone();
        n_minus_one[0] -= 1;
        assert_eq!(modulus.pow(&zero, 65537).unwrap(), zero);
        assert_eq!(modulus.pow(&[], 3).unwrap(), zero);
        assert_eq!(modulus.pow(&one, 65537).unwrap(), one);
        assert_eq!(modulus.pow(&n_minus_one, 65537).unwrap(), n_minus_one);
        assert_eq!(modulus.pow(&n_minus_one, 2).unwrap(), one);
        // Extra zero limbs on top are fine; a value ≥ n is not.
        assert_eq!(modulus.pow(&padded(&padded(&one)), 3).unwrap(), one);
        assert!(modulus.pow(&n, 65537).is_none());
        assert!(modulus.pow(&vec![u32::MAX; n.len()], 65537).is_none());
        let mut beyond = one.clone();
        beyond.extend([0, 1]);
        assert!(modulus.pow(&beyond, 3).is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_odd_moduli_above_one() {
        assert!(Modulus::new(vec![]).is_none());
        assert!(Modulus::new(vec![0, 0]).is_none());
        assert!(Modulus::new(vec![1, 0]).is_none());
        assert!(Modulus::new(vec![2, 5]).is_none());
        let modulus = Modulus::new(vec![3, 0, 0]).unwrap();
        assert_eq!(modulus.limbs, [3]);
        assert_eq!(modulus.pow(&[2], 3).unwrap(), [2]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn byte_conversions() {
        assert_eq!(limbs_from_be_bytes(&[]), Vec::<u32>::new());
        assert_eq!(limbs_from_be_bytes(&[1, 2, 3, 4, 5]), [0x0203_0405, 1]);
        assert_eq!(limbs_from_be_bytes(&[0, 0, 0, 0, 9]), [9, 0]);
        assert_eq!(
            be_bytes_from_limbs(&[0x0203_0405, 1], 5).unwrap(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            be_bytes_from_limbs(&[0x0203_0405, 1], 7).unwrap(),
            [0, 0, 1, 2, 3, 4, 5]
        );
        assert_eq!(
            be_bytes_from_limbs(&[0x0203_0405, 0], 4).unwrap(),
            [2, 3, 4, 5]
        );
        assert!(be_bytes_from_limbs(&[0x0203_0405, 1], 4).is_none());
        assert_eq!(be_bytes_from_limbs(&[], 2).unwrap(), [0, 0]);
    }
}
