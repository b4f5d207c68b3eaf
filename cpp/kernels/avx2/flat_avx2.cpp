// AVX2 fused scan kernels: the same shapes as flat_avx512.cpp with 8-lane
// vectors and 16 registers (12 accumulators: 16 queries x 6 base rows).
#include <immintrin.h>

#include "kernels/flat_scan.h"

namespace nk {
namespace {

constexpr size_t kVecs = 2;
constexpr size_t kLanes = 8 * kVecs;
constexpr int kRows = 6;

// Scores of MR rows x 16 queries into sc (row-major, 16 per row); free of
// calls so that the accumulators live in registers.
template <int MR>
inline void tile_scores(const float* qp, const float* base, size_t d, const float* bterm,
                        float scale, float* sc) {
  __m256 acc[MR][kVecs];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = _mm256_setzero_ps();
    acc[r][1] = _mm256_setzero_ps();
  }
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
    const __m256 bt = _mm256_set1_ps(bterm ? bterm[r] : 0.0f);
    _mm256_store_ps(sc + r * kLanes, _mm256_fmadd_ps(acc[r][0], vscale, bt));
    _mm256_store_ps(sc + r * kLanes + 8, _mm256_fmadd_ps(acc[r][1], vscale, bt));
  }
}

template <int MR>
inline void tile_select(const float* sc, size_t r0, const float* thr, size_t lane0,
                        PushFn push, void* ctx) {
  for (int r = 0; r < MR; ++r) {
    for (size_t v = 0; v < kVecs; ++v) {
      const float* s = sc + r * kLanes + 8 * v;
      int m = _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_load_ps(s), _mm256_loadu_ps(thr + 8 * v), _CMP_LE_OQ));
      while (__builtin_expect(m != 0, 0)) {
        unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
        m &= m - 1;
        push(ctx, lane0 + 8 * v + lane, s[lane], r0 + r);
      }
    }
  }
}

template <int MR>
inline void tile_select_rev(const float* sc, size_t r0, const float* bterm, size_t lane0,
                            const Reverse& rv, void* ctx) {
  for (int r = 0; r < MR; ++r) {
    const __m256 btr = _mm256_set1_ps(bterm ? bterm[r0 + r] : 0.0f);
    float* rthr = rv.rthr + r0 + r;
    for (size_t v = 0; v < kVecs; ++v) {
      __m256 x = _mm256_add_ps(_mm256_load_ps(sc + r * kLanes + 8 * v),
                               _mm256_sub_ps(_mm256_loadu_ps(rv.qbterm + lane0 + 8 * v), btr));
      int m = _mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_set1_ps(*rthr), _CMP_LE_OQ));
      if (__builtin_expect(m != 0, 0)) {
        alignas(32) float xv[8];
        _mm256_store_ps(xv, x);
        while (m) {
          unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
          m &= m - 1;
          if (xv[lane] <= *rthr) rv.push(ctx, lane0 + 8 * v + lane, xv[lane], r0 + r);
        }
      }
    }
  }
}

template <int MR>
inline void tile_rows(const float* qp, const float* rows, size_t r0, size_t d,
                      const float* bterm, float scale, const float* thr, size_t lane0,
                      PushFn push, void* ctx, const Reverse* rev) {
  alignas(32) float sc[MR * kLanes];
  tile_scores<MR>(qp, rows + r0 * d, d, bterm ? bterm + r0 : nullptr, scale, sc);
  tile_select<MR>(sc, r0, thr, lane0, push, ctx);
  if (rev) tile_select_rev<MR>(sc, r0, bterm, lane0, *rev, ctx);
}

void scan_tiles_avx2(const float* qp, size_t ntiles, const float* rows, size_t nrows,
                      size_t d, const float* bterm, float scale, float* thr, PushFn push,
                      void* ctx, const Reverse* rev) {
  // Tiles outside, rows inside: the tile's packed queries stay in L1 while
  // the block of base rows (sized for L2 by the driver) streams past.
  for (size_t t = 0; t < ntiles; ++t) {
    const float* qt = qp + t * kLanes * d;
    float* tt = thr + t * kLanes;
    size_t r = 0;
    for (; r + kRows <= nrows; r += kRows)
      tile_rows<kRows>(qt, rows, r, d, bterm, scale, tt, t * kLanes, push, ctx, rev);
    for (; r < nrows; ++r) tile_rows<1>(qt, rows, r, d, bterm, scale, tt, t * kLanes, push, ctx, rev);
  }
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

// Dot products of 8 consecutive rows (lane r = row r). NC > 0: d fits in NC
// vectors (the last masked), the query stays in registers and each row is a
// short chain; NC == 0: any d, one chunk at a time.
template <int NC>
inline __m256 dots8(const float* q, const float* base, size_t d, __m256i tmask) {
  __m256 acc[8];
  if constexpr (NC > 0) {
    __m256 qv[NC];
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c)
      qv[c] = c + 1 < NC ? _mm256_loadu_ps(q + 8 * c) : _mm256_maskload_ps(q + 8 * c, tmask);
    const float* row = base;
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r, row += d) {
      __m256 a = _mm256_mul_ps(qv[0], NC == 1 ? _mm256_maskload_ps(row, tmask)
                                              : _mm256_loadu_ps(row));
#pragma GCC unroll 8
      for (int c = 1; c < NC; ++c)
        a = _mm256_fmadd_ps(qv[c], c + 1 < NC ? _mm256_loadu_ps(row + 8 * c)
                                              : _mm256_maskload_ps(row + 8 * c, tmask), a);
      acc[r] = a;
    }
  } else {
    const size_t full = (d - 1) & ~size_t(7);  // the last chunk (1..8 wide) is masked
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
    for (size_t j = 0; j < full; j += 8) {
      __m256 qv = _mm256_loadu_ps(q + j);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r)
        acc[r] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(base + r * d + j), acc[r]);
    }
    __m256 qv = _mm256_maskload_ps(q + full, tmask);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r)
      acc[r] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(base + r * d + full, tmask), acc[r]);
  }
  return reduce8(acc);
}

template <int NC>
void scan_one_impl(const float* q, const float* rows, size_t nrows, size_t d,
                   const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  const __m256i tmask = tail_mask8(d % 8 ? d % 8 : 8);
  const __m256 vscale = _mm256_set1_ps(scale);
  size_t r0 = 0;
  for (; r0 + 8 <= nrows; r0 += 8) {
    __m256 dots = dots8<NC>(q, rows + r0 * d, d, tmask);
    __m256 bt = bterm ? _mm256_loadu_ps(bterm + r0) : _mm256_setzero_ps();
    __m256 s = _mm256_fmadd_ps(dots, vscale, bt);
    int m = _mm256_movemask_ps(_mm256_cmp_ps(s, _mm256_set1_ps(*thr), _CMP_LE_OQ));
    if (__builtin_expect(m != 0, 0)) {
      alignas(32) float sv[8];
      _mm256_store_ps(sv, s);
      while (m) {
        unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
        m &= m - 1;
        if (sv[lane] <= *thr) push(ctx, 0, sv[lane], r0 + lane);  // thr may have dropped
      }
    }
  }
  const size_t full = (d - 1) & ~size_t(7);
  for (; r0 < nrows; ++r0) {
    const float* row = rows + r0 * d;
    __m256 acc = _mm256_setzero_ps();
    for (size_t j = 0; j < full; j += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(row + j), acc);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + full, tmask),
                          _mm256_maskload_ps(row + full, tmask), acc);
    float s = (bterm ? bterm[r0] : 0.0f) + scale * hsum8(acc);
    if (s <= *thr) push(ctx, 0, s, r0);
  }
}

void scan_one_avx2(const float* q, const float* rows, size_t nrows, size_t d,
                   const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  switch ((d + 7) / 8) {
    case 1: return scan_one_impl<1>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 2: return scan_one_impl<2>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 3: return scan_one_impl<3>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 4: return scan_one_impl<4>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 5: return scan_one_impl<5>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 6: return scan_one_impl<6>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 7: return scan_one_impl<7>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    default: return scan_one_impl<0>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
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

const FlatKernels kFlatAvx2 = {"avx2", kLanes, scan_tiles_avx2, scan_one_avx2, fma_probe_avx2};

}  // namespace nk
