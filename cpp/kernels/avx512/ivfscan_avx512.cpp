// AVX-512 blocked kernels: one block of 16 vectors is exactly one register.
#include <immintrin.h>

#include "kernels/ivfscan.h"

namespace nk {
namespace {

void dot_blocks_avx512(const float* q, const float* blocks, size_t nblocks, size_t d, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const float* x = blocks + b * d * 16;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t j = 0;
    for (; j + 4 <= d; j += 4) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[j]), _mm512_loadu_ps(x + j * 16), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[j + 1]), _mm512_loadu_ps(x + j * 16 + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_set1_ps(q[j + 2]), _mm512_loadu_ps(x + j * 16 + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_set1_ps(q[j + 3]), _mm512_loadu_ps(x + j * 16 + 48), a3);
    }
    for (; j < d; ++j) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[j]), _mm512_loadu_ps(x + j * 16), a0);
    _mm512_storeu_ps(out + b * 16, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
}

void l2_blocks_avx512(const float* q, const float* blocks, size_t nblocks, size_t d, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const float* x = blocks + b * d * 16;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t j = 0;
    for (; j + 4 <= d; j += 4) {
      __m512 t0 = _mm512_sub_ps(_mm512_set1_ps(q[j]), _mm512_loadu_ps(x + j * 16));
      __m512 t1 = _mm512_sub_ps(_mm512_set1_ps(q[j + 1]), _mm512_loadu_ps(x + j * 16 + 16));
      __m512 t2 = _mm512_sub_ps(_mm512_set1_ps(q[j + 2]), _mm512_loadu_ps(x + j * 16 + 32));
      __m512 t3 = _mm512_sub_ps(_mm512_set1_ps(q[j + 3]), _mm512_loadu_ps(x + j * 16 + 48));
      a0 = _mm512_fmadd_ps(t0, t0, a0);
      a1 = _mm512_fmadd_ps(t1, t1, a1);
      a2 = _mm512_fmadd_ps(t2, t2, a2);
      a3 = _mm512_fmadd_ps(t3, t3, a3);
    }
    for (; j < d; ++j) {
      __m512 t = _mm512_sub_ps(_mm512_set1_ps(q[j]), _mm512_loadu_ps(x + j * 16));
      a0 = _mm512_fmadd_ps(t, t, a0);
    }
    _mm512_storeu_ps(out + b * 16, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
}

}  // namespace

const BlockKernels kBlockAvx512 = {"avx512", dot_blocks_avx512, l2_blocks_avx512};

}  // namespace nk
