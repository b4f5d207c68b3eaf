// AVX2 (+ popcnt) L1 and hamming kernels.
#include <immintrin.h>

#include "kernels/tree_kernels.h"

namespace nk {
namespace trees {
namespace {

float l1_avx2(const float* a, const float* b, size_t d) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))));
    s1 = _mm256_add_ps(s1, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8))));
  }
  if (i + 8 <= d) {
    s0 = _mm256_add_ps(s0, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))));
    i += 8;
  }
  __m256 s = _mm256_add_ps(s0, s1);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  float r = _mm_cvtss_f32(lo);
  for (; i < d; ++i) {
    float t = a[i] - b[i];
    r += t < 0 ? -t : t;
  }
  return r;
}

float hamming_popcnt(const uint64_t* a, const uint64_t* b, size_t words) {
  uint64_t s0 = 0, s1 = 0;
  size_t i = 0;
  for (; i + 2 <= words; i += 2) {
    s0 += static_cast<uint64_t>(_mm_popcnt_u64(a[i] ^ b[i]));
    s1 += static_cast<uint64_t>(_mm_popcnt_u64(a[i + 1] ^ b[i + 1]));
  }
  if (i < words) s0 += static_cast<uint64_t>(_mm_popcnt_u64(a[i] ^ b[i]));
  return static_cast<float>(s0 + s1);
}

}  // namespace

const TreeKernels kTreeAvx2 = {"avx2", l1_avx2, hamming_popcnt};

}  // namespace trees
}  // namespace nk
