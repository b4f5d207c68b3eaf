// AVX2 blocked kernels: each block of 16 vectors is two 8-lane halves.
#include <immintrin.h>

#include "kernels/ivfscan.h"

namespace nk {
namespace {

void dot_blocks_avx2(const float* q, const float* blocks, size_t nblocks, size_t d, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const float* x = blocks + b * d * 16;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
    size_t j = 0;
    for (; j + 2 <= d; j += 2) {
      __m256 q0 = _mm256_set1_ps(q[j]), q1 = _mm256_set1_ps(q[j + 1]);
      a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(x + j * 16), a0);
      a1 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(x + j * 16 + 8), a1);
      c0 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(x + j * 16 + 16), c0);
      c1 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(x + j * 16 + 24), c1);
    }
    if (j < d) {
      __m256 q0 = _mm256_set1_ps(q[j]);
      a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(x + j * 16), a0);
      a1 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(x + j * 16 + 8), a1);
    }
    _mm256_storeu_ps(out + b * 16, _mm256_add_ps(a0, c0));
    _mm256_storeu_ps(out + b * 16 + 8, _mm256_add_ps(a1, c1));
  }
}

void l2_blocks_avx2(const float* q, const float* blocks, size_t nblocks, size_t d, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const float* x = blocks + b * d * 16;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
    size_t j = 0;
    for (; j + 2 <= d; j += 2) {
      __m256 q0 = _mm256_set1_ps(q[j]), q1 = _mm256_set1_ps(q[j + 1]);
      __m256 t0 = _mm256_sub_ps(q0, _mm256_loadu_ps(x + j * 16));
      __m256 t1 = _mm256_sub_ps(q0, _mm256_loadu_ps(x + j * 16 + 8));
      __m256 t2 = _mm256_sub_ps(q1, _mm256_loadu_ps(x + j * 16 + 16));
      __m256 t3 = _mm256_sub_ps(q1, _mm256_loadu_ps(x + j * 16 + 24));
      a0 = _mm256_fmadd_ps(t0, t0, a0);
      a1 = _mm256_fmadd_ps(t1, t1, a1);
      c0 = _mm256_fmadd_ps(t2, t2, c0);
      c1 = _mm256_fmadd_ps(t3, t3, c1);
    }
    if (j < d) {
      __m256 q0 = _mm256_set1_ps(q[j]);
      __m256 t0 = _mm256_sub_ps(q0, _mm256_loadu_ps(x + j * 16));
      __m256 t1 = _mm256_sub_ps(q0, _mm256_loadu_ps(x + j * 16 + 8));
      a0 = _mm256_fmadd_ps(t0, t0, a0);
      a1 = _mm256_fmadd_ps(t1, t1, a1);
    }
    _mm256_storeu_ps(out + b * 16, _mm256_add_ps(a0, c0));
    _mm256_storeu_ps(out + b * 16 + 8, _mm256_add_ps(a1, c1));
  }
}

}  // namespace

const BlockKernels kBlockAvx2 = {"avx2", dot_blocks_avx2, l2_blocks_avx2};

}  // namespace nk
