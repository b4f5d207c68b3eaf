// AVX-512 fused scan kernels.
//
// scan_tile: a register-blocked matrix product with the queries along the
// vector lanes (4 vectors = 64 queries) and 6 base rows broadcast one
// dimension at a time: 24 accumulators, each multiply-add fed by one
// broadcast and one L1-resident query vector. The base is read in its own
// row-major layout (no packing), so memory-mapped bases work as they are.
// The epilogue compares 16 scores with 16 per-query thresholds at once.
//
// scan_one: 16 base rows at a time with one accumulator per row, then a
// transposing reduction turns the 16 accumulators into one vector of 16 dot
// products, compared with the query's threshold in one instruction.
#include <immintrin.h>

#include "flat.h"

namespace nk {
namespace {

constexpr size_t kVecs = 4;          // query vectors per tile
constexpr size_t kLanes = 16 * kVecs;  // queries per tile
constexpr int kRows = 6;             // base rows per register block

template <int MR>
inline void tile_rows(const float* qp, const float* rows, size_t r0, size_t d,
                      const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  __m512 acc[MR][kVecs];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (size_t v = 0; v < kVecs; ++v) acc[r][v] = _mm512_setzero_ps();
  const float* base = rows + r0 * d;
  for (size_t j = 0; j < d; ++j) {
    const float* qj = qp + j * kLanes;
    __m512 q0 = _mm512_loadu_ps(qj), q1 = _mm512_loadu_ps(qj + 16);
    __m512 q2 = _mm512_loadu_ps(qj + 32), q3 = _mm512_loadu_ps(qj + 48);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      __m512 b = _mm512_set1_ps(base[r * d + j]);
      acc[r][0] = _mm512_fmadd_ps(q0, b, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(q1, b, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(q2, b, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(q3, b, acc[r][3]);
    }
  }
  const __m512 vscale = _mm512_set1_ps(scale);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const __m512 bt = _mm512_set1_ps(bterm ? bterm[r0 + r] : 0.0f);
#pragma GCC unroll 4
    for (size_t v = 0; v < kVecs; ++v) {
      __m512 s = _mm512_fmadd_ps(acc[r][v], vscale, bt);
      __mmask16 m = _mm512_cmp_ps_mask(s, _mm512_loadu_ps(thr + 16 * v), _CMP_LT_OQ);
      if (__builtin_expect(m != 0, 0)) {
        alignas(64) float sv[16];
        _mm512_store_ps(sv, s);
        while (m) {
          unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
          m = static_cast<__mmask16>(m & (m - 1));
          push(ctx, 16 * v + lane, sv[lane], r0 + r);
        }
      }
    }
  }
}

void scan_tile_avx512(const float* qp, const float* rows, size_t nrows, size_t d,
                      const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  size_t r = 0;
  for (; r + kRows <= nrows; r += kRows)
    tile_rows<kRows>(qp, rows, r, d, bterm, scale, thr, push, ctx);
  for (; r < nrows; ++r) tile_rows<1>(qp, rows, r, d, bterm, scale, thr, push, ctx);
}

// Lane r of the result = sum of the lanes of a[r].
inline __m512 reduce16(__m512* a) {
  __m512 v[8], w[4], z[2];
  for (int i = 0; i < 8; ++i)
    v[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)
    z[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  __m512 f = _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_ps(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // f's lane 4c + t holds row 4t + c; put row r in lane r.
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(idx, f);
}

inline float dot_row(const float* q, const float* row, size_t d) {
  __m512 acc = _mm512_setzero_ps();
  size_t j = 0;
  for (; j + 16 <= d; j += 16)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(row + j), acc);
  if (j < d) {
    __mmask16 m = static_cast<__mmask16>((1u << (d - j)) - 1u);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + j), _mm512_maskz_loadu_ps(m, row + j), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

void scan_one_avx512(const float* q, const float* rows, size_t nrows, size_t d,
                     const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  const size_t full = d & ~size_t(15);
  const __mmask16 tail = static_cast<__mmask16>((1u << (d - full)) - 1u);
  const __m512 vscale = _mm512_set1_ps(scale);
  size_t r0 = 0;
  for (; r0 + 16 <= nrows; r0 += 16) {
    const float* base = rows + r0 * d;
    __m512 acc[16];
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    for (size_t j = 0; j < full; j += 16) {
      __m512 qv = _mm512_loadu_ps(q + j);
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r)
        acc[r] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(base + r * d + j), acc[r]);
    }
    if (tail) {
      __m512 qv = _mm512_maskz_loadu_ps(tail, q + full);
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r)
        acc[r] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, base + r * d + full), acc[r]);
    }
    __m512 dots = reduce16(acc);
    __m512 bt = bterm ? _mm512_loadu_ps(bterm + r0) : _mm512_setzero_ps();
    __m512 s = _mm512_fmadd_ps(dots, vscale, bt);
    __mmask16 m = _mm512_cmp_ps_mask(s, _mm512_set1_ps(*thr), _CMP_LT_OQ);
    if (__builtin_expect(m != 0, 0)) {
      alignas(64) float sv[16];
      _mm512_store_ps(sv, s);
      while (m) {
        unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
        m = static_cast<__mmask16>(m & (m - 1));
        if (sv[lane] < *thr) push(ctx, 0, sv[lane], r0 + lane);  // thr may have dropped
      }
    }
  }
  for (; r0 < nrows; ++r0) {
    float s = (bterm ? bterm[r0] : 0.0f) + scale * dot_row(q, rows + r0 * d, d);
    if (s < *thr) push(ctx, 0, s, r0);
  }
}

double fma_probe_avx512(size_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (size_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return 2.0 * 16.0 * 12.0 * static_cast<double>(iters);
}

}  // namespace

const FlatKernels kAvx512Flat = {"avx512", kLanes, scan_tile_avx512, scan_one_avx512,
                                 fma_probe_avx512};

}  // namespace nk
