// AVX2 argmax kernel for the k-means assignment (see kmeans_kernels.h).
#include <immintrin.h>

#include "kernels/kmeans_kernels.h"

namespace nk {
namespace {

void argmax_bias_avx2(const float* prod, const float* bias, size_t m, size_t k, int64_t* labels,
                      float* best) {
  const float ninf = -__builtin_inff();
  for (size_t i = 0; i < m; ++i) {
    const float* p = prod + i * k;
    __m256 a0 = _mm256_set1_ps(ninf), a1 = a0, a2 = a0, a3 = a0;
    size_t j = 0;
    for (; j + 32 <= k; j += 32) {
      a0 = _mm256_max_ps(a0, _mm256_sub_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(bias + j)));
      a1 = _mm256_max_ps(a1, _mm256_sub_ps(_mm256_loadu_ps(p + j + 8), _mm256_loadu_ps(bias + j + 8)));
      a2 = _mm256_max_ps(a2, _mm256_sub_ps(_mm256_loadu_ps(p + j + 16), _mm256_loadu_ps(bias + j + 16)));
      a3 = _mm256_max_ps(a3, _mm256_sub_ps(_mm256_loadu_ps(p + j + 24), _mm256_loadu_ps(bias + j + 24)));
    }
    for (; j + 8 <= k; j += 8)
      a0 = _mm256_max_ps(a0, _mm256_sub_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(bias + j)));
    a0 = _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float mx = _mm_cvtss_f32(h);
    for (; j < k; ++j) {
      float v = p[j] - bias[j];
      mx = v > mx ? v : mx;
    }
    // first index holding the maximum
    const __m256 target = _mm256_set1_ps(mx);
    size_t t = 0;
    for (; t + 8 <= k; t += 8) {
      int hit = _mm256_movemask_ps(_mm256_cmp_ps(
          _mm256_sub_ps(_mm256_loadu_ps(p + t), _mm256_loadu_ps(bias + t)), target, _CMP_EQ_OQ));
      if (hit) {
        t += size_t(__builtin_ctz(unsigned(hit)));
        break;
      }
    }
    if (t + 8 > k || p[t] - bias[t] != mx)
      for (; t < k; ++t)
        if (p[t] - bias[t] == mx) break;
    labels[i] = int64_t(t < k ? t : 0);
    best[i] = mx;
  }
}

}  // namespace

const KmeansKernels kKmeansAvx2 = {"avx2", argmax_bias_avx2};

}  // namespace nk
