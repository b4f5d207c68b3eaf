// AVX-512 L1 and hamming kernels (vpopcntdq for long bit vectors).
#include <immintrin.h>

#include "kernels/tree_kernels.h"

namespace nk {
namespace trees {
namespace {

float l1_avx512(const float* a, const float* b, size_t d) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i))));
    s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16))));
  }
  if (i + 16 <= d) {
    s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i))));
    i += 16;
  }
  if (i < d) {
    __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1u);
    s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i))));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

float hamming_avx512(const uint64_t* a, const uint64_t* b, size_t words) {
  __m512i acc = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= words; i += 8) {
    __m512i x = _mm512_xor_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
  }
  uint64_t s = static_cast<uint64_t>(_mm512_reduce_add_epi64(acc));
  for (; i < words; ++i) s += static_cast<uint64_t>(_mm_popcnt_u64(a[i] ^ b[i]));
  return static_cast<float>(s);
}

}  // namespace

const TreeKernels kTreeAvx512 = {"avx512", l1_avx512, hamming_avx512};

}  // namespace trees
}  // namespace nk
