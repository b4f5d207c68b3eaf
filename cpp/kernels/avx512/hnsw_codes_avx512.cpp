#include <immintrin.h>

#include "kernels/hnsw_codes.h"

namespace nk {
namespace {

int32_t code_dot_i16_avx512(const int16_t* qi, const uint8_t* code, size_t dpad) {
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < dpad; i += 32) {
    if (i + 32 > dpad) {  // dpad is a multiple of 16: one half-width step
      __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(code + i)));
      __m256i p = _mm256_madd_epi16(c, _mm256_loadu_si256((const __m256i*)(qi + i)));
      acc = _mm512_add_epi32(acc, _mm512_inserti64x4(_mm512_setzero_si512(), p, 0));
      break;
    }
    __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i*)(code + i)));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(c, _mm512_loadu_si512((const void*)(qi + i))));
  }
  return _mm512_reduce_add_epi32(acc);
}

}  // namespace

const CodeKernels kAvx512CodeKernels = {"avx512", code_dot_i16_avx512};

}  // namespace nk
