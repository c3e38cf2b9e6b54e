//! Samplers: a tensor's values as a pure function of (seed, name, initializer, shape, dtype).
//!
//! Every random value uses a fixed number of words at a fixed position of the tensor's
//! [`Stream`], so any element can be computed alone (the chunked, parallel writer relies on
//! it) and the output does not depend on threads or chunk sizes:
//!
//! * f32 element `j` uses word `j`; f64 element `j` uses words `2j` and `2j+1`.
//! * uniform: `u = (w >> 8) · 2⁻²⁴` (f64: 53 bits), `x = low + (high − low) · u`.
//! * normal: `p = ((w >> 9) + ½) · 2⁻²³` (f64: 52 bits), `x = mean + std · Φ⁻¹(p)`.
//! * truncated normal on [a, b]: `α = Φ((a−μ)/σ)`, `β = Φ((b−μ)/σ)` (in f64), `p = α + (β−α)·u'`,
//!   sampled on the mirrored side when the interval lies above the mean (for precision),
//!   then clamped to [a, b]. The inverse CDF of the truncated range: no rejection.
//!
//! f16 and bf16 values are the f32 values rounded to nearest-even.

pub use super::rng::Kernel;
use super::rng::Stream;
use super::special::{
    inv_norm_cdf_central_f32, inv_norm_cdf_central_f64, inv_norm_cdf_f32, inv_norm_cdf_f64,
    inv_norm_cdf_tail_f32, inv_norm_cdf_tail_f64,
};
use super::{normal_cdf, Dist, Flatten, Format, Init};
use crate::model::{DType, Layout, TensorDecl};
use rayon::prelude::*;

/// Everything needed to produce any element of one tensor.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Every element the same.
    Constant(f64),
    /// U(low, high).
    Uniform {
        /// Words.
        stream: Stream,
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// N(mean, std²).
    Normal {
        /// Words.
        stream: Stream,
        /// Mean.
        mean: f64,
        /// Std.
        std: f64,
    },
    /// N(mean, std²) restricted to [low, high] by the inverse CDF.
    Truncated {
        /// Words.
        stream: Stream,
        /// Mean.
        mean: f64,
        /// Std.
        std: f64,
        /// CDF at the near bound (of the mirrored interval when `mirror`).
        alpha: f64,
        /// CDF at the far bound.
        beta: f64,
        /// Sample −Z on the mirrored interval.
        mirror: bool,
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// `value` at the (sorted) element indices `at`, zero elsewhere: identity/eye (the
    /// diagonal), dirac (a kernel's centre taps), Keras' LSTM forget-gate bias.
    Points {
        /// The value of the listed elements.
        value: f64,
        /// Their row-major indices, increasing.
        at: Vec<u64>,
    },
    /// A tensor computed whole (orthogonal, sparse), in row-major order.
    Whole(Vec<f64>),
    /// Values read from a mapped source file (`from_file`).
    File(super::file::Bound),
    /// A tensor computed whole and stored transposed: element (r, c) of the `[rows, cols]`
    /// tensor is `values[c · rows + r]` (a wide orthogonal matrix, kept as its Q).
    WholeTransposed {
        /// The values, column-major.
        values: Vec<f64>,
        /// Rows of the tensor.
        rows: u64,
        /// Columns of the tensor.
        cols: u64,
    },
}

impl Plan {
    /// Prepares the plan of one tensor (computes orthogonal and sparse tensors whole).
    pub fn new(t: &TensorDecl, layout: Layout) -> Plan {
        let values = || Stream::new(t.seed, &t.name, "values");
        match (&t.init, t.init.dist(t.fans)) {
            (_, Dist::Constant(v)) => Plan::Constant(v),
            (_, Dist::Uniform { low, high }) => Plan::Uniform {
                stream: values(),
                low,
                high,
            },
            (_, Dist::Normal { mean, std }) => Plan::Normal {
                stream: values(),
                mean,
                std,
            },
            (
                _,
                Dist::TruncatedNormal {
                    mean,
                    std,
                    low,
                    high,
                },
            ) => Plan::truncated(values(), mean, std, low, high),
            (Init::Identity { gain }, _) => {
                let (rows, cols) = (t.shape[0], t.shape[1]);
                Plan::Points {
                    value: *gain,
                    at: (0..rows.min(cols)).map(|i| i * cols + i).collect(),
                }
            }
            (Init::Dirac { groups }, _) => Plan::Points {
                value: 1.0,
                at: dirac_points(
                    &t.shape,
                    t.channel_axes
                        .expect("dirac is declared on convolution kernels only"),
                    *groups,
                ),
            },
            (Init::UnitForgetBias { units }, _) => Plan::Points {
                value: 1.0,
                at: (*units..2 * units).collect(),
            },
            (Init::Orthogonal { gain, flatten }, _) => {
                orthogonal(values(), &t.shape, *flatten, *gain, t.format, t.dtype)
            }
            (Init::Sparse { sparsity, std }, _) => Plan::Whole(sparse(t, *sparsity, *std)),
            (
                Init::Sinusoidal {
                    max_timescale,
                    interleaved,
                    paper_step,
                },
                _,
            ) => Plan::Whole(sinusoids(
                t.shape[0],
                t.shape[1],
                *max_timescale,
                *interleaved,
                *paper_step,
            )),
            (Init::RelativePositionIndex { window }, _) => {
                Plan::Whole(relative_position_index(*window))
            }
            (Init::NormOf { dim, of }, _) => Plan::Whole(norm_of(of, *dim, layout, t.format)),
            (Init::FromFile(v), _) => Plan::File(
                v.bound
                    .clone()
                    .expect("a from_file tensor is bound to its source when declared"),
            ),
            (init, d) => unreachable!("{init:?} resolves to {d:?}"),
        }
    }

    /// N(mean, std²) restricted to [low, high]: the CDF at both bounds, on the side of the
    /// mean where f32 keeps resolution.
    pub fn truncated(stream: Stream, mean: f64, std: f64, low: f64, high: f64) -> Plan {
        if std == 0.0 {
            return Plan::Constant(mean.clamp(low, high));
        }
        let a = normal_cdf((low - mean) / std);
        let b = normal_cdf((high - mean) / std);
        // Above the mean Φ is close to 1, where f32 has no resolution: use the mirror image.
        let mirror = a + b > 1.0;
        let (alpha, beta) = if mirror {
            (
                normal_cdf(-(high - mean) / std),
                normal_cdf(-(low - mean) / std),
            )
        } else {
            (a, b)
        };
        Plan::Truncated {
            stream,
            mean,
            std,
            alpha,
            beta,
            mirror,
            low,
            high,
        }
    }

    /// Elements `start .. start + out.len()` in f32 (for f32, f16 and bf16 tensors).
    pub fn fill_f32(&self, start: u64, out: &mut [f32]) {
        self.fill_f32_with(Kernel::best(), start, out)
    }

    /// [`Plan::fill_f32`] compiled for `kernel`; every kernel gives the same bits.
    ///
    /// # Panics
    /// If this CPU cannot run `kernel` (see [`Kernel::available`]).
    pub fn fill_f32_with(&self, kernel: Kernel, start: u64, out: &mut [f32]) {
        assert!(kernel.runs_here(), "this CPU cannot run {kernel:?}");
        match kernel {
            Kernel::Portable => self.fill_f32_portable(start, out),
            // SAFETY (both): the CPU has the features, checked above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { self.fill_f32_avx2(start, out) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { self.fill_f32_avx512(start, out) },
        }
    }

    // The same code as fill_f32_portable, compiled for wider vectors. Integer ops and
    // unfused IEEE arithmetic (Rust never contracts a*b+c into an FMA) give the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill_f32_avx512(&self, start: u64, out: &mut [f32]) {
        // SAFETY: this function runs only on CPUs with AVX-512F.
        unsafe { self.fill_f32_impl::<true>(Kernel::Avx512, start, out) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_f32_avx2(&self, start: u64, out: &mut [f32]) {
        // SAFETY: without SPLIT nothing beyond the kernel's instructions is needed.
        unsafe { self.fill_f32_impl::<false>(Kernel::Avx2, start, out) }
    }

    /// [`Plan::fill_f32`] for any CPU.
    fn fill_f32_portable(&self, start: u64, out: &mut [f32]) {
        // SAFETY: without SPLIT no instruction beyond the target's baseline is needed.
        unsafe { self.fill_f32_impl::<false>(Kernel::Portable, start, out) }
    }

    /// The f32 samplers, with `kernel`'s random words; with `SPLIT`, the normal family takes
    /// the two-pass route of [`split_normal`].
    ///
    /// # Safety
    /// The CPU must run `kernel`; with `SPLIT`, it must have AVX-512F.
    #[inline(always)]
    #[allow(clippy::manual_clamp)] // max/min: the same values as clamp, without its panic branch
    unsafe fn fill_f32_impl<const SPLIT: bool>(&self, kernel: Kernel, start: u64, out: &mut [f32]) {
        // Φ⁻¹(p) from its word's p, mapped to the value by `finish`.
        #[inline(always)]
        fn normal_family(
            stream: &Stream,
            kernel: Kernel,
            start: u64,
            out: &mut [f32],
            split: bool,
            to_p: impl Fn(u32) -> f32,
            finish: impl Fn(f32) -> f32,
        ) {
            #[cfg(target_arch = "x86_64")]
            if split {
                // SAFETY: the caller of fill_f32_impl::<true> guarantees AVX-512F.
                return unsafe { split_normal(stream, kernel, start, out, to_p, finish) };
            }
            let _ = split;
            with_words(stream, kernel, start, out, |w| {
                finish(inv_norm_cdf_f32(to_p(w)))
            });
        }
        match self {
            Plan::Constant(v) => out.fill(*v as f32),
            Plan::Uniform { stream, low, high } => {
                let (low, span) = (*low as f32, (*high - *low) as f32);
                with_words(stream, kernel, start, out, |w| low + span * u24(w));
            }
            Plan::Normal { stream, mean, std } => {
                let (mean, std) = (*mean as f32, *std as f32);
                normal_family(stream, kernel, start, out, SPLIT, p23, |z| mean + std * z);
            }
            Plan::Truncated {
                stream,
                mean,
                std,
                alpha,
                beta,
                mirror,
                low,
                high,
            } => {
                let (alpha, span) = (*alpha as f32, (*beta - *alpha) as f32);
                let sign = if *mirror { -1.0f32 } else { 1.0 };
                let (mean, std, low, high) = (*mean as f32, *std as f32, *low as f32, *high as f32);
                normal_family(
                    stream,
                    kernel,
                    start,
                    out,
                    SPLIT,
                    |w| {
                        (alpha + span * p23(w))
                            .max(f32::MIN_POSITIVE)
                            .min(1.0 - 1.0 / 16_777_216.0)
                    },
                    |z| (mean + std * (sign * z)).max(low).min(high),
                );
            }
            Plan::File(b) => b.fill_f32(start, out),
            _ => self.fill_structured(start, out, |x| x as f32),
        }
    }

    /// The source's own bytes for elements `start ..` (`len` bytes), when a tensor read from
    /// a file has the source's dtype and layout: copied as they are.
    pub fn source_bytes(&self, dtype: DType, start: u64, len: usize) -> Option<&[u8]> {
        match self {
            Plan::File(b) => b.same_bytes(dtype, start, len),
            _ => None,
        }
    }

    /// Elements `start .. start + out.len()` in f64 (for f64 tensors) as generator `format`
    /// makes them (format 1's f64 normals take Halley steps on libm's erfc; format 2's are
    /// PPND16): the tensor's own format, `TensorDecl::format`.
    pub fn fill_f64_in(&self, format: Format, start: u64, out: &mut [f64]) {
        self.fill_f64_with(Kernel::best(), format, start, out)
    }

    /// [`Plan::fill_f64_in`] compiled for `kernel`; every kernel gives the same bits.
    ///
    /// # Panics
    /// If this CPU cannot run `kernel` (see [`Kernel::available`]).
    pub fn fill_f64_with(&self, kernel: Kernel, format: Format, start: u64, out: &mut [f64]) {
        assert!(kernel.runs_here(), "this CPU cannot run {kernel:?}");
        match kernel {
            Kernel::Portable => self.fill_f64_impl(kernel, format, start, out),
            // SAFETY (both): the CPU has the features, checked above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { self.fill_f64_avx2(format, start, out) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { self.fill_f64_avx512(format, start, out) },
        }
    }

    // The same code as the portable one, compiled for wider vectors: lane-wise unfused IEEE
    // arithmetic and integer operations, so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn fill_f64_avx512(&self, format: Format, start: u64, out: &mut [f64]) {
        self.fill_f64_impl(Kernel::Avx512, format, start, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_f64_avx2(&self, format: Format, start: u64, out: &mut [f64]) {
        self.fill_f64_impl(Kernel::Avx2, format, start, out)
    }

    /// The f64 samplers with `kernel`'s random words.
    #[inline(always)]
    fn fill_f64_impl(&self, kernel: Kernel, format: Format, start: u64, out: &mut [f64]) {
        match (self, format) {
            (Plan::Constant(v), _) => out.fill(*v),
            (Plan::File(b), _) => b.fill_f64(start, out),
            (Plan::Uniform { stream, low, high }, _) => {
                let span = high - low;
                with_pairs(stream, kernel, start, out, |w0, w1| {
                    low + span * u53(w0, w1)
                });
            }
            (Plan::Normal { stream, mean, std }, Format::V1) => {
                with_pairs(stream, kernel, start, out, |w0, w1| {
                    mean + std * inv_norm_cdf_f64(p52(w0, w1))
                });
            }
            (Plan::Normal { stream, mean, std }, Format::V2 | Format::V3) => {
                normal_f64(stream, kernel, start, out, |p| p, |z| mean + std * z);
            }
            (
                Plan::Truncated {
                    stream,
                    mean,
                    std,
                    alpha,
                    beta,
                    mirror,
                    low,
                    high,
                },
                format,
            ) => {
                let sign = if *mirror { -1.0 } else { 1.0 };
                let to_p = |p: f64| {
                    (alpha + (beta - alpha) * p).clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0)
                };
                let finish = |z: f64| (mean + std * (sign * z)).clamp(*low, *high);
                match format {
                    Format::V1 => with_pairs(stream, kernel, start, out, |w0, w1| {
                        finish(inv_norm_cdf_f64(to_p(p52(w0, w1))))
                    }),
                    Format::V2 | Format::V3 => normal_f64(stream, kernel, start, out, to_p, finish),
                }
            }
            _ => self.fill_structured(start, out, |x| x),
        }
    }

    /// The non-random plans, each value cast by `cast`.
    fn fill_structured<T: Copy>(&self, start: u64, out: &mut [T], cast: impl Fn(f64) -> T) {
        let at = |i: usize| (start + i as u64) as usize;
        match self {
            Plan::Points { value, at: points } => {
                out.fill(cast(0.0));
                let end = start + out.len() as u64;
                let from = points.partition_point(|&j| j < start);
                for &j in points[from..].iter().take_while(|&&j| j < end) {
                    out[(j - start) as usize] = cast(*value);
                }
            }
            Plan::Whole(v) => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = cast(v[at(i)]);
                }
            }
            Plan::WholeTransposed { values, rows, cols } => {
                let (rows, cols) = (*rows as usize, *cols as usize);
                for (i, o) in out.iter_mut().enumerate() {
                    let j = at(i);
                    *o = cast(values[(j % cols) * rows + j / cols]);
                }
            }
            _ => unreachable!("random plans fill directly"),
        }
    }
}

/// u ∈ [0, 1) from the top 24 bits of a word.
#[inline(always)]
fn u24(w: u32) -> f32 {
    (w >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// p ∈ (0, 1) from the top 23 bits, centred so that p and 1 − p are exact in f32.
#[inline(always)]
fn p23(w: u32) -> f32 {
    ((w >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// An integer below 2⁵² as f64, exactly: 2⁵² + x has x as its mantissa. Integer and
/// floating-point operations that vectorize on every x86-64 (u64 → f64 needs AVX-512DQ).
#[inline(always)]
fn small_to_f64(x: u64) -> f64 {
    f64::from_bits(0x4330_0000_0000_0000 | x) - 4_503_599_627_370_496.0
}

#[inline(always)]
fn u53(w0: u32, w1: u32) -> f64 {
    // w0 · 2²¹ + (w1 >> 11), both parts and the sum exact: the bits of `as f64` on the u53.
    (small_to_f64(w0 as u64) * 2_097_152.0 + small_to_f64(w1 as u64 >> 11))
        * (1.0 / 9_007_199_254_740_992.0)
}

#[inline(always)]
fn p52(w0: u32, w1: u32) -> f64 {
    (small_to_f64(((w0 as u64) << 20) | (w1 as u64 >> 12)) + 0.5) * (1.0 / 4_503_599_627_370_496.0)
}

/// Maps word `start + i` to `out[i]`.
#[inline(always)]
fn with_words(
    stream: &Stream,
    kernel: Kernel,
    start: u64,
    out: &mut [f32],
    f: impl Fn(u32) -> f32,
) {
    let mut buf = [0u32; 512];
    let mut pos = start;
    for chunk in out.chunks_mut(512) {
        let words = &mut buf[..chunk.len()];
        stream.words_with(kernel, pos, words);
        for (o, &w) in chunk.iter_mut().zip(words.iter()) {
            *o = f(w);
        }
        pos += chunk.len() as u64;
    }
}

/// Normal-family values in two passes per 512: Φ⁻¹'s central formula for every value, then
/// its tail formula for just the values beyond it (~15%), found with AVX-512's compress.
/// The same bits as evaluating the three-region [`inv_norm_cdf_f32`] on every value (it
/// computes both formulas everywhere and selects), at a little over half the work.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn split_normal(
    stream: &Stream,
    kernel: Kernel,
    start: u64,
    out: &mut [f32],
    to_p: impl Fn(u32) -> f32,
    finish: impl Fn(f32) -> f32,
) {
    const C: usize = 512;
    let mut words = [0u32; C];
    let mut ps = [0f32; C];
    // Room for a whole 16-lane store past the last index found.
    let mut idx = [0u32; C + 16];
    let mut tails = [0f32; C];
    let mut pos = start;
    for chunk in out.chunks_mut(C) {
        let n = chunk.len();
        stream.words_with(kernel, pos, &mut words[..n]);
        for ((o, p), &w) in chunk.iter_mut().zip(&mut ps[..n]).zip(&words[..n]) {
            *p = to_p(w);
            *o = finish(inv_norm_cdf_central_f32(*p - 0.5));
        }
        // SAFETY: the caller guarantees AVX-512F.
        let k = unsafe { tail_indices(&ps[..n], &mut idx) };
        // Gather, then compute in a loop of its own: that one vectorizes.
        for (t, &i) in tails[..k].iter_mut().zip(&idx[..k]) {
            *t = ps[i as usize];
        }
        for t in &mut tails[..k] {
            *t = inv_norm_cdf_tail_f32(*t);
        }
        for (&z, &i) in tails[..k].iter().zip(&idx[..k]) {
            chunk[i as usize] = finish(z);
        }
        pos += n as u64;
    }
}

/// Writes to `idx` the positions of the `ps` outside Φ⁻¹'s central region (not |p − ½| ≤
/// 0.425, exactly as [`inv_norm_cdf_f32`] decides) and returns how many there are.
///
/// # Safety
/// The CPU must have AVX-512F; `idx` must hold `ps.len() + 16` entries.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tail_indices(ps: &[f32], idx: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    assert!(idx.len() >= ps.len() + 16);
    let half = _mm512_set1_ps(0.5);
    let edge = _mm512_set1_ps(0.425);
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut k = 0usize;
    let mut i = 0usize;
    while i + 16 <= ps.len() {
        // SAFETY: i + 16 <= ps.len(); k <= i, so k + 16 <= idx.len().
        unsafe {
            let p = _mm512_loadu_ps(ps.as_ptr().add(i));
            let q = _mm512_abs_ps(_mm512_sub_ps(p, half));
            let tail = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(q, edge);
            let at = _mm512_add_epi32(_mm512_set1_epi32(i as i32), lanes);
            _mm512_storeu_si512(
                idx.as_mut_ptr().add(k) as *mut __m512i,
                _mm512_maskz_compress_epi32(tail, at),
            );
            k += tail.count_ones() as usize;
        }
        i += 16;
    }
    for (j, &p) in ps.iter().enumerate().skip(i) {
        idx[k] = j as u32;
        // p is never NaN, so this is the vector test above.
        k += usize::from((p - 0.5).abs() > 0.425);
    }
    k
}

/// Maps words `2(start + i)` and `2(start + i) + 1` to `out[i]`.
fn with_pairs(
    stream: &Stream,
    kernel: Kernel,
    start: u64,
    out: &mut [f64],
    f: impl Fn(u32, u32) -> f64,
) {
    let mut buf = [0u32; 1024];
    let mut pos = start * 2;
    for chunk in out.chunks_mut(512) {
        let words = &mut buf[..chunk.len() * 2];
        stream.words_with(kernel, pos, words);
        for (o, w) in chunk.iter_mut().zip(words.chunks_exact(2)) {
            *o = f(w[0], w[1]);
        }
        pos += words.len() as u64;
    }
}

/// Format 2's normal-family f64 values in two passes per 256: PPND16's central formula for
/// every value (it vectorizes), then its tail formula for the values beyond |p − ½| = 0.425
/// (~15%). The same bits as [`inv_norm_cdf_f64_v2`] on every value.
#[inline(always)]
fn normal_f64(
    stream: &Stream,
    kernel: Kernel,
    start: u64,
    out: &mut [f64],
    to_p: impl Fn(f64) -> f64,
    finish: impl Fn(f64) -> f64,
) {
    const C: usize = 256;
    let mut words = [0u32; 2 * C];
    let mut ps = [0f64; C];
    let mut pos = start * 2;
    for chunk in out.chunks_mut(C) {
        let n = chunk.len();
        stream.words_with(kernel, pos, &mut words[..2 * n]);
        for (p, w) in ps[..n].iter_mut().zip(words.chunks_exact(2)) {
            *p = to_p(p52(w[0], w[1]));
        }
        for (o, &p) in chunk.iter_mut().zip(&ps[..n]) {
            *o = finish(inv_norm_cdf_central_f64(p - 0.5));
        }
        for (o, &p) in chunk.iter_mut().zip(&ps[..n]) {
            if (p - 0.5).abs() > 0.425 {
                *o = finish(inv_norm_cdf_tail_f64(p));
            }
        }
        pos += 2 * n as u64;
    }
}

/// torch `dirac_`'s ones, as increasing row-major indices of the stored kernel: for every
/// output channel o with d = o mod (out/groups) < in/groups, the centre tap of input
/// channel d along the kernel's channel axes (`w[o, d, k₁//2, …]` in torch's order; Keras'
/// `[…, d, o]` mirrored).
fn dirac_points(shape: &[u64], (out_axis, in_axis): (usize, usize), groups: u64) -> Vec<u64> {
    let n = shape.len();
    let (out_n, in_n) = (shape[out_axis], shape[in_axis]);
    let opg = out_n / groups;
    // Row-major strides.
    let mut stride = vec![1u64; n];
    for k in (0..n.saturating_sub(1)).rev() {
        stride[k] = stride[k + 1] * shape[k + 1];
    }
    let centre: u64 = (0..n)
        .filter(|&k| k != out_axis && k != in_axis)
        .map(|k| shape[k] / 2 * stride[k])
        .sum();
    let mut at: Vec<u64> = (0..out_n)
        .filter(|o| o % opg < in_n)
        .map(|o| o * stride[out_axis] + (o % opg) * stride[in_axis] + centre)
        .collect();
    at.sort_unstable();
    at
}

/// The sinusoidal position table `[positions, dim]`, row-major.
///
/// With the `half_minus_one` step the frequencies and angles are computed in f32 the way
/// Whisper's `sinusoids` and M2M100's `get_embedding` compute them in torch
/// (`exp(f32(-inc)·j)`, then `f32(p)·inv`, each rounded to f32), and the sines and cosines
/// of those f32 angles are taken in f64 and rounded: within an ulp of torch's own table. The
/// `paper` step follows Marian's numpy formula in f64.
fn sinusoids(
    positions: u64,
    dim: u64,
    max_timescale: f64,
    interleaved: bool,
    paper: bool,
) -> Vec<f64> {
    let half = (dim / 2) as usize;
    let angles: Vec<Vec<f64>> = if paper {
        (0..positions)
            .map(|p| {
                (0..half)
                    .map(|i| p as f64 / max_timescale.powf(2.0 * i as f64 / dim as f64))
                    .collect()
            })
            .collect()
    } else {
        let inc = max_timescale.ln() / (half as f64 - 1.0);
        let neg = (-inc) as f32;
        let inv: Vec<f32> = (0..half)
            .map(|j| ((neg * j as f32) as f64).exp() as f32)
            .collect();
        (0..positions)
            .map(|p| inv.iter().map(|&v| (p as f32 * v) as f64).collect())
            .collect()
    };
    let round = |x: f64| if paper { x } else { x as f32 as f64 };
    let mut out = vec![0.0f64; (positions * dim) as usize];
    for (p, row) in angles.iter().enumerate() {
        let o = &mut out[p * dim as usize..(p + 1) * dim as usize];
        for (i, &a) in row.iter().enumerate() {
            let (sin, cos) = (round(a.sin()), round(a.cos()));
            if interleaved {
                o[2 * i] = sin;
                o[2 * i + 1] = cos;
            } else {
                o[i] = sin;
                o[half + i] = cos;
            }
        }
    }
    out
}

/// Swin's relative position index (torchvision `define_relative_position_index`): for
/// tokens i, j of an h×w window in row-major order,
/// `(hᵢ − hⱼ + h − 1)·(2w − 1) + (wᵢ − wⱼ + w − 1)`, flat `[N²]`.
fn relative_position_index([h, w]: [u64; 2]) -> Vec<f64> {
    let n = h * w;
    let mut out = Vec::with_capacity((n * n) as usize);
    for i in 0..n {
        for j in 0..n {
            let (hi, wi) = ((i / w) as i64, (i % w) as i64);
            let (hj, wj) = ((j / w) as i64, (j % w) as i64);
            let v = (hi - hj + h as i64 - 1) * (2 * w as i64 - 1) + (wi - wj + w as i64 - 1);
            out.push(v as f64);
        }
    }
    out
}

/// weight_norm's g: ‖v‖ over every axis but `dim` (all of v for `None`), from v's values as
/// stored (rounded to v's dtype), accumulated in f64 while v is generated piece by piece.
fn norm_of(
    of: &super::TensorSource,
    dim: Option<usize>,
    layout: Layout,
    format: super::Format,
) -> Vec<f64> {
    let decl = TensorDecl {
        name: of.name.clone(),
        layer: String::new(),
        role: crate::model::Role::Kernel,
        shape: of.shape.clone(),
        dtype: of.dtype,
        init: of.init.clone(),
        choice: crate::model::InitChoice {
            written: String::new(),
            source: crate::model::InitSource::Framework,
            default_rule: None,
        },
        fans: of.fans,
        fans_from: crate::model::FansFrom::Layer,
        reach: (0.0, 0.0),
        channel_axes: of.channel_axes,
        trainable: true,
        zeroed: None,
        seed: of.seed,
        format,
        span: crate::source::Span::default(),
    };
    let g = crate::build::Generator::new(&decl, layout);
    let numel = decl.numel();
    let (size, inner) = match dim {
        Some(d) => (of.shape[d], of.shape[d + 1..].iter().product::<u64>()),
        None => (1, 1),
    };
    let mut sums = vec![0.0f64; size as usize];
    let mut buf = vec![0.0f64; 1 << 16];
    let mut start = 0u64;
    while start < numel {
        let n = (numel - start).min(buf.len() as u64) as usize;
        g.values_into(start, &mut buf[..n]);
        for (k, x) in buf[..n].iter().enumerate() {
            let i = start + k as u64;
            sums[((i / inner) % size) as usize] += x * x;
        }
        start += n as u64;
    }
    sums.into_iter().map(f64::sqrt).collect()
}

/// Haar-random (semi-)orthogonal matrix, flattened as the framework does, times `gain`.
///
/// Format 1: draw A (max(r, c) × min(r, c)) row-major from the f64 normal stream,
/// Householder QR in f64, multiply Q's columns by sign(diag R), transpose when r < c.
/// Formats 2 and 3: init::orthogonal (in f32 for format 3's tensors narrower than f64).
fn orthogonal(
    stream: Stream,
    shape: &[u64],
    flatten: Flatten,
    gain: f64,
    format: Format,
    dtype: DType,
) -> Plan {
    let (rows, cols) = flatten.matrix(shape);
    let (m, n) = (rows.max(cols) as usize, rows.min(cols) as usize);
    let mut a = match format {
        // Format 1: Householder QR of an m × n matrix of normals, Q formed column by column.
        Format::V1 => {
            let mut a = vec![0.0f64; m * n];
            Plan::Normal {
                stream,
                mean: 0.0,
                std: 1.0,
            }
            .fill_f64_in(Format::V1, 0, &mut a);
            qr_q_in_place(&mut a, m, n);
            a
        }
        // Format 2: reflectors from fresh normals, Q formed in blocks (init::orthogonal).
        Format::V2 => super::orthogonal::orthogonal_q::<f64>(stream, m, n),
        // Format 3: as torch, in the tensor's precision (f32 for bf16 and f16: the
        // reflector arithmetic needs more than their 8 or 11 bits).
        // Integer tensors keep format 2's f64 (their values are rounded anyway).
        Format::V3 => match dtype {
            DType::F32 | DType::F16 | DType::BF16 => {
                super::orthogonal::orthogonal_q::<f32>(stream, m, n)
            }
            DType::F64 | DType::I64 | DType::I32 | DType::Bool => {
                super::orthogonal::orthogonal_q::<f64>(stream, m, n)
            }
        },
    };
    // Exact for gain 1, the default: skip the pass over a model-sized matrix.
    if gain != 1.0 {
        a.par_iter_mut().for_each(|x| *x *= gain);
    }
    if rows >= cols {
        Plan::Whole(a)
    } else {
        // The tensor is Qᵀ: read it transposed rather than hold a second copy.
        Plan::WholeTransposed {
            values: a,
            rows,
            cols,
        }
    }
}

/// The start of every dot product in [`qr_q_in_place`]: what `Iterator::sum` of f64 starts
/// from (Rust ≥ 1.83), so that the row-wise loops give the column-wise sums' bits.
const SUM_START: f64 = -0.0;

/// Overwrites the m × n (m ≥ n) row-major `a` with Q of its reduced QR (Householder, in
/// f64), columns signed so that diag(R) > 0.
///
/// One matrix of memory: each reflector is kept below the diagonal of the column it
/// cleared (its first entry aside), and Q is formed in place from the last reflector back,
/// as LAPACK's `dorg2r` does. Every dot product runs over rows in order, accumulated row by
/// row across all columns at once, so memory is read in rows (the column-by-column form
/// strided through the whole matrix per column: 2048² took two minutes) and every sum is
/// the same sequence of additions as the plain definition docs/determinism.md gives.
fn qr_q_in_place(a: &mut [f64], m: usize, n: usize) {
    let mut first = vec![0.0f64; n]; // each reflector's first entry (the diagonal holds Q's)
    let mut sign = vec![1.0f64; n];
    let mut v = vec![0.0f64; m];
    let mut w = vec![0.0f64; n];
    for k in 0..n {
        let norm = (k..m)
            .map(|i| a[i * n + k] * a[i * n + k])
            .sum::<f64>()
            .sqrt();
        let x0 = a[k * n + k];
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        // R[k][k] = alpha after the reflection.
        sign[k] = if alpha < 0.0 { -1.0 } else { 1.0 };
        let v = &mut v[..m - k];
        for (i, x) in v.iter_mut().enumerate() {
            *x = a[(k + i) * n + k];
        }
        v[0] -= alpha;
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if vn > 0.0 {
            v.iter_mut().for_each(|x| *x /= vn);
            // H = I − 2vvᵀ on columns k+1..n; column k becomes R's, which only signs need.
            reflect(a, n, k, k + 1, v, &mut w);
        }
        first[k] = v[0];
        for (i, x) in v.iter().enumerate().skip(1) {
            a[(k + i) * n + k] = *x;
        }
    }
    // Q = H0 H1 … H(n-1) applied to the first n columns of the identity, last reflector
    // first. Before step k, Q's columns > k hold their values in rows > k and zeros in row
    // k; columns < k are still identity columns (zero in rows ≥ k, untouched by H_k).
    for k in (0..n).rev() {
        let v = &mut v[..m - k];
        v[0] = first[k];
        for (i, x) in v.iter_mut().enumerate().skip(1) {
            *x = a[(k + i) * n + k];
        }
        for c in k + 1..n {
            a[k * n + c] = 0.0;
        }
        reflect(a, n, k, k + 1, v, &mut w);
        // Column k is e_k before H_k: its dot with v is v[0]·1 + v[i]·0 …, summed in order.
        let mut dot = SUM_START + v[0] * 1.0;
        for x in &v[1..] {
            dot += x * 0.0;
        }
        for (i, x) in v.iter().enumerate() {
            let e = if i == 0 { 1.0 } else { 0.0 };
            a[(k + i) * n + k] = e - 2.0 * x * dot;
        }
    }
    for row in a.chunks_exact_mut(n) {
        for (x, s) in row.iter_mut().zip(&sign) {
            *x *= s;
        }
    }
}

/// Applies I − 2vvᵀ to rows k.. and columns `from..n` of the row-major `a` (n columns):
/// `d_c = Σ_i v_i a_ic` over rows in order, then `a_ic −= 2 v_i d_c`.
///
/// Big ones run on all cores, split by columns for the sums (each column's sum is still
/// one sequence over rows) and by rows for the update, so the bits do not depend on threads.
fn reflect(a: &mut [f64], n: usize, k: usize, from: usize, v: &[f64], w: &mut [f64]) {
    use rayon::prelude::*;
    const COLUMNS: usize = 256;
    // Below this many products threads cost more than they save; lower in unit tests so
    // that small matrices take both paths.
    const PARALLEL_FROM: usize = if cfg!(test) { 1 << 10 } else { 1 << 18 };
    let w = &mut w[from..n];
    let big = v.len() * w.len() >= PARALLEL_FROM;
    let sums = |(b, wb): (usize, &mut [f64])| {
        let c0 = from + b * COLUMNS;
        wb.fill(SUM_START);
        for (i, vi) in v.iter().enumerate() {
            let row = &a[(k + i) * n + c0..(k + i) * n + c0 + wb.len()];
            for (d, x) in wb.iter_mut().zip(row) {
                *d += vi * x;
            }
        }
    };
    if big {
        w.par_chunks_mut(COLUMNS).enumerate().for_each(sums);
    } else {
        w.chunks_mut(COLUMNS).enumerate().for_each(sums);
    }
    let w = &*w;
    let update = |(row, vi): (&mut [f64], &f64)| {
        let s = 2.0 * vi;
        for (x, d) in row[from..].iter_mut().zip(w) {
            *x -= s * d;
        }
    };
    let rows = &mut a[k * n..(k + v.len()) * n];
    if big {
        rows.par_chunks_mut(n).zip(v.par_iter()).for_each(update);
    } else {
        rows.chunks_mut(n).zip(v.iter()).for_each(update);
    }
}

/// torch `sparse_` on a [rows, cols] matrix: N(0, std²), then in every column the
/// ⌈sparsity·rows⌉ rows with the smallest `sparse-mask` words (ties by row) set to zero.
fn sparse(t: &TensorDecl, sparsity: f64, std: f64) -> Vec<f64> {
    let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
    let plan = Plan::Normal {
        stream: Stream::new(t.seed, &t.name, "values"),
        mean: 0.0,
        std,
    };
    let mut tmp = vec![0.0f32; rows * cols];
    plan.fill_f32(0, &mut tmp);
    let mut v: Vec<f64> = tmp.into_iter().map(f64::from).collect();
    let zeros = (sparsity * rows as f64).ceil() as usize;
    let mask = Stream::new(t.seed, &t.name, "sparse-mask");
    let mut words = vec![0u32; rows];
    let mut order: Vec<(u32, usize)> = Vec::with_capacity(rows);
    for c in 0..cols {
        // Column c's mask words are c·rows .. (c+1)·rows of the stream.
        mask.words((c * rows) as u64, &mut words);
        order.clear();
        order.extend(words.iter().copied().zip(0..rows));
        order.sort_unstable();
        for &(_, r) in order.iter().take(zeros) {
            v[r * cols + c] = 0.0;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q of the reduced QR by the plain definition: Householder reflections applied column
    /// by column to all of A, then to the identity (the slow form `qr_q_in_place` replaced).
    fn qr_q_reference(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
        let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n);
        let mut sign = vec![1.0f64; n];
        for k in 0..n {
            let norm = (k..m)
                .map(|i| a[i * n + k] * a[i * n + k])
                .sum::<f64>()
                .sqrt();
            let x0 = a[k * n + k];
            let alpha = if x0 >= 0.0 { -norm } else { norm };
            sign[k] = if alpha < 0.0 { -1.0 } else { 1.0 };
            let mut v: Vec<f64> = (k..m).map(|i| a[i * n + k]).collect();
            v[0] -= alpha;
            let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if vn > 0.0 {
                v.iter_mut().for_each(|x| *x /= vn);
                for c in k..n {
                    let dot: f64 = (k..m).map(|i| v[i - k] * a[i * n + c]).sum();
                    for i in k..m {
                        a[i * n + c] -= 2.0 * v[i - k] * dot;
                    }
                }
            }
            vs.push(v);
        }
        let mut q = vec![0.0f64; m * n];
        for k in 0..n {
            q[k * n + k] = 1.0;
        }
        for k in (0..n).rev() {
            let v = &vs[k];
            for c in 0..n {
                let dot: f64 = (k..m).map(|i| v[i - k] * q[i * n + c]).sum();
                for i in k..m {
                    q[i * n + c] -= 2.0 * v[i - k] * dot;
                }
            }
        }
        for i in 0..m {
            for k in 0..n {
                q[i * n + k] *= sign[k];
            }
        }
        q
    }

    #[test]
    fn in_place_qr_gives_the_plain_definitions_bits() {
        let stream = Stream::new(11, "qr", "values");
        for (m, n) in [
            (1, 1),
            (2, 2),
            (5, 3),
            (64, 17),
            (100, 100),
            (300, 7),
            (300, 290),
        ] {
            let mut a = vec![0.0f64; m * n];
            Plan::Normal {
                stream,
                mean: 0.0,
                std: 1.0,
            }
            .fill_f64_in(Format::V1, 0, &mut a);
            // A zero column and a repeated one: reflectors of norm 0 and exact cancellations.
            if n >= 3 {
                for i in 0..m {
                    a[i * n + 1] = 0.0;
                    a[i * n + 2] = a[i * n];
                }
            }
            let want = qr_q_reference(&mut a.clone(), m, n);
            qr_q_in_place(&mut a, m, n);
            let same = a.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{m}×{n}");
        }
    }

    #[test]
    fn wide_orthogonal_reads_q_transposed() {
        let stream = Stream::new(5, "wide", "values");
        let (rows, cols) = (3u64, 8u64);
        let plan = orthogonal(
            stream,
            &[rows, cols],
            Flatten::Trailing,
            1.0,
            Format::V1,
            DType::F32,
        );
        let Plan::WholeTransposed { values, .. } = &plan else {
            panic!("a wide matrix keeps its Q");
        };
        let mut a = vec![0.0f64; 24];
        Plan::Normal {
            stream,
            mean: 0.0,
            std: 1.0,
        }
        .fill_f64_in(Format::V1, 0, &mut a);
        let q = qr_q_reference(&mut a, 8, 3);
        assert_eq!(*values, q);
        let mut out = vec![0.0f64; 24];
        plan.fill_f64_in(Format::V1, 0, &mut out);
        for r in 0..3 {
            for c in 0..8 {
                assert_eq!(out[r * 8 + c], q[c * 3 + r], "({r}, {c})");
            }
        }
    }
}
