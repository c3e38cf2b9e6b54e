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
///
/// The three regions (central, near tail, far tail) are each a ratio of cubics in a
/// shifted variable; every lane evaluates the same Horner form with its region's
/// coefficients (a missing top coefficient is 0, which changes no bit), so the loop
/// vectorizes without branches.
#[inline(always)]
pub fn inv_norm_cdf_f32(p: f32) -> f32 {
    let q = p - 0.5;
    let central = q.abs() <= 0.425;
    // Tails: t = sqrt(-ln(min(p, 1 - p))); computed for every lane, used by tail lanes.
    let m = if q < 0.0 { p } else { 1.0 - p };
    let t = (-ln_f32(m)).sqrt();
    let far = t > 5.0;
    let r = if central {
        0.180625 - q * q
    } else if far {
        t - 5.0
    } else {
        t - 1.6
    };
    // Numerator p3 r³ + p2 r² + p1 r + p0 and denominator q3 r³ + q2 r² + q1 r + 1.
    let pick = |c: f32, n: f32, f: f32| {
        if central {
            c
        } else if far {
            f
        } else {
            n
        }
    };
    let p3 = pick(59.109_375, 0.170_238_21, 0.017_337_204);
    let p2 = pick(159.291_13, 1.306_728_5, 0.428_682_94);
    let p1 = pick(50.434_27, 2.756_815_4, 3.081_226_4);
    let p0 = pick(3.387_132_7, 1.423_437_3, 6.657_905);
    let q3 = pick(67.187_56, 0.0, 0.0);
    let q2 = pick(78.757_76, 0.120_211_33, 0.012_258_203);
    let q1 = pick(17.895_17, 0.737_001_6, 0.241_978_94);
    let scale = if central {
        q
    } else if q < 0.0 {
        -1.0
    } else {
        1.0
    };
    scale * (((p3 * r + p2) * r + p1) * r + p0) / (((q3 * r + q2) * r + q1) * r + 1.0)
}

/// [`inv_norm_cdf_f32`] where |p − ½| ≤ 0.425, given q = p − ½: the same value, bit for bit.
///
/// With [`inv_norm_cdf_tail_f32`], for kernels that compute the tails only for the ~15% of
/// values that need them (see `sample::split_normal`). Same constants and operation order
/// as the three-region form (whose tails have a zero cubic term in the denominator).
#[inline(always)]
pub fn inv_norm_cdf_central_f32(q: f32) -> f32 {
    let r = 0.180625 - q * q;
    q * (((59.109_375 * r + 159.291_13) * r + 50.434_27) * r + 3.387_132_7)
        / (((67.187_56 * r + 78.757_76) * r + 17.895_17) * r + 1.0)
}

/// [`inv_norm_cdf_f32`] where |p − ½| > 0.425: the same value, bit for bit.
#[inline(always)]
pub fn inv_norm_cdf_tail_f32(p: f32) -> f32 {
    let q = p - 0.5;
    let m = if q < 0.0 { p } else { 1.0 - p };
    let t = (-ln_f32(m)).sqrt();
    let far = t > 5.0;
    let r = if far { t - 5.0 } else { t - 1.6 };
    let pick = |near: f32, far_c: f32| if far { far_c } else { near };
    let p3 = pick(0.170_238_21, 0.017_337_204);
    let p2 = pick(1.306_728_5, 0.428_682_94);
    let p1 = pick(2.756_815_4, 3.081_226_4);
    let p0 = pick(1.423_437_3, 6.657_905);
    let q2 = pick(0.120_211_33, 0.012_258_203);
    let q1 = pick(0.737_001_6, 0.241_978_94);
    let scale = if q < 0.0 { -1.0 } else { 1.0 };
    // (0·r + q2) in the three-region form is q2 exactly: r is finite.
    scale * (((p3 * r + p2) * r + p1) * r + p0) / ((q2 * r + q1) * r + 1.0)
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
    fn split_regions_equal_the_three_region_form() {
        // Every p the f32 samplers produce: ((w >> 9) + 1/2) / 2^23, plus deep-tail values.
        let deep = (1..2000).map(|k| f32::MIN_POSITIVE * 1.37f32.powi(k));
        for p in (0..1u32 << 23)
            .map(|k| (k as f32 + 0.5) / 8_388_608.0)
            .chain(deep.filter(|p| *p < 0.5))
        {
            let q = p - 0.5;
            let split = if q.abs() <= 0.425 {
                inv_norm_cdf_central_f32(q)
            } else {
                inv_norm_cdf_tail_f32(p)
            };
            assert_eq!(split.to_bits(), inv_norm_cdf_f32(p).to_bits(), "p = {p:e}");
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
