//! NIST P-256 and P-384 (FIPS 186-5, SEC 2): y^2 = x^3 - 3x + b over GF(p), with a
//! generator G of prime order n. Limbs are little-endian 32-bit words.
//!
//! Each curve's derived constants and generator table are built once per VM, on
//! first use, instead of being embedded: they would add hundreds of KB to the module.

use super::field::Limbs;
use super::point::Affine;
use super::table::Shape;
use super::Curve;
use std::sync::OnceLock;

pub const P256_P: Limbs<8> = [
    0xffffffff, 0xffffffff, 0xffffffff, 0x00000000, 0x00000000, 0x00000000, 0x00000001, 0xffffffff,
];
pub const P256_N: Limbs<8> = [
    0xfc632551, 0xf3b9cac2, 0xa7179e84, 0xbce6faad, 0xffffffff, 0xffffffff, 0x00000000, 0xffffffff,
];
const P256_B: Limbs<8> = [
    0x27d2604b, 0x3bce3c3e, 0xcc53b0f6, 0x651d06b0, 0x769886bc, 0xb3ebbd55, 0xaa3a93e7, 0x5ac635d8,
];
const P256_GX: Limbs<8> = [
    0xd898c296, 0xf4a13945, 0x2deb33a0, 0x77037d81, 0x63a440f2, 0xf8bce6e5, 0xe12c4247, 0x6b17d1f2,
];
const P256_GY: Limbs<8> = [
    0x37bf51f5, 0xcbb64068, 0x6b315ece, 0x2bce3357, 0x7c0f9e16, 0x8ee7eb4a, 0xfe1a7f9b, 0x4fe342e2,
];

pub const P384_P: Limbs<12> = [
    0xffffffff, 0x00000000, 0x00000000, 0xffffffff, 0xfffffffe, 0xffffffff, 0xffffffff, 0xffffffff,
    0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
];
pub const P384_N: Limbs<12> = [
    0xccc52973, 0xecec196a, 0x48b0a77a, 0x581a0db2, 0xf4372ddf, 0xc7634d81, 0xffffffff, 0xffffffff,
    0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
];
const P384_B: Limbs<12> = [
    0xd3ec2aef, 0x2a85c8ed, 0x8a2ed19d, 0xc656398d, 0x5013875a, 0x0314088f, 0xfe814112, 0x181d9c6e,
    0xe3f82d19, 0x988e056b, 0xe23ee7e4, 0xb3312fa7,
];
const P384_GX: Limbs<12> = [
    0x72760ab7, 0x3a545e38, 0xbf55296c, 0x5502f25d, 0x82542a38, 0x59f741e0, 0x8ba79b98, 0x6e1d3b62,
    0xf320ad74, 0x8eb1c71e, 0xbe8b0537, 0xaa87ca22,
];
const P384_GY: Limbs<12> = [
    0x90ea0e5f, 0x7a431d7c, 0x1d7e819d, 0x0a60b1ce, 0xb5f0b8c0, 0xe9da3113, 0x289a147c, 0xf8f41dbd,
    0x9292dc29, 0x5d9e98bf, 0x96262c6f, 0x3617de4a,
];

/// Table shapes trade memory for additions (see `table.rs`): a stride-1 table
/// needs no doublings. ES256 is the common case, so its key tables are stride 1
/// too: 43 additions per key term, against 52 additions and 5 doublings for the
/// half-size stride-2 table (about 14% of a verification's point arithmetic).
///
/// P-256: G table 37 rows × 64 points × 64 bytes = 151,552 bytes per VM; key
/// tables 43 rows × 32 points × 64 bytes = 88,064 bytes per key used.
pub fn p256() -> &'static Curve<8> {
    static CURVE: OnceLock<Curve<8>> = OnceLock::new();
    CURVE.get_or_init(|| {
        Curve::new(
            "P-256",
            P256_P,
            P256_N,
            P256_B,
            Affine {
                x: P256_GX,
                y: P256_GY,
            },
            Shape::new(256, 7, 1),
            Shape::new(256, 6, 1),
        )
    })
}

/// P-384: G table 65 rows × 32 points × 96 bytes = 199,680 bytes per VM; key
/// tables (stride 2, as ES384 is rare and its points larger) 39 rows × 16 points
/// × 96 bytes = 59,904 bytes per key used.
pub fn p384() -> &'static Curve<12> {
    static CURVE: OnceLock<Curve<12>> = OnceLock::new();
    CURVE.get_or_init(|| {
        Curve::new(
            "P-384",
            P384_P,
            P384_N,
            P384_B,
            Affine {
                x: P384_GX,
                y: P384_GY,
            },
            Shape::new(384, 6, 1),
            Shape::new(384, 5, 2),
        )
    })
}
