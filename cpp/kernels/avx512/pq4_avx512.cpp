// AVX-512 fast scan: one 64-byte load covers four sub-quantisers of a block;
// _mm512_shuffle_epi8 looks up within each 128-bit lane. Same parity-split
// 16-bit accumulation as the AVX2 kernel; a trailing pair of sub-quantisers
// (mpad % 4 == 2) goes through 256-bit registers.
#include <immintrin.h>

#include "kernels/pq4.h"

namespace nk {
namespace {

void pq4_scan_avx512(const uint8_t* codes, size_t nblocks, size_t mpad, const uint8_t* lut,
                     uint16_t* out) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i low8 = _mm512_set1_epi16(0x00ff);
  const __m256i low4y = _mm256_set1_epi8(0x0f);
  const __m256i low8y = _mm256_set1_epi16(0x00ff);
  const size_t m4 = mpad & ~size_t(3);
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* c = codes + b * mpad * 16;
    __m512i even_lo = _mm512_setzero_si512(), odd_lo = even_lo, even_hi = even_lo, odd_hi = even_lo;
    for (size_t m = 0; m < m4; m += 4) {
      __m512i cv = _mm512_loadu_si512(c + m * 16);
      __m512i tab = _mm512_loadu_si512(lut + m * 16);
      __m512i rl = _mm512_shuffle_epi8(tab, _mm512_and_si512(cv, low4));
      __m512i rh = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(cv, 4), low4));
      even_lo = _mm512_add_epi16(even_lo, _mm512_and_si512(rl, low8));
      odd_lo = _mm512_add_epi16(odd_lo, _mm512_srli_epi16(rl, 8));
      even_hi = _mm512_add_epi16(even_hi, _mm512_and_si512(rh, low8));
      odd_hi = _mm512_add_epi16(odd_hi, _mm512_srli_epi16(rh, 8));
    }
    // Fold the 512-bit accumulators to 256 bits (lanes 0+2, 1+3).
    __m256i el = _mm256_add_epi16(_mm512_castsi512_si256(even_lo), _mm512_extracti64x4_epi64(even_lo, 1));
    __m256i ol = _mm256_add_epi16(_mm512_castsi512_si256(odd_lo), _mm512_extracti64x4_epi64(odd_lo, 1));
    __m256i eh = _mm256_add_epi16(_mm512_castsi512_si256(even_hi), _mm512_extracti64x4_epi64(even_hi, 1));
    __m256i oh = _mm256_add_epi16(_mm512_castsi512_si256(odd_hi), _mm512_extracti64x4_epi64(odd_hi, 1));
    if (m4 < mpad) {
      __m256i cv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + m4 * 16));
      __m256i tab = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + m4 * 16));
      __m256i rl = _mm256_shuffle_epi8(tab, _mm256_and_si256(cv, low4y));
      __m256i rh = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(cv, 4), low4y));
      el = _mm256_add_epi16(el, _mm256_and_si256(rl, low8y));
      ol = _mm256_add_epi16(ol, _mm256_srli_epi16(rl, 8));
      eh = _mm256_add_epi16(eh, _mm256_and_si256(rh, low8y));
      oh = _mm256_add_epi16(oh, _mm256_srli_epi16(rh, 8));
    }
    __m128i e0 = _mm_add_epi16(_mm256_castsi256_si128(el), _mm256_extracti128_si256(el, 1));
    __m128i o0 = _mm_add_epi16(_mm256_castsi256_si128(ol), _mm256_extracti128_si256(ol, 1));
    __m128i e1 = _mm_add_epi16(_mm256_castsi256_si128(eh), _mm256_extracti128_si256(eh, 1));
    __m128i o1 = _mm_add_epi16(_mm256_castsi256_si128(oh), _mm256_extracti128_si256(oh, 1));
    __m128i* o = reinterpret_cast<__m128i*>(out + b * 32);
    _mm_storeu_si128(o + 0, _mm_unpacklo_epi16(e0, o0));
    _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(e0, o0));
    _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(e1, o1));
    _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(e1, o1));
  }
}

}  // namespace

const Pq4Kernels kPq4Avx512 = {"avx512", pq4_scan_avx512};

}  // namespace nk
