#include <immintrin.h>

#include "kernels/hnsw_codes.h"

namespace nk {
namespace {

int32_t code_dot_i16_avx2(const int16_t* qi, const uint8_t* code, size_t dpad) {
  __m256i acc = _mm256_setzero_si256();
  for (size_t i = 0; i < dpad; i += 16) {
    __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(code + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(c, _mm256_loadu_si256((const __m256i*)(qi + i))));
  }
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
  return _mm_cvtsi128_si32(h);
}

}  // namespace

const CodeKernels kAvx2CodeKernels = {"avx2", code_dot_i16_avx2};

}  // namespace nk
