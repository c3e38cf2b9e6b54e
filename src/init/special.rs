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

/// Natural logarithm of a positive normal f64 (fdlibm's `__ieee754_log` reduction and
/// polynomial, as musl had it): within 1 ulp, only +, −, ×, ÷ and bit operations.
#[inline(always)]
pub fn ln_f64(x: f64) -> f64 {
    // fdlibm's constants, as bits.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 6.93147180369123816490e-01
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.90821492927058770002e-10
    const LG1: f64 = f64::from_bits(0x3fe5_5555_5555_5593); // 6.666666666666735130e-01
    const LG2: f64 = f64::from_bits(0x3fd9_9999_9997_fa04); // 3.999999999940941908e-01
    const LG3: f64 = f64::from_bits(0x3fd2_4924_9422_9359); // 2.857142874366239149e-01
    const LG4: f64 = f64::from_bits(0x3fcc_71c5_1d8e_78af); // 2.222219843214978396e-01
    const LG5: f64 = f64::from_bits(0x3fc7_4664_96cb_03de); // 1.818357216161805012e-01
    const LG6: f64 = f64::from_bits(0x3fc3_9a09_d078_c69f); // 1.531383769920937332e-01
    const LG7: f64 = f64::from_bits(0x3fc2_f112_df3e_5244); // 1.479819860511658591e-01
                                                            // Reduce x to 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)).
    let bits = x.to_bits();
    let hx = ((bits >> 32) as u32).wrapping_add(0x3ff0_0000 - 0x3fe6_a09e);
    let k = (hx >> 20) as i32 - 0x3ff;
    let hx = (hx & 0x000f_ffff) + 0x3fe6_a09e;
    let m = f64::from_bits(((hx as u64) << 32) | (bits & 0xffff_ffff));
    let f = m - 1.0;
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let dk = k as f64;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// Φ⁻¹ in f64 (format 2): Wichura's AS 241 PPND16 (about 1e-16 relative error) where
/// |p − ½| ≤ 0.425, given q = p − ½: a ratio of degree-7 polynomials in 0.180625 − q².
// The coefficients as Wichura published them (20 digits; the compiler rounds each once).
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn inv_norm_cdf_central_f64(q: f64) -> f64 {
    let r = 0.180625 - q * q;
    q * (((((((2.509_080_928_730_122_672_7e3 * r + 3.343_057_558_358_812_810_5e4) * r
        + 6.726_577_092_700_870_085_3e4)
        * r
        + 4.592_195_393_154_987_145_7e4)
        * r
        + 1.373_169_376_550_946_112_5e4)
        * r
        + 1.971_590_950_306_551_442_7e3)
        * r
        + 1.331_416_678_917_843_774_5e2)
        * r
        + 3.387_132_872_796_366_608_0)
        / (((((((5.226_495_278_852_854_561_0e3 * r + 2.872_908_573_572_194_267_4e4) * r
            + 3.930_789_580_009_271_061_0e4)
            * r
            + 2.121_379_430_158_659_586_7e4)
            * r
            + 5.394_196_021_424_751_107_7e3)
            * r
            + 6.871_870_074_920_579_083_0e2)
            * r
            + 4.231_333_070_160_091_125_2e1)
            * r
            + 1.0)
}

/// Φ⁻¹ in f64 (format 2) where |p − ½| > 0.425: PPND16's two tail ratios in
/// t = √(−ln min(p, 1 − p)), with [`ln_f64`].
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn inv_norm_cdf_tail_f64(p: f64) -> f64 {
    let q = p - 0.5;
    let m = if q < 0.0 { p } else { 1.0 - p };
    let t = (-ln_f64(m)).sqrt();
    let z = if t <= 5.0 {
        let r = t - 1.6;
        (((((((7.745_450_142_783_414_076_40e-4 * r + 2.272_384_498_926_918_458_33e-2) * r
            + 2.417_807_251_774_506_117_70e-1)
            * r
            + 1.270_458_252_452_368_382_58)
            * r
            + 3.647_848_324_763_204_605_04)
            * r
            + 5.769_497_221_460_691_405_50)
            * r
            + 4.630_337_846_156_545_295_90)
            * r
            + 1.423_437_110_749_683_577_34)
            / (((((((1.050_750_071_644_416_843_24e-9 * r + 5.475_938_084_995_344_946_00e-4)
                * r
                + 1.519_866_656_361_645_719_66e-2)
                * r
                + 1.481_039_764_274_800_745_90e-1)
                * r
                + 6.897_673_349_851_000_045_50e-1)
                * r
                + 1.676_384_830_183_803_849_40)
                * r
                + 2.053_191_626_637_758_821_87)
                * r
                + 1.0)
    } else {
        let r = t - 5.0;
        (((((((2.010_334_399_292_288_132_65e-7 * r + 2.711_555_568_743_487_578_15e-5) * r
            + 1.242_660_947_388_078_438_60e-3)
            * r
            + 2.653_218_952_657_612_309_30e-2)
            * r
            + 2.965_605_718_285_048_912_30e-1)
            * r
            + 1.784_826_539_917_291_335_80)
            * r
            + 5.463_784_911_164_114_369_90)
            * r
            + 6.657_904_643_501_103_777_20)
            / (((((((2.044_263_103_389_939_785_64e-15 * r + 1.421_511_758_316_445_888_70e-7)
                * r
                + 1.846_318_317_510_054_681_80e-5)
                * r
                + 7.868_691_311_456_132_591_00e-4)
                * r
                + 1.487_536_129_085_061_485_25e-2)
                * r
                + 1.369_298_809_227_358_053_10e-1)
                * r
                + 5.998_322_065_558_879_376_90e-1)
                * r
                + 1.0)
    };
    if q < 0.0 {
        -z
    } else {
        z
    }
}

/// Φ⁻¹(p) for p in (0, 1), in f64, format 2: PPND16 with fixed operations (no libm).
#[inline(always)]
pub fn inv_norm_cdf_f64_v2(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        inv_norm_cdf_central_f64(q)
    } else {
        inv_norm_cdf_tail_f64(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::normal_cdf;

    #[test]
    fn ln_f64_is_within_an_ulp() {
        let mut x = 1.0e-300f64;
        while x < 1.0 {
            let (got, want) = (ln_f64(x), x.ln());
            assert!(
                (got - want).abs() <= f64::EPSILON * want.abs(),
                "{x}: {got} vs {want}"
            );
            x *= 1.000_731;
        }
        assert_eq!(ln_f64(1.0), 0.0);
    }

    #[test]
    fn ppnd16_agrees_with_the_refined_inverse() {
        // Format 1's Halley-refined Φ⁻¹ is accurate to a few ulps away from the median, and
        // to ~1.5e-16 absolute near it (Φ(x) − p loses p's ulp there): PPND16 (1e-16) must
        // agree within that everywhere, both tails and the region edges included.
        let mut worst: f64 = 0.0;
        let mut check = |p: f64| {
            let (a, b) = (inv_norm_cdf_f64_v2(p), inv_norm_cdf_f64(p));
            let err = (a - b).abs() / (b.abs() + 0.2);
            worst = worst.max(err);
            assert!(err < 2e-15, "p = {p:e}: {a} vs {b}");
        };
        for i in 1..200_000 {
            check(i as f64 / 200_000.0);
        }
        let mut p = 1.1e-16f64;
        while p < 0.1 {
            check(p);
            check(1.0 - p);
            p *= 1.01;
        }
        for edge in [0.075, 0.925, 0.074_999_999, 0.925_000_001] {
            check(edge);
        }
        assert!(worst > 0.0);
    }

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
