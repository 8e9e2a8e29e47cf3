//! Arithmetic modulo an odd N×32-bit modulus: the field prime p and the group
//! order n of a curve share this code, for the NIST curves and for Ed25519.
//!
//! Limbs are 32 bits, least significant first, because wasm32 multiplies at most
//! 64 bits wide: a 32×32→64 product is one `i64.mul`, a 64×64→128 one is a call.
//! Multiplication is Montgomery's (values are stored as `aR mod m`, R = 2^(32N)),
//! which works for any odd modulus, so both curves and both moduli use one routine.
//!
//! Variable time throughout (early exits, data-dependent branches): callers only
//! ever pass public values.

use super::curves::{P256_P, P384_P};

/// A little-endian number of N 32-bit limbs.
pub type Limbs<const N: usize> = [u32; N];

/// Adds with carry, returning (sum mod 2^(32N), carry out).
#[inline(always)]
pub fn add_carry<const N: usize>(a: &Limbs<N>, b: &Limbs<N>) -> (Limbs<N>, bool) {
    // `if let` rather than Option combinators: at opt-level "z" those stay calls.
    if let Some(sum) = sized(a, b, b, |a, b, _| add_8(a, b)) {
        return sum;
    }
    if let Some(sum) = sized(a, b, b, |a, b, _| add_12(a, b)) {
        return sum;
    }
    add_carry_generic(a, b)
}

/// Subtracts with borrow, returning (difference mod 2^(32N), borrow out).
#[inline(always)]
fn sub_borrow<const N: usize>(a: &Limbs<N>, b: &Limbs<N>) -> (Limbs<N>, bool) {
    if let Some(difference) = sized(a, b, b, |a, b, _| sub_8(a, b)) {
        return difference;
    }
    if let Some(difference) = sized(a, b, b, |a, b, _| sub_12(a, b)) {
        return difference;
    }
    sub_borrow_generic(a, b)
}

fn add_carry_generic<const N: usize>(a: &Limbs<N>, b: &Limbs<N>) -> (Limbs<N>, bool) {
    let mut sum = [0u32; N];
    let mut carry = 0u64;
    for ((out, &x), &y) in sum.iter_mut().zip(a).zip(b) {
        let total = u64::from(x) + u64::from(y) + carry;
        *out = total as u32;
        carry = total >> 32;
    }
    (sum, carry != 0)
}

fn sub_borrow_generic<const N: usize>(a: &Limbs<N>, b: &Limbs<N>) -> (Limbs<N>, bool) {
    let mut difference = [0u32; N];
    let mut borrow = false;
    for ((out, &x), &y) in difference.iter_mut().zip(a).zip(b) {
        let (partial, under1) = x.overflowing_sub(y);
        let (value, under2) = partial.overflowing_sub(u32::from(borrow));
        *out = value;
        borrow = under1 || under2;
    }
    (difference, borrow)
}

/// a < b as unsigned integers.
pub fn less_than<const N: usize>(a: &Limbs<N>, b: &Limbs<N>) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

pub fn is_zero<const N: usize>(a: &Limbs<N>) -> bool {
    a.iter().all(|&limb| limb == 0)
}

fn is_one<const N: usize>(a: &Limbs<N>) -> bool {
    let mut limbs = a.iter();
    limbs.next() == Some(&1) && limbs.all(|&limb| limb == 0)
}

/// Shifts right by `shift` bits (1..=31), `top` supplying the bits shifted in.
fn shift_right<const N: usize>(a: &mut Limbs<N>, shift: u32, top: u32) {
    let mut incoming = top << (32 - shift);
    for limb in a.iter_mut().rev() {
        let outgoing = *limb << (32 - shift);
        *limb = (*limb >> shift) | incoming;
        incoming = outgoing;
    }
}

pub fn small<const N: usize>(value: u32) -> Limbs<N> {
    let mut limbs = [0u32; N];
    if let Some(low) = limbs.first_mut() {
        *low = value;
    }
    limbs
}

/// The integer with these big-endian bytes, if there are exactly 4N of them.
pub fn from_be_bytes<const N: usize>(bytes: &[u8]) -> Option<Limbs<N>> {
    if bytes.len() != 4 * N {
        return None;
    }
    let mut limbs = [0u32; N];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.rchunks_exact(4)) {
        *limb = u32::from_be_bytes(chunk.try_into().ok()?);
    }
    Some(limbs)
}

/// An odd modulus m with its Montgomery constants; elements are kept fully reduced
/// (in [0, m)), so equal values have equal limbs.
#[derive(Clone, Debug)]
pub struct Modulus<const N: usize> {
    pub m: Limbs<N>,
    /// -m^-1 mod 2^32, for Montgomery reduction.
    m_neg_inv: u32,
    /// R mod m: 1 in Montgomery form.
    pub one: Limbs<N>,
    /// R^2 mod m, which converts into Montgomery form.
    r2: Limbs<N>,
    /// R^3 mod m, which turns a plain inverse of a Montgomery value back into one.
    r3: Limbs<N>,
    /// m is the P-256 or P-384 prime, whose products take [`mul_p256`] or
    /// [`mul_p384`].
    special_prime: bool,
}

impl<const N: usize> Modulus<N> {
    /// `m` must be odd; tests check the constants this derives. Only callers that
    /// pass arbitrary N-limb values to [`Self::reduce_once`] also need m above
    /// 2^(32N-1): true of the NIST curves' p and n, not of Ed25519's p and L.
    pub fn new(m: Limbs<N>) -> Self {
        let low = m.first().copied().unwrap_or(1);
        // Newton's iteration doubles the correct low bits each step: 1, 2, 4, ... 32.
        let mut inverse = 1u32;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u32.wrapping_sub(low.wrapping_mul(inverse)));
        }
        let mut modulus = Self {
            m,
            m_neg_inv: inverse.wrapping_neg(),
            one: [0; N],
            r2: [0; N],
            r3: [0; N],
            special_prime: m.as_slice() == P256_P.as_slice() || m.as_slice() == P384_P.as_slice(),
        };
        // 2^k mod m by doubling from 1: k = 32N gives R, k = 64N gives R^2.
        let mut power = small::<N>(1);
        for _ in 0..32 * N {
            power = modulus.add(&power, &power);
        }
        modulus.one = power;
        for _ in 0..32 * N {
            power = modulus.add(&power, &power);
        }
        modulus.r2 = power;
        modulus.r3 = modulus.mul(&power, &power);
        modulus
    }

    /// Subtracts m once if needed; `a` must be below 2m.
    pub fn reduce_once(&self, a: &Limbs<N>) -> Limbs<N> {
        self.reduce_wide(a, false)
    }

    /// (a + overflow·R) mod m for a value below 2m: a - m unless that borrows
    /// without the overflow bit to cancel it (one pass, no separate comparison).
    fn reduce_wide(&self, a: &Limbs<N>, overflow: bool) -> Limbs<N> {
        let (difference, borrow) = sub_borrow(a, &self.m);
        if borrow && !overflow {
            *a
        } else {
            difference
        }
    }

    pub fn add(&self, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        let (sum, carry) = add_carry(a, b);
        self.reduce_wide(&sum, carry)
    }

    pub fn sub(&self, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        let (difference, borrow) = sub_borrow(a, b);
        if borrow {
            add_carry(&difference, &self.m).0
        } else {
            difference
        }
    }

    pub fn neg(&self, a: &Limbs<N>) -> Limbs<N> {
        if is_zero(a) {
            *a
        } else {
            sub_borrow(&self.m, a).0
        }
    }

    /// a·b·R^-1 mod m, for a, b < m (one of them may be up to R).
    ///
    /// Interleaves multiplication and reduction (CIOS): each pass adds a·b_i and a
    /// multiple q·m chosen to zero the low limb, then drops that limb. Every u64 sum
    /// is at most (2^32-1)^2 + 2·(2^32-1) = 2^64 - 1, so none overflows.
    ///
    /// Nearly all verification time is spent here. The release profile optimises
    /// for size and so does not unroll loops, which leaves the accumulator in
    /// memory; the two sizes in use get unrolled kernels (twice as fast under V8)
    /// and the size checks below fold away at compile time.
    pub fn mul(&self, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        if self.special_prime {
            if let Some(product) = sized(a, b, &self.m, |a, b, _| mul_p256(a, b)) {
                return self.finish_mul(product);
            }
            if let Some(product) = sized(a, b, &self.m, |a, b, _| mul_p384(a, b)) {
                return self.finish_mul(product);
            }
        }
        if let Some(product) = sized(a, b, &self.m, |a, b, m| mul_8(a, b, m, self.m_neg_inv)) {
            return self.finish_mul(product);
        }
        if let Some(product) = sized(a, b, &self.m, |a, b, m| mul_12(a, b, m, self.m_neg_inv)) {
            return self.finish_mul(product);
        }
        self.mul_generic(a, b)
    }

    /// Reduces a CIOS result (t, whether t overflowed R) below m: it is below 2m.
    fn finish_mul(&self, (t, overflow): (Limbs<N>, bool)) -> Limbs<N> {
        self.reduce_wide(&t, overflow)
    }

    /// [`Self::mul`] for any limb count, as loops.
    fn mul_generic(&self, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        let a0 = u64::from(a.first().copied().unwrap_or(0));
        let m0 = u64::from(self.m.first().copied().unwrap_or(0));
        let mut t = [0u32; N];
        let mut t_top = 0u64;
        for &b_i in b {
            let b_i = u64::from(b_i);
            let low = u64::from(t.first().copied().unwrap_or(0)) + a0 * b_i;
            let q = u64::from((low as u32).wrapping_mul(self.m_neg_inv));
            let mut carry_ab = low >> 32;
            let mut carry_qm = (u64::from(low as u32) + q * m0) >> 32;
            let mut next = [0u32; N];
            for (out, ((&t_j, &a_j), &m_j)) in
                next.iter_mut().zip(t.iter().zip(a).zip(&self.m).skip(1))
            {
                let product = u64::from(t_j) + u64::from(a_j) * b_i + carry_ab;
                carry_ab = product >> 32;
                let reduced = (product & 0xffff_ffff) + u64::from(m_j) * q + carry_qm;
                carry_qm = reduced >> 32;
                *out = reduced as u32;
            }
            let top = t_top + carry_ab + carry_qm;
            if let Some(last) = next.last_mut() {
                *last = top as u32;
            }
            t_top = top >> 32;
            t = next;
        }
        if t_top != 0 {
            sub_borrow(&t, &self.m).0
        } else {
            self.reduce_once(&t)
        }
    }

    pub fn square(&self, a: &Limbs<N>) -> Limbs<N> {
        self.mul(a, a)
    }

    pub fn to_montgomery(&self, a: &Limbs<N>) -> Limbs<N> {
        self.mul(a, &self.r2)
    }

    pub fn leave_montgomery(&self, a: &Limbs<N>) -> Limbs<N> {
        self.mul(a, &small(1))
    }

    /// a^-1 mod m for a plain (not Montgomery) a in [1, m), by the binary extended
    /// Euclidean algorithm; m must be prime, which makes every such a invertible.
    ///
    /// Invariants: x1·a ≡ u and x2·a ≡ v (mod m); u + v shrinks every step.
    pub fn invert_plain(&self, a: &Limbs<N>) -> Option<Limbs<N>> {
        if is_zero(a) || !less_than(a, &self.m) {
            return None;
        }
        let (mut u, mut v) = (*a, self.m);
        let (mut x1, mut x2) = (small::<N>(1), [0u32; N]);
        loop {
            if is_zero(&u) || is_zero(&v) {
                return None;
            }
            self.remove_twos(&mut u, &mut x1);
            self.remove_twos(&mut v, &mut x2);
            if is_one(&u) {
                return Some(x1);
            }
            if is_one(&v) {
                return Some(x2);
            }
            if less_than(&u, &v) {
                v = sub_borrow(&v, &u).0;
                x2 = self.sub(&x2, &x1);
            } else {
                u = sub_borrow(&u, &v).0;
                x1 = self.sub(&x1, &x2);
            }
        }
    }

    /// The Montgomery form of a^-1 for a Montgomery-form a.
    pub fn invert(&self, a: &Limbs<N>) -> Option<Limbs<N>> {
        // invert_plain(aR) = a^-1·R^-1; times R^3, reduced once, is a^-1·R.
        self.invert_plain(a)
            .map(|inverse| self.mul(&inverse, &self.r3))
    }

    /// Divides a nonzero u by 2^k until it is odd, and x by the same 2^k mod m,
    /// up to 31 bits per pass rather than one.
    fn remove_twos(&self, u: &mut Limbs<N>, x: &mut Limbs<N>) {
        loop {
            // A zero low limb shifts by 31, and the next pass continues.
            let shift = u.first().map_or(0, |low| low.trailing_zeros().min(31));
            if shift == 0 {
                return;
            }
            shift_right(u, shift, 0);
            self.divide_by_power_of_two(x, shift);
        }
    }

    /// x/2^k mod m for x < m, k in 1..=31: adding c·m with c = x·(-m^-1) mod 2^k
    /// makes the low k bits zero, and (x + c·m)/2^k < (m + (2^k - 1)·m)/2^k = m.
    fn divide_by_power_of_two(&self, x: &mut Limbs<N>, shift: u32) {
        let low = x.first().copied().unwrap_or(0);
        let c = u64::from(low.wrapping_mul(self.m_neg_inv) & ((1u32 << shift) - 1));
        let mut carry = 0u64;
        for (limb, &m) in x.iter_mut().zip(&self.m) {
            let total = u64::from(*limb) + c * u64::from(m) + carry;
            *limb = total as u32;
            carry = total >> 32;
        }
        shift_right(x, shift, carry as u32);
    }
}

/// Runs a kernel for K limbs when N = K (known at compile time), else `None`.
#[inline(always)]
fn sized<const N: usize, const K: usize>(
    a: &Limbs<N>,
    b: &Limbs<N>,
    m: &Limbs<N>,
    kernel: impl Fn(&Limbs<K>, &Limbs<K>, &Limbs<K>) -> (Limbs<K>, bool),
) -> Option<(Limbs<N>, bool)> {
    let a: &Limbs<K> = a.as_slice().try_into().ok()?;
    let b: &Limbs<K> = b.as_slice().try_into().ok()?;
    let m: &Limbs<K> = m.as_slice().try_into().ok()?;
    let (t, overflow) = kernel(a, b, m);
    Some((t.as_slice().try_into().ok()?, overflow))
}

/// An unrolled CIOS pass over each limb of b (see [`Modulus::mul`]); the constant
/// indices let the compiler keep t in registers. Pairs are (j, j - 1).
macro_rules! montgomery_kernel {
    ($name:ident, $n:literal, $last:literal, [$(($j:literal, $previous:literal)),*]) => {
        fn $name(
            a: &Limbs<$n>,
            b: &Limbs<$n>,
            m: &Limbs<$n>,
            m_neg_inv: u32,
        ) -> (Limbs<$n>, bool) {
            let mut t = [0u32; $n];
            let mut top = 0u64;
            for &b_i in b {
                let b_i = u64::from(b_i);
                let low = u64::from(t[0]) + u64::from(a[0]) * b_i;
                let q = u64::from((low as u32).wrapping_mul(m_neg_inv));
                let mut carry_ab = low >> 32;
                let mut carry_qm = (u64::from(low as u32) + q * u64::from(m[0])) >> 32;
                $(
                    let product = u64::from(t[$j]) + u64::from(a[$j]) * b_i + carry_ab;
                    carry_ab = product >> 32;
                    let reduced = (product & 0xffff_ffff) + u64::from(m[$j]) * q + carry_qm;
                    carry_qm = reduced >> 32;
                    t[$previous] = reduced as u32;
                )*
                let sum = top + carry_ab + carry_qm;
                t[$last] = sum as u32;
                top = sum >> 32;
            }
            (t, top != 0)
        }
    };
}

/// CIOS products modulo a NIST prime p ≡ -1 (mod 2^32) of special shape, with
/// half the multiplications of [`montgomery_kernel`]. As -p^-1 ≡ 1, each pass's q
/// is t's low limb, and p is a sum of signed powers of 2^32, so q·p is q added to
/// or subtracted from a few fixed limbs instead of q times every limb of p:
/// (t + q·p) / 2^32 is t shifted down one limb (its low limb q cancels the -1 of
/// p) plus q at the limbs `adds` and minus q at the limbs `subs`. The passes keep
/// t below 2p as CIOS does; t gets one more limb and a top bit while a·b_i is in.
macro_rules! special_prime_kernel {
    ($name:ident, $n:literal, [$($j:literal),*], adds [$($add:literal),*], subs [$($sub:literal),*]) => {
        fn $name(a: &Limbs<$n>, b: &Limbs<$n>) -> (Limbs<$n>, bool) {
            let mut t = [0u32; $n + 1];
            for &b_i in b {
                let b_i = u64::from(b_i);
                let mut carry = 0u64;
                $(
                    let sum = u64::from(t[$j]) + u64::from(a[$j]) * b_i + carry;
                    t[$j] = sum as u32;
                    carry = sum >> 32;
                )*
                let sum = u64::from(t[$n]) + carry;
                t[$n] = sum as u32;
                let top = (sum >> 32) as i64;
                let q = i64::from(t[0]);
                let mut adjust = [0i64; $n];
                $(adjust[$add] = q;)*
                $(adjust[$sub] = -q;)*
                // Limb j of the result is limb j + 1 of t plus its adjustment; the
                // carry is signed, as q is also subtracted.
                let mut carry = 0i64;
                $(
                    let sum = i64::from(t[$j + 1]) + adjust[$j] + carry;
                    t[$j] = sum as u32;
                    carry = sum >> 32;
                )*
                t[$n] = (top + carry) as u32;
            }
            let mut low = [0u32; $n];
            low.copy_from_slice(&t[..$n]);
            (low, t[$n] != 0)
        }
    };
}

// P-256: p = 2^256 - 2^224 + 2^192 + 2^96 - 1 ([`P256_P`]), so q·p / 2^32 adds q
// at 2^64, 2^160 and 2^224 and subtracts it at 2^192.
special_prime_kernel!(mul_p256, 8, [0, 1, 2, 3, 4, 5, 6, 7], adds [2, 5, 7], subs [6]);
// P-384: p = 2^384 - 2^128 - 2^96 + 2^32 - 1 ([`P384_P`]): q at 2^0 and 2^352,
// minus q at 2^64 and 2^96.
special_prime_kernel!(
    mul_p384,
    12,
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    adds [0, 11],
    subs [2, 3]
);

/// Unrolled [`add_carry`] and [`sub_borrow`] for one size.
macro_rules! carry_kernels {
    ($add:ident, $sub:ident, $n:literal, [$($i:literal),*]) => {
        #[inline(always)]
        fn $add(a: &Limbs<$n>, b: &Limbs<$n>) -> (Limbs<$n>, bool) {
            let mut sum = [0u32; $n];
            let mut carry = 0u64;
            $(
                let total = u64::from(a[$i]) + u64::from(b[$i]) + carry;
                sum[$i] = total as u32;
                carry = total >> 32;
            )*
            (sum, carry != 0)
        }

        #[inline(always)]
        fn $sub(a: &Limbs<$n>, b: &Limbs<$n>) -> (Limbs<$n>, bool) {
            let mut difference = [0u32; $n];
            let mut borrow = 0u64;
            $(
                // A borrow wraps the u64, setting its top bit.
                let total = u64::from(a[$i]).wrapping_sub(u64::from(b[$i])).wrapping_sub(borrow);
                difference[$i] = total as u32;
                borrow = total >> 63;
            )*
            (difference, borrow != 0)
        }
    };
}

carry_kernels!(add_8, sub_8, 8, [0, 1, 2, 3, 4, 5, 6, 7]);
carry_kernels!(add_12, sub_12, 12, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

montgomery_kernel!(
    mul_8,
    8,
    7,
    [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6)]
);
montgomery_kernel!(
    mul_12,
    12,
    11,
    [
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 3),
        (5, 4),
        (6, 5),
        (7, 6),
        (8, 7),
        (9, 8),
        (10, 9),
        (11, 10)
    ]
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ec::curves::{P256_N, P256_P, P384_N, P384_P};
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Deterministic test values spread over [0, m): xorshift limbs, reduced.
    fn samples<const N: usize>(modulus: &Modulus<N>, count: usize) -> Vec<Limbs<N>> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut out = vec![[0u32; N], small(1), modulus.sub(&[0u32; N], &small(1))];
        while out.len() < count {
            let mut limbs = [0u32; N];
            for limb in &mut limbs {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *limb = state as u32;
            }
            // Below 2m because m > 2^(32N-1).
            out.push(modulus.reduce_once(&limbs));
        }
        out
    }

    /// a·b mod m by shift-and-add, independent of Montgomery reduction.
    fn reference_mul<const N: usize>(modulus: &Modulus<N>, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        let mut result = [0u32; N];
        for bit in (0..32 * N).rev() {
            result = modulus.add(&result, &result);
            if (b[bit / 32] >> (bit % 32)) & 1 == 1 {
                result = modulus.add(&result, a);
            }
        }
        result
    }

    fn check_modulus<const N: usize>(m: Limbs<N>) {
        let modulus = Modulus::new(m);
        let values = samples(&modulus, 12);
        for a in &values {
            let a_mont = modulus.to_montgomery(a);
            assert_eq!(modulus.leave_montgomery(&a_mont), *a);
            assert_eq!(modulus.sub(&modulus.add(a, &values[5]), &values[5]), *a);
            assert!(is_zero(&modulus.add(a, &modulus.neg(a))));
            for b in &values {
                let b_mont = modulus.to_montgomery(b);
                assert_eq!(
                    modulus.mul(&a_mont, &b_mont),
                    modulus.mul_generic(&a_mont, &b_mont)
                );
                let product = modulus.leave_montgomery(&modulus.mul(&a_mont, &b_mont));
                assert_eq!(product, reference_mul(&modulus, a, b));
            }
            if !is_zero(a) {
                let inverse = modulus.invert_plain(a).unwrap();
                let product = modulus.leave_montgomery(
                    &modulus.mul(&modulus.to_montgomery(a), &modulus.to_montgomery(&inverse)),
                );
                assert_eq!(product, small(1));
                let inverse_mont = modulus.invert(&a_mont).unwrap();
                assert_eq!(modulus.mul(&inverse_mont, &a_mont), modulus.one);
            }
        }
        assert_eq!(modulus.invert_plain(&[0u32; N]), None);
        assert_eq!(modulus.invert_plain(&m), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn field_and_order_arithmetic_match_references() {
        check_modulus(P256_P);
        check_modulus(P256_N);
        check_modulus(P384_P);
        check_modulus(P384_N);
    }

    /// The special-prime kernels against the general one, on many more pairs
    /// (including inputs up to R, which `mul` allows for one operand).
    #[wasm_bindgen_test(unsupported = test)]
    fn special_prime_kernels_match_the_general_kernel() {
        let p256 = Modulus::new(P256_P);
        let values = samples(&p256, 60);
        for a in &values {
            for b in values.iter().chain([&[u32::MAX; 8]]) {
                let general = mul_8(a, b, &P256_P, p256.m_neg_inv);
                assert_eq!(mul_p256(a, b), general);
            }
        }
        let p384 = Modulus::new(P384_P);
        let values = samples(&p384, 60);
        for a in &values {
            for b in values.iter().chain([&[u32::MAX; 12]]) {
                let general = mul_12(a, b, &P384_P, p384.m_neg_inv);
                assert_eq!(mul_p384(a, b), general);
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bytes_are_big_endian_and_exact_length() {
        let mut bytes = [0u8; 32];
        bytes[31] = 1;
        bytes[0] = 0x80;
        let limbs = from_be_bytes::<8>(&bytes).unwrap();
        assert_eq!(limbs[0], 1);
        assert_eq!(limbs[7], 0x8000_0000);
        assert_eq!(from_be_bytes::<8>(&bytes[1..]), None);
    }
}
