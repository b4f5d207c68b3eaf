// AVX-512 argmax kernel for the k-means assignment (see kmeans_kernels.h).
#include <immintrin.h>

#include "kernels/kmeans_kernels.h"

namespace nk {
namespace {

void argmax_bias_avx512(const float* prod, const float* bias, size_t m, size_t k, int64_t* labels,
                        float* best) {
  const float ninf = -__builtin_inff();
  const __m512 vninf = _mm512_set1_ps(ninf);
  for (size_t i = 0; i < m; ++i) {
    const float* p = prod + i * k;
    __m512 a0 = vninf, a1 = vninf, a2 = vninf, a3 = vninf;
    size_t j = 0;
    for (; j + 64 <= k; j += 64) {
      a0 = _mm512_max_ps(a0, _mm512_sub_ps(_mm512_loadu_ps(p + j), _mm512_loadu_ps(bias + j)));
      a1 = _mm512_max_ps(a1, _mm512_sub_ps(_mm512_loadu_ps(p + j + 16), _mm512_loadu_ps(bias + j + 16)));
      a2 = _mm512_max_ps(a2, _mm512_sub_ps(_mm512_loadu_ps(p + j + 32), _mm512_loadu_ps(bias + j + 32)));
      a3 = _mm512_max_ps(a3, _mm512_sub_ps(_mm512_loadu_ps(p + j + 48), _mm512_loadu_ps(bias + j + 48)));
    }
    for (; j + 16 <= k; j += 16)
      a0 = _mm512_max_ps(a0, _mm512_sub_ps(_mm512_loadu_ps(p + j), _mm512_loadu_ps(bias + j)));
    if (j < k) {  // masked tail: absent lanes stay -inf
      __mmask16 mk = __mmask16((1u << (k - j)) - 1);
      __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + j), _mm512_maskz_loadu_ps(mk, bias + j));
      a1 = _mm512_max_ps(a1, _mm512_mask_blend_ps(mk, vninf, v));
    }
    float mx = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a0, a1), _mm512_max_ps(a2, a3)));
    const __m512 target = _mm512_set1_ps(mx);
    size_t t = 0;
    size_t found = k;
    for (; t < k; t += 16) {
      __mmask16 mk = k - t >= 16 ? __mmask16(0xffff) : __mmask16((1u << (k - t)) - 1);
      __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + t), _mm512_maskz_loadu_ps(mk, bias + t));
      __mmask16 hit = _mm512_mask_cmp_ps_mask(mk, v, target, _CMP_EQ_OQ);
      if (hit) {
        found = t + size_t(__builtin_ctz(unsigned(hit)));
        break;
      }
    }
    labels[i] = int64_t(found < k ? found : 0);
    best[i] = mx;
  }
}

}  // namespace

const KmeansKernels kKmeansAvx512 = {"avx512", argmax_bias_avx512};

}  // namespace nk
