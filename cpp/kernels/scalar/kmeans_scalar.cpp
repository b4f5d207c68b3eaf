// Portable k-means assignment kernel (see kernels/kmeans_kernels.h). SSE2 is
// part of the x86-64 baseline, so its intrinsics need no run-time dispatch.
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <algorithm>
#include <limits>

#include "kernels/kmeans_kernels.h"

namespace {
// Row-wise argmax of prod[i, j] - bias[j]: the assignment step of k-means once
// BLAS has computed x.c (bias = |c|^2 / 2). One pass over each row, which is
// small enough to stay in L1 for the second (index-finding) pass.
void argmax_bias_rows(const float* prod, const float* bias, size_t m, size_t k, int64_t* labels,
                      float* best) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < m; ++i) {
    const float* p = prod + i * k;
    float mx = ninf;
    size_t j = 0;
#if defined(__SSE2__)
    // SSE2 is part of the x86-64 baseline, so this needs no run-time dispatch.
    __m128 a0 = _mm_set1_ps(ninf), a1 = a0, a2 = a0, a3 = a0;
    for (; j + 16 <= k; j += 16) {
      a0 = _mm_max_ps(a0, _mm_sub_ps(_mm_loadu_ps(p + j), _mm_loadu_ps(bias + j)));
      a1 = _mm_max_ps(a1, _mm_sub_ps(_mm_loadu_ps(p + j + 4), _mm_loadu_ps(bias + j + 4)));
      a2 = _mm_max_ps(a2, _mm_sub_ps(_mm_loadu_ps(p + j + 8), _mm_loadu_ps(bias + j + 8)));
      a3 = _mm_max_ps(a3, _mm_sub_ps(_mm_loadu_ps(p + j + 12), _mm_loadu_ps(bias + j + 12)));
    }
    a0 = _mm_max_ps(_mm_max_ps(a0, a1), _mm_max_ps(a2, a3));
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, a0);
    mx = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
#endif
    for (; j < k; ++j) mx = std::max(mx, p[j] - bias[j]);
    int64_t arg = 0;
    size_t t = 0;
#if defined(__SSE2__)
    __m128 target = _mm_set1_ps(mx);
    for (; t + 4 <= k; t += 4) {
      int hit = _mm_movemask_ps(
          _mm_cmpeq_ps(_mm_sub_ps(_mm_loadu_ps(p + t), _mm_loadu_ps(bias + t)), target));
      if (hit) { t += __builtin_ctz(hit); break; }
    }
#endif
    for (; t < k; ++t)
      if (p[t] - bias[t] == mx) break;
    arg = (int64_t)(t < k ? t : 0);
    labels[i] = arg;
    best[i] = mx;
  }
}
}  // namespace

namespace nk {
const KmeansKernels kKmeansScalar = {"scalar", argmax_bias_rows};
}  // namespace nk
