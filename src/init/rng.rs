//! The counter-based generator: Philox4x32-10 keyed by (seed, tensor name).
//!
//! Format 1, exactly (docs/determinism.md says the same in prose):
//!
//! * `digest = SHA-256("specc/1/" ‖ purpose ‖ 0x00 ‖ seed as 8 little-endian bytes ‖ name as UTF-8)`,
//!   `purpose` being `values` for a tensor's values and `sparse-mask` for `sparse`'s row choice.
//! * Philox key `(k0, k1)` = digest bytes 0..4 and 4..8 as little-endian u32;
//!   counter words `c2, c3` = digest bytes 8..12 and 12..16.
//! * Block `b` (a u64) is the Philox4x32-10 output for counter `(b mod 2³², b div 2³², c2, c3)`;
//!   it gives four u32 words, and word `i` of the stream is word `i mod 4` of block `i div 4`.
//!
//! Any word of any tensor is one Philox call away: no state, nothing generated before it.

use sha2::{Digest, Sha256};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds (Salmon et al., SC'11; the Random123 reference).
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// An instruction set the generator and the f32 samplers are compiled for; every one gives
/// the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The target's baseline (SSE2 on x86-64).
    Portable,
    /// 256-bit vectors.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// 512-bit vectors.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// Every kernel, narrowest first.
    pub const ALL: &[Kernel] = &[
        Kernel::Portable,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512,
    ];

    /// Whether this CPU has the instructions.
    pub fn runs_here(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        }
    }

    /// Every kernel this CPU runs, narrowest first.
    pub fn available() -> Vec<Kernel> {
        Kernel::ALL
            .iter()
            .copied()
            .filter(|k| k.runs_here())
            .collect()
    }

    /// The widest kernel this CPU runs.
    pub fn best() -> Kernel {
        *Kernel::ALL
            .iter()
            .rev()
            .find(|k| k.runs_here())
            .unwrap_or(&Kernel::Portable)
    }
}

/// The random words of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    key: [u32; 2],
    hi: [u32; 2],
}

impl Stream {
    /// The stream for `purpose` of tensor `name` under `seed`.
    pub fn new(seed: u64, name: &str, purpose: &str) -> Stream {
        let mut h = Sha256::new();
        h.update(b"specc/1/");
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(seed.to_le_bytes());
        h.update(name.as_bytes());
        let d = h.finalize();
        let w = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        Stream {
            key: [w(0), w(4)],
            hi: [w(8), w(12)],
        }
    }

    /// Block `b`: words `4b .. 4b+4`.
    #[inline(always)]
    pub fn block(&self, b: u64) -> [u32; 4] {
        philox4x32_10(
            [b as u32, (b >> 32) as u32, self.hi[0], self.hi[1]],
            self.key,
        )
    }

    /// Word `i`.
    #[inline]
    pub fn word(&self, i: u64) -> u32 {
        self.block(i / 4)[(i % 4) as usize]
    }

    /// Fills `out` with words `start .. start + out.len()`.
    #[inline]
    pub fn words(&self, start: u64, out: &mut [u32]) {
        self.words_with(Kernel::best(), start, out)
    }

    /// [`Stream::words`] computed with `kernel`.
    ///
    /// # Panics
    /// If this CPU cannot run `kernel`.
    #[inline]
    pub fn words_with(&self, kernel: Kernel, start: u64, out: &mut [u32]) {
        assert!(kernel.runs_here(), "this CPU cannot run {kernel:?}");
        match kernel {
            Kernel::Portable => self.words_portable(start, out),
            // SAFETY (both): the CPU has the features, checked above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { self.words_avx2(start, out) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { self.words_avx512(start, out) },
        }
    }

    /// [`Stream::words`] with AVX2: eight blocks per step, multiplies as `vpmuludq`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn words_avx2(&self, start: u64, out: &mut [u32]) {
        use std::arch::x86_64::*;
        // Head: up to the next multiple of 32 words (8 blocks).
        let mut i = ((pos_to(start, 32)) as usize).min(out.len());
        self.words_portable(start, &mut out[..i]);
        let mut pos = start + i as u64;
        const G: usize = 4;
        while out.len() - i >= 32 * G {
            let groups = self.blocks_avx2::<G>(pos / 4);
            for (g, x) in groups.iter().enumerate() {
                // Transpose word-major lanes into block-major words: out[4·lane + w] = x[w][lane].
                let t0 = _mm256_unpacklo_epi32(x[0], x[1]);
                let t1 = _mm256_unpackhi_epi32(x[0], x[1]);
                let t2 = _mm256_unpacklo_epi32(x[2], x[3]);
                let t3 = _mm256_unpackhi_epi32(x[2], x[3]);
                let u0 = _mm256_unpacklo_epi64(t0, t2);
                let u1 = _mm256_unpackhi_epi64(t0, t2);
                let u2 = _mm256_unpacklo_epi64(t1, t3);
                let u3 = _mm256_unpackhi_epi64(t1, t3);
                let at = i + 32 * g;
                let dst = out[at..at + 32].as_mut_ptr() as *mut __m256i;
                // SAFETY: dst covers 32 u32 = four unaligned 256-bit stores.
                unsafe {
                    _mm256_storeu_si256(dst, _mm256_permute2x128_si256(u0, u1, 0x20));
                    _mm256_storeu_si256(dst.add(1), _mm256_permute2x128_si256(u2, u3, 0x20));
                    _mm256_storeu_si256(dst.add(2), _mm256_permute2x128_si256(u0, u1, 0x31));
                    _mm256_storeu_si256(dst.add(3), _mm256_permute2x128_si256(u2, u3, 0x31));
                }
            }
            i += 32 * G;
            pos += 32 * G as u64;
        }
        self.words_portable(pos, &mut out[i..]);
    }

    /// Blocks `b .. b + 8·G` with AVX2, as G independent groups of eight (word-major within a
    /// group: `x[g][w]` holds word w of blocks `b + 8g .. b + 8g + 8`). Several groups in
    /// flight hide the multiplies' latency.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn blocks_avx2<const G: usize>(&self, b: u64) -> [[std::arch::x86_64::__m256i; 4]; G] {
        use std::arch::x86_64::*;
        let mut x = [[_mm256_setzero_si256(); 4]; G];
        for (g, xg) in x.iter_mut().enumerate() {
            let mut lo = [0u32; 8];
            let mut hi = [0u32; 8];
            for l in 0..8 {
                let c = b.wrapping_add((8 * g + l) as u64);
                lo[l] = c as u32;
                hi[l] = (c >> 32) as u32;
            }
            // SAFETY: both arrays hold eight u32.
            unsafe {
                xg[0] = _mm256_loadu_si256(lo.as_ptr() as *const __m256i);
                xg[1] = _mm256_loadu_si256(hi.as_ptr() as *const __m256i);
            }
            xg[2] = _mm256_set1_epi32(self.hi[0] as i32);
            xg[3] = _mm256_set1_epi32(self.hi[1] as i32);
        }
        let m0 = _mm256_set1_epi32(M0 as i32);
        let m1 = _mm256_set1_epi32(M1 as i32);
        let (mut k0, mut k1) = (self.key[0], self.key[1]);
        // (high, low) 32-bit halves of the 32×32→64 products of every lane.
        macro_rules! mulhilo {
            ($x:expr, $m:expr) => {{
                let even = _mm256_mul_epu32($x, $m);
                let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>($x), $m);
                let lo = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
                let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
                (hi, lo)
            }};
        }
        for _ in 0..10 {
            let (vk0, vk1) = (_mm256_set1_epi32(k0 as i32), _mm256_set1_epi32(k1 as i32));
            for xg in x.iter_mut() {
                let (h0, l0) = mulhilo!(xg[0], m0);
                let (h1, l1) = mulhilo!(xg[2], m1);
                *xg = [
                    _mm256_xor_si256(_mm256_xor_si256(h1, xg[1]), vk0),
                    l1,
                    _mm256_xor_si256(_mm256_xor_si256(h0, xg[3]), vk1),
                    l0,
                ];
            }
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        x
    }

    /// [`Stream::words`] with AVX-512: sixteen blocks per vector, four vectors in flight,
    /// the two XORs of a round as one `vpternlogd`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn words_avx512(&self, start: u64, out: &mut [u32]) {
        use std::arch::x86_64::*;
        const G: usize = 4;
        // Head: up to the next multiple of 64 words (16 blocks).
        let mut i = ((pos_to(start, 64)) as usize).min(out.len());
        self.words_portable(start, &mut out[..i]);
        let mut pos = start + i as u64;
        let m0 = _mm512_set1_epi32(M0 as i32);
        let m1 = _mm512_set1_epi32(M1 as i32);
        let c2 = _mm512_set1_epi32(self.hi[0] as i32);
        let c3 = _mm512_set1_epi32(self.hi[1] as i32);
        // (high, low) 32-bit halves of the 32×32→64 products of every lane.
        macro_rules! mulhilo {
            ($x:expr, $m:expr) => {{
                let even = _mm512_mul_epu32($x, $m);
                let odd = _mm512_mul_epu32(_mm512_srli_epi64::<32>($x), $m);
                let lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
                let hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<32>(even), odd);
                (hi, lo)
            }};
        }
        while out.len() - i >= 64 * G {
            let b = pos / 4;
            let mut x = [[_mm512_setzero_si512(); 4]; G];
            for (g, xg) in x.iter_mut().enumerate() {
                let mut lo = [0u32; 16];
                let mut hi = [0u32; 16];
                for l in 0..16 {
                    let c = b.wrapping_add((16 * g + l) as u64);
                    lo[l] = c as u32;
                    hi[l] = (c >> 32) as u32;
                }
                // SAFETY: both arrays hold sixteen u32.
                unsafe {
                    *xg = [
                        _mm512_loadu_si512(lo.as_ptr() as *const __m512i),
                        _mm512_loadu_si512(hi.as_ptr() as *const __m512i),
                        c2,
                        c3,
                    ];
                }
            }
            let (mut k0, mut k1) = (self.key[0], self.key[1]);
            for _ in 0..10 {
                let (vk0, vk1) = (_mm512_set1_epi32(k0 as i32), _mm512_set1_epi32(k1 as i32));
                for xg in x.iter_mut() {
                    let (h0, l0) = mulhilo!(xg[0], m0);
                    let (h1, l1) = mulhilo!(xg[2], m1);
                    // 0x96: a ^ b ^ c.
                    *xg = [
                        _mm512_ternarylogic_epi32::<0x96>(h1, xg[1], vk0),
                        l1,
                        _mm512_ternarylogic_epi32::<0x96>(h0, xg[3], vk1),
                        l0,
                    ];
                }
                k0 = k0.wrapping_add(W0);
                k1 = k1.wrapping_add(W1);
            }
            for (g, x) in x.iter().enumerate() {
                // Word-major lanes to block-major words: within each 128-bit lane as with
                // AVX2 (u_j holds blocks j, j+4, j+8, j+12), then a 4×4 transpose of lanes.
                let t0 = _mm512_unpacklo_epi32(x[0], x[1]);
                let t1 = _mm512_unpackhi_epi32(x[0], x[1]);
                let t2 = _mm512_unpacklo_epi32(x[2], x[3]);
                let t3 = _mm512_unpackhi_epi32(x[2], x[3]);
                let u0 = _mm512_unpacklo_epi64(t0, t2);
                let u1 = _mm512_unpackhi_epi64(t0, t2);
                let u2 = _mm512_unpacklo_epi64(t1, t3);
                let u3 = _mm512_unpackhi_epi64(t1, t3);
                let v0 = _mm512_shuffle_i32x4::<0x44>(u0, u1); // blocks 0 4 1 5
                let v1 = _mm512_shuffle_i32x4::<0x44>(u2, u3); // 2 6 3 7
                let v2 = _mm512_shuffle_i32x4::<0xEE>(u0, u1); // 8 12 9 13
                let v3 = _mm512_shuffle_i32x4::<0xEE>(u2, u3); // 10 14 11 15
                let at = i + 64 * g;
                let dst = out[at..at + 64].as_mut_ptr() as *mut __m512i;
                // SAFETY: dst covers 64 u32 = four unaligned 512-bit stores.
                unsafe {
                    _mm512_storeu_si512(dst, _mm512_shuffle_i32x4::<0x88>(v0, v1));
                    _mm512_storeu_si512(dst.add(1), _mm512_shuffle_i32x4::<0xDD>(v0, v1));
                    _mm512_storeu_si512(dst.add(2), _mm512_shuffle_i32x4::<0x88>(v2, v3));
                    _mm512_storeu_si512(dst.add(3), _mm512_shuffle_i32x4::<0xDD>(v2, v3));
                }
            }
            i += 64 * G;
            pos += 64 * G as u64;
        }
        // Fewer than 64·G words: AVX2 (every AVX-512F CPU has it) or one block at a time.
        // SAFETY: AVX-512F implies AVX2.
        unsafe { self.words_avx2(pos, &mut out[i..]) }
    }

    /// [`Stream::words`] for any CPU.
    #[inline(always)]
    pub fn words_portable(&self, start: u64, out: &mut [u32]) {
        let mut i = 0;
        let mut pos = start;
        // Unaligned head and the tail one block at a time; the middle LANES blocks at once.
        while i < out.len() && (!pos.is_multiple_of(4) || out.len() - i < 4 * LANES) {
            let blk = self.block(pos / 4);
            let lane = (pos % 4) as usize;
            let n = (4 - lane).min(out.len() - i);
            out[i..i + n].copy_from_slice(&blk[lane..lane + n]);
            i += n;
            pos += n as u64;
            if pos.is_multiple_of(4) && out.len() - i >= 4 * LANES {
                break;
            }
        }
        while out.len() - i >= 4 * LANES {
            let x = self.blocks(pos / 4);
            let dst = &mut out[i..i + 4 * LANES];
            for b in 0..LANES {
                dst[4 * b] = x[0][b];
                dst[4 * b + 1] = x[1][b];
                dst[4 * b + 2] = x[2][b];
                dst[4 * b + 3] = x[3][b];
            }
            i += 4 * LANES;
            pos += 4 * LANES as u64;
        }
        if i < out.len() {
            self.words_portable(pos, &mut out[i..]);
        }
    }

    /// Blocks `b .. b + LANES`, word-major (`x[w][lane]`), computed side by side so that
    /// the compiler turns each round into vector multiplies.
    #[inline(always)]
    pub fn blocks(&self, b: u64) -> [[u32; LANES]; 4] {
        let mut x0 = [0u32; LANES];
        let mut x1 = [0u32; LANES];
        for l in 0..LANES {
            let c = b + l as u64;
            x0[l] = c as u32;
            x1[l] = (c >> 32) as u32;
        }
        let mut x2 = [self.hi[0]; LANES];
        let mut x3 = [self.hi[1]; LANES];
        let (mut k0, mut k1) = (self.key[0], self.key[1]);
        for _ in 0..10 {
            for l in 0..LANES {
                let p0 = (M0 as u64) * (x0[l] as u64);
                let p1 = (M1 as u64) * (x2[l] as u64);
                let n0 = ((p1 >> 32) as u32) ^ x1[l] ^ k0;
                let n2 = ((p0 >> 32) as u32) ^ x3[l] ^ k1;
                x0[l] = n0;
                x1[l] = p1 as u32;
                x2[l] = n2;
                x3[l] = p0 as u32;
            }
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        [x0, x1, x2, x3]
    }
}

/// Words from `pos` to the next multiple of `m`.
fn pos_to(pos: u64, m: u64) -> u64 {
    pos.next_multiple_of(m) - pos
}

/// Philox blocks computed together by [`Stream::blocks`].
pub const LANES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32_10).
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn words_are_seekable() {
        let s = Stream::new(42, "fc1.weight", "values");
        let mut all = vec![0u32; 37];
        s.words(0, &mut all);
        for start in [0u64, 1, 3, 4, 5, 17] {
            let mut part = vec![0u32; 37 - start as usize];
            s.words(start, &mut part);
            assert_eq!(part, all[start as usize..]);
            assert_eq!(s.word(start), all[start as usize]);
        }
    }

    #[test]
    fn batched_blocks_equal_single_blocks() {
        let s = Stream::new(3, "x", "values");
        for b in [0u64, 5, u32::MAX as u64 - 3, 1 << 40] {
            let x = s.blocks(b);
            for (l, lane) in (0..LANES).map(|l| (l, s.block(b + l as u64))) {
                assert_eq!([x[0][l], x[1][l], x[2][l], x[3][l]], lane);
            }
        }
        for start in [0u64, 3, 31, 32, 63, 4 * (u32::MAX as u64) - 40] {
            let mut a = vec![0u32; 3000];
            s.words(start, &mut a);
            let mut p = vec![0u32; 3000];
            s.words_portable(start, &mut p);
            assert_eq!(a, p, "start {start}");
            for k in Kernel::available() {
                let mut v = vec![0u32; 3000];
                s.words_with(k, start, &mut v);
                assert_eq!(v, p, "{k:?}, start {start}");
            }
            for (i, w) in a.iter().enumerate() {
                assert_eq!(*w, s.word(start + i as u64), "start {start} + {i}");
            }
        }
    }

    #[test]
    fn streams_differ_by_seed_name_and_purpose() {
        let a = Stream::new(1, "w", "values");
        assert_ne!(a, Stream::new(2, "w", "values"));
        assert_ne!(a, Stream::new(1, "w2", "values"));
        assert_ne!(a, Stream::new(1, "w", "sparse-mask"));
    }
}
