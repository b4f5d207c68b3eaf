// AVX2 fast scan: one 32-byte load covers two sub-quantisers of a block, and
// _mm256_shuffle_epi8 looks up 16 codes per lane. 8-bit results are summed in
// 16-bit lanes split by vector parity (even bytes masked, odd bytes shifted),
// so nothing overflows and no widening shuffle is needed in the inner loop.
#include <immintrin.h>

#include "kernels/pq4.h"

namespace nk {
namespace {

void pq4_scan_avx2(const uint8_t* codes, size_t nblocks, size_t mpad, const uint8_t* lut,
                   uint16_t* out) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i low8 = _mm256_set1_epi16(0x00ff);
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* c = codes + b * mpad * 16;
    __m256i even_lo = _mm256_setzero_si256(), odd_lo = even_lo, even_hi = even_lo, odd_hi = even_lo;
    for (size_t m = 0; m < mpad; m += 2) {
      __m256i cv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + m * 16));
      __m256i tab = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + m * 16));
      __m256i rl = _mm256_shuffle_epi8(tab, _mm256_and_si256(cv, low4));
      __m256i rh = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(cv, 4), low4));
      even_lo = _mm256_add_epi16(even_lo, _mm256_and_si256(rl, low8));
      odd_lo = _mm256_add_epi16(odd_lo, _mm256_srli_epi16(rl, 8));
      even_hi = _mm256_add_epi16(even_hi, _mm256_and_si256(rh, low8));
      odd_hi = _mm256_add_epi16(odd_hi, _mm256_srli_epi16(rh, 8));
    }
    // Lane 0 holds sub-quantiser m, lane 1 holds m+1: add them.
    __m128i el = _mm_add_epi16(_mm256_castsi256_si128(even_lo), _mm256_extracti128_si256(even_lo, 1));
    __m128i ol = _mm_add_epi16(_mm256_castsi256_si128(odd_lo), _mm256_extracti128_si256(odd_lo, 1));
    __m128i eh = _mm_add_epi16(_mm256_castsi256_si128(even_hi), _mm256_extracti128_si256(even_hi, 1));
    __m128i oh = _mm_add_epi16(_mm256_castsi256_si128(odd_hi), _mm256_extracti128_si256(odd_hi, 1));
    __m128i* o = reinterpret_cast<__m128i*>(out + b * 32);
    _mm_storeu_si128(o + 0, _mm_unpacklo_epi16(el, ol));  // vectors 0..7
    _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(el, ol));  // 8..15
    _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(eh, oh));  // 16..23
    _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(eh, oh));  // 24..31
  }
}

}  // namespace

const Pq4Kernels kPq4Avx2 = {"avx2", pq4_scan_avx2};

}  // namespace nk
