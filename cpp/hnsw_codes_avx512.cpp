#include <immintrin.h>

#include "hnsw_codes.h"

namespace nk {
namespace {

float code_l2_avx512(const float* qp, const float* scale, const uint8_t* code, size_t dpad) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= dpad; i += 32) {
    __m512 c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(code + i))));
    __m512 c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(code + i + 16))));
    __m512 t0 = _mm512_fnmadd_ps(_mm512_loadu_ps(scale + i), c0, _mm512_loadu_ps(qp + i));
    __m512 t1 = _mm512_fnmadd_ps(_mm512_loadu_ps(scale + i + 16), c1, _mm512_loadu_ps(qp + i + 16));
    acc0 = _mm512_fmadd_ps(t0, t0, acc0);
    acc1 = _mm512_fmadd_ps(t1, t1, acc1);
  }
  if (i < dpad) {
    __m512 c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(code + i))));
    __m512 t0 = _mm512_fnmadd_ps(_mm512_loadu_ps(scale + i), c0, _mm512_loadu_ps(qp + i));
    acc0 = _mm512_fmadd_ps(t0, t0, acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

float code_dot_avx512(const float* qp, const uint8_t* code, size_t dpad) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= dpad; i += 32) {
    __m512 c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(code + i))));
    __m512 c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(code + i + 16))));
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(qp + i), c0, acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(qp + i + 16), c1, acc1);
  }
  if (i < dpad) {
    __m512 c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(code + i))));
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(qp + i), c0, acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

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

const CodeKernels kAvx512CodeKernels = {"avx512", code_l2_avx512, code_dot_avx512,
                                        code_dot_i16_avx512};

}  // namespace nk
