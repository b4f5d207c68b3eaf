#include <immintrin.h>

#include "hnsw_codes.h"

namespace nk {
namespace {

// 8 codes -> 8 floats.
#define NK_CODES8(p) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(p))))

float code_l2_avx2(const float* qp, const float* scale, const uint8_t* code, size_t dpad) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (size_t i = 0; i < dpad; i += 16) {
    __m256 t0 = _mm256_fnmadd_ps(_mm256_loadu_ps(scale + i), NK_CODES8(code + i), _mm256_loadu_ps(qp + i));
    __m256 t1 = _mm256_fnmadd_ps(_mm256_loadu_ps(scale + i + 8), NK_CODES8(code + i + 8),
                                 _mm256_loadu_ps(qp + i + 8));
    acc0 = _mm256_fmadd_ps(t0, t0, acc0);
    acc1 = _mm256_fmadd_ps(t1, t1, acc1);
  }
  __m256 s = _mm256_add_ps(acc0, acc1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

float code_dot_avx2(const float* qp, const uint8_t* code, size_t dpad) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (size_t i = 0; i < dpad; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(qp + i), NK_CODES8(code + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(qp + i + 8), NK_CODES8(code + i + 8), acc1);
  }
  __m256 s = _mm256_add_ps(acc0, acc1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

#undef NK_CODES8

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

const CodeKernels kAvx2CodeKernels = {"avx2", code_l2_avx2, code_dot_avx2, code_dot_i16_avx2};

}  // namespace nk
