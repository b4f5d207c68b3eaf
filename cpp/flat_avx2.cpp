// AVX2 fused scan kernels: the same shapes as flat_avx512.cpp with 8-lane
// vectors and 16 registers (12 accumulators: 16 queries x 6 base rows).
#include <immintrin.h>

#include "flat.h"

namespace nk {
namespace {

constexpr size_t kVecs = 2;
constexpr size_t kLanes = 8 * kVecs;
constexpr int kRows = 6;

template <int MR>
inline void tile_rows(const float* qp, const float* rows, size_t r0, size_t d,
                      const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  __m256 acc[MR][kVecs];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = _mm256_setzero_ps();
    acc[r][1] = _mm256_setzero_ps();
  }
  const float* base = rows + r0 * d;
  for (size_t j = 0; j < d; ++j) {
    const float* qj = qp + j * kLanes;
    __m256 q0 = _mm256_loadu_ps(qj), q1 = _mm256_loadu_ps(qj + 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      __m256 b = _mm256_broadcast_ss(base + r * d + j);
      acc[r][0] = _mm256_fmadd_ps(q0, b, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(q1, b, acc[r][1]);
    }
  }
  const __m256 vscale = _mm256_set1_ps(scale);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const __m256 bt = _mm256_set1_ps(bterm ? bterm[r0 + r] : 0.0f);
    for (size_t v = 0; v < kVecs; ++v) {
      __m256 s = _mm256_fmadd_ps(acc[r][v], vscale, bt);
      int m = _mm256_movemask_ps(_mm256_cmp_ps(s, _mm256_loadu_ps(thr + 8 * v), _CMP_LT_OQ));
      if (__builtin_expect(m != 0, 0)) {
        alignas(32) float sv[8];
        _mm256_store_ps(sv, s);
        while (m) {
          unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
          m &= m - 1;
          push(ctx, 8 * v + lane, sv[lane], r0 + r);
        }
      }
    }
  }
}

void scan_tile_avx2(const float* qp, const float* rows, size_t nrows, size_t d,
                    const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  size_t r = 0;
  for (; r + kRows <= nrows; r += kRows)
    tile_rows<kRows>(qp, rows, r, d, bterm, scale, thr, push, ctx);
  for (; r < nrows; ++r) tile_rows<1>(qp, rows, r, d, bterm, scale, thr, push, ctx);
}

inline __m256i tail_mask8(size_t rem) {
  alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - rem));
}

// Lane r of the result = sum of the lanes of a[r].
inline __m256 reduce8(__m256* a) {
  __m256 v[4], w[2];
  for (int i = 0; i < 4; ++i)
    v[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
  for (int i = 0; i < 2; ++i)
    w[i] = _mm256_add_ps(_mm256_shuffle_ps(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  __m256 f = _mm256_add_ps(_mm256_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm256_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // f's lane 4c + i holds row 2i + c; put row r in lane r.
  const __m256i idx = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  return _mm256_permutevar8x32_ps(f, idx);
}

inline float hsum8(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

void scan_one_avx2(const float* q, const float* rows, size_t nrows, size_t d,
                   const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  const size_t full = d & ~size_t(7);
  const size_t rem = d - full;
  const __m256i tmask = tail_mask8(rem);
  const __m256 vscale = _mm256_set1_ps(scale);
  size_t r0 = 0;
  for (; r0 + 8 <= nrows; r0 += 8) {
    const float* base = rows + r0 * d;
    __m256 acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
    for (size_t j = 0; j < full; j += 8) {
      __m256 qv = _mm256_loadu_ps(q + j);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r)
        acc[r] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(base + r * d + j), acc[r]);
    }
    if (rem) {
      __m256 qv = _mm256_maskload_ps(q + full, tmask);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r)
        acc[r] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(base + r * d + full, tmask), acc[r]);
    }
    __m256 dots = reduce8(acc);
    __m256 bt = bterm ? _mm256_loadu_ps(bterm + r0) : _mm256_setzero_ps();
    __m256 s = _mm256_fmadd_ps(dots, vscale, bt);
    int m = _mm256_movemask_ps(_mm256_cmp_ps(s, _mm256_set1_ps(*thr), _CMP_LT_OQ));
    if (__builtin_expect(m != 0, 0)) {
      alignas(32) float sv[8];
      _mm256_store_ps(sv, s);
      while (m) {
        unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
        m &= m - 1;
        if (sv[lane] < *thr) push(ctx, 0, sv[lane], r0 + lane);
      }
    }
  }
  for (; r0 < nrows; ++r0) {
    const float* row = rows + r0 * d;
    __m256 acc = _mm256_setzero_ps();
    for (size_t j = 0; j < full; j += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(row + j), acc);
    if (rem)
      acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + full, tmask),
                            _mm256_maskload_ps(row + full, tmask), acc);
    float s = (bterm ? bterm[r0] : 0.0f) + scale * hsum8(acc);
    if (s < *thr) push(ctx, 0, s, r0);
  }
}

double fma_probe_avx2(size_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (size_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  volatile float sink = hsum8(s);
  (void)sink;
  return 2.0 * 8.0 * 12.0 * static_cast<double>(iters);
}

}  // namespace

const FlatKernels kAvx2Flat = {"avx2", kLanes, scan_tile_avx2, scan_one_avx2, fma_probe_avx2};

}  // namespace nk
