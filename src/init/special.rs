//! Special functions with fixed operation sequences, so every platform gets the same bits.
//!
//! Rust never fuses a multiply and an add on its own, and `sqrt` and division are
//! correctly rounded by IEEE 754, so straight-line f32/f64 code like this is reproducible.
//! Nothing here calls the platform's libm.

/// Natural logarithm of a positive normal f32 (musl's `logf` reduction and polynomial).
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    const LN2_HI: f32 = f32::from_bits(0x3f31_7180); // 6.9313812256e-01
    const LN2_LO: f32 = f32::from_bits(0x3717_f7d1); // 9.0580006145e-06
    const LG1: f32 = 11_184_810.0 / 16_777_216.0; // 0xaaaaaa.0p-24
    const LG2: f32 = 13_422_099.0 / 33_554_432.0; // 0xccce13.0p-25
    const LG3: f32 = 9_562_606.0 / 33_554_432.0; // 0x91e9ee.0p-25
    const LG4: f32 = 16_293_414.0 / 67_108_864.0; // 0xf89e26.0p-26
                                                  // Reduce x to 2^k * (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)).
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (ix >> 23) as i32 - 0x7f;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * LG4);
    let t2 = z * (LG1 + w * LG3);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// Φ⁻¹(p) for p in (0, 1), in f32: Wichura's AS 241 PPND7 (about 1e-7 relative error).
#[inline(always)]
pub fn inv_norm_cdf_f32(p: f32) -> f32 {
    let q = p - 0.5;
    // Central region, |q| <= 0.425.
    let r = 0.180625 - q * q;
    let central = q * (((59.109_375 * r + 159.291_13) * r + 50.434_27) * r + 3.387_132_7)
        / (((67.187_56 * r + 78.757_76) * r + 17.895_17) * r + 1.0);
    // Tails: r = sqrt(-ln(min(p, 1 - p))).
    let m = if q < 0.0 { p } else { 1.0 - p };
    let t = (-ln_f32(m)).sqrt();
    let near = t - 1.6;
    let tail_near = (((0.170_238_21 * near + 1.306_728_5) * near + 2.756_815_4) * near
        + 1.423_437_3)
        / ((0.120_211_33 * near + 0.737_001_6) * near + 1.0);
    let far = t - 5.0;
    let tail_far = (((0.017_337_204 * far + 0.428_682_94) * far + 3.081_226_4) * far + 6.657_905)
        / ((0.012_258_203 * far + 0.241_978_94) * far + 1.0);
    let tail = if t <= 5.0 { tail_near } else { tail_far };
    let tail = if q < 0.0 { -tail } else { tail };
    if q.abs() <= 0.425 {
        central
    } else {
        tail
    }
}

/// Φ⁻¹(p) for p in (0, 1), in f64: PPND7's start refined by two Halley steps on `libm::erfc`.
pub fn inv_norm_cdf_f64(p: f64) -> f64 {
    // Start from the lower tail, where f32 keeps relative precision.
    let mut x = if p > 0.5 {
        -(inv_norm_cdf_f32((1.0 - p) as f32) as f64)
    } else {
        inv_norm_cdf_f32(p as f32) as f64
    };
    for _ in 0..2 {
        // e = Φ(x) - p, computed from the tail that keeps precision.
        let e = if x < 0.0 {
            0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p
        } else {
            (1.0 - p) - 0.5 * libm::erfc(x / std::f64::consts::SQRT_2)
        };
        let pdf = libm::exp(-0.5 * x * x) * 0.398_942_280_401_432_7;
        if pdf == 0.0 {
            break;
        }
        let u = e / pdf;
        x -= u / (1.0 + 0.5 * x * u);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::normal_cdf;

    #[test]
    fn ln_matches_f64_within_an_ulp() {
        let mut x = 1.0e-8f32;
        while x < 4.0 {
            let got = ln_f32(x) as f64;
            let want = (x as f64).ln();
            assert!(
                (got - want).abs() <= 1.5 * f32::EPSILON as f64 * want.abs().max(1.0),
                "{x}: {got} vs {want}"
            );
            x *= 1.0137;
        }
    }

    #[test]
    fn inverse_cdf_inverts_the_cdf() {
        let mut worst = 0.0f64;
        for k in 0..(1 << 16) {
            let p = (k as f64 + 0.5) / 65536.0;
            let z = inv_norm_cdf_f32(p as f32) as f64;
            // Compare in z-space: |z - Φ⁻¹(p)| ≈ |Φ(z) - p| / φ(z).
            let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
            worst = worst.max((normal_cdf(z) - p).abs() / pdf / z.abs().max(1.0));
        }
        assert!(worst < 2e-6, "worst relative error {worst}");
        // deep tails
        for p in [1e-7f32, 1e-6, 3e-5, 1.0 - 1.0 / 1_048_576.0] {
            let z = inv_norm_cdf_f32(p) as f64;
            let p = p as f64;
            assert!(
                (normal_cdf(z) - p).abs() / p.min(1.0 - p) < 1e-4,
                "{p}: {z}"
            );
        }
    }

    #[test]
    fn f64_inverse_is_accurate_to_f64() {
        for p in [1e-12, 1e-6, 0.01, 0.2, 0.5, 0.7, 0.975, 1.0 - 1e-9] {
            let z = inv_norm_cdf_f64(p);
            let back = normal_cdf(z);
            assert!(
                (back - p).abs() <= 1e-14 * p.min(1.0 - p).max(1e-300) + 1e-16,
                "{p}: {z} -> {back}"
            );
        }
        assert!(inv_norm_cdf_f64(0.5).abs() < 1e-15);
        assert!((inv_norm_cdf_f64(0.975) - 1.959_963_984_540_054).abs() < 1e-13);
    }
}
