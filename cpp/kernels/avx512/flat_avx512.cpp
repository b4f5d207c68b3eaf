// AVX-512 fused scan kernels.
//
// scan_tiles: a register-blocked matrix product with the queries along the
// vector lanes (4 vectors = 64 queries) and 6 base rows broadcast one
// dimension at a time: 24 accumulators, each multiply-add fed by one
// broadcast and one L1-resident query vector. The base is read in its own
// row-major layout (no packing), so memory-mapped bases work as they are.
// The epilogue compares 16 scores with 16 per-query thresholds at once.
// (Measured on Zen 4: ~75% of the FMA peak at d = 50, ~80% at d = 200; wider
// row blocks, embedded broadcasts and pre-broadcast rows were all slower.)
//
// scan_one: 16 base rows at a time with one accumulator per row, then a
// transposing reduction turns the 16 accumulators into one vector of 16 dot
// products, compared with the query's threshold in one instruction.
#include <immintrin.h>

#include "kernels/flat_scan.h"

namespace nk {
namespace {

constexpr size_t kVecs = 4;          // query vectors per tile
constexpr size_t kLanes = 16 * kVecs;  // queries per tile
constexpr int kRows = 6;             // base rows per register block

// Scores of MR rows x 64 queries; true if any is at or below its query's
// threshold. Only then (or when `keep` asks for all of them) are the scores
// stored to sc (row-major, 64 per row) for the selection. Kept free of calls
// so that all 24 accumulators live in registers.
template <int MR>
inline bool tile_scores(const float* qp, const float* base, size_t d, const float* bterm,
                        float scale, const float* thr, bool keep, float* sc) {
  __m512 acc[MR][kVecs];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (size_t v = 0; v < kVecs; ++v) acc[r][v] = _mm512_setzero_ps();
  for (size_t j = 0; j < d; ++j) {
    const float* qj = qp + j * kLanes;
    __m512 q[kVecs];
#pragma GCC unroll 8
    for (size_t v = 0; v < kVecs; ++v) q[v] = _mm512_loadu_ps(qj + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      __m512 b = _mm512_set1_ps(base[r * d + j]);
#pragma GCC unroll 8
      for (size_t v = 0; v < kVecs; ++v) acc[r][v] = _mm512_fmadd_ps(q[v], b, acc[r][v]);
    }
  }
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 th[kVecs];
#pragma GCC unroll 4
  for (size_t v = 0; v < kVecs; ++v) th[v] = _mm512_loadu_ps(thr + 16 * v);
  __mmask16 any = 0;
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const __m512 bt = _mm512_set1_ps(bterm ? bterm[r] : 0.0f);
#pragma GCC unroll 4
    for (size_t v = 0; v < kVecs; ++v) {
      acc[r][v] = _mm512_fmadd_ps(acc[r][v], vscale, bt);
      any = static_cast<__mmask16>(any | _mm512_cmp_ps_mask(acc[r][v], th[v], _CMP_LE_OQ));
    }
  }
  if (any || keep) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (size_t v = 0; v < kVecs; ++v) _mm512_store_ps(sc + r * kLanes + 16 * v, acc[r][v]);
  }
  return any != 0;
}

// Compares the scores with the per-query thresholds; pushes the few that pass.
template <int MR>
inline void tile_select(const float* sc, size_t r0, const float* thr, size_t lane0,
                        PushFn push, void* ctx) {
  for (int r = 0; r < MR; ++r) {
    for (size_t v = 0; v < kVecs; ++v) {
      const float* s = sc + r * kLanes + 16 * v;
      __mmask16 m =
          _mm512_cmp_ps_mask(_mm512_load_ps(s), _mm512_loadu_ps(thr + 16 * v), _CMP_LE_OQ);
      while (__builtin_expect(m != 0, 0)) {
        unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
        m = static_cast<__mmask16>(m & (m - 1));
        push(ctx, lane0 + 16 * v + lane, s[lane], r0 + r);
      }
    }
  }
}

// The reverse selection (see Reverse in flat_scan.h): one threshold per row.
template <int MR>
inline void tile_select_rev(const float* sc, size_t r0, const float* bterm, size_t lane0,
                            const Reverse& rv, void* ctx) {
  for (int r = 0; r < MR; ++r) {
    const __m512 btr = _mm512_set1_ps(bterm ? bterm[r0 + r] : 0.0f);
    float* rthr = rv.rthr + r0 + r;
    for (size_t v = 0; v < kVecs; ++v) {
      __m512 x = _mm512_add_ps(_mm512_load_ps(sc + r * kLanes + 16 * v),
                               _mm512_sub_ps(_mm512_loadu_ps(rv.qbterm + lane0 + 16 * v), btr));
      __mmask16 m = _mm512_cmp_ps_mask(x, _mm512_set1_ps(*rthr), _CMP_LE_OQ);
      if (__builtin_expect(m != 0, 0)) {
        alignas(64) float xv[16];
        _mm512_store_ps(xv, x);
        while (m) {
          unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
          m = static_cast<__mmask16>(m & (m - 1));
          if (xv[lane] <= *rthr) rv.push(ctx, lane0 + 16 * v + lane, xv[lane], r0 + r);
        }
      }
    }
  }
}

template <int MR>
inline void tile_rows(const float* qp, const float* rows, size_t r0, size_t d,
                      const float* bterm, float scale, const float* thr, size_t lane0,
                      PushFn push, void* ctx, const Reverse* rev) {
  alignas(64) float sc[MR * kLanes];
  if (tile_scores<MR>(qp, rows + r0 * d, d, bterm ? bterm + r0 : nullptr, scale, thr,
                      rev != nullptr, sc))
    tile_select<MR>(sc, r0, thr, lane0, push, ctx);
  if (rev) tile_select_rev<MR>(sc, r0, bterm, lane0, *rev, ctx);
}

void scan_tiles_avx512(const float* qp, size_t ntiles, const float* rows, size_t nrows,
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

// Scores of 16 consecutive rows, then the threshold test. NC > 0: d fits in
// NC vectors (the last one masked), the query stays in registers and each
// row is one short dependency chain; NC == 0: any d, one chunk at a time.
template <int NC>
inline __m512 dots16(const float* q, const float* base, size_t d, __mmask16 tail) {
  __m512 acc[16];
  if constexpr (NC > 0) {
    __m512 qv[NC];
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c)
      qv[c] = c + 1 < NC ? _mm512_loadu_ps(q + 16 * c) : _mm512_maskz_loadu_ps(tail, q + 16 * c);
    const float* row = base;
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r, row += d) {
      __m512 a = _mm512_mul_ps(qv[0], NC == 1 ? _mm512_maskz_loadu_ps(tail, row)
                                              : _mm512_loadu_ps(row));
#pragma GCC unroll 4
      for (int c = 1; c < NC; ++c)
        a = _mm512_fmadd_ps(qv[c], c + 1 < NC ? _mm512_loadu_ps(row + 16 * c)
                                              : _mm512_maskz_loadu_ps(tail, row + 16 * c), a);
      acc[r] = a;
    }
  } else {
    const size_t full = (d - 1) & ~size_t(15);  // the last chunk (1..16 wide) is masked
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    for (size_t j = 0; j < full; j += 16) {
      __m512 qv = _mm512_loadu_ps(q + j);
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r)
        acc[r] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(base + r * d + j), acc[r]);
    }
    __m512 qv = _mm512_maskz_loadu_ps(tail, q + full);
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r)
      acc[r] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, base + r * d + full), acc[r]);
  }
  return reduce16(acc);
}

template <int NC>
void scan_one_impl(const float* q, const float* rows, size_t nrows, size_t d,
                   const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  const size_t rem = d % 16;
  const __mmask16 tail = rem ? static_cast<__mmask16>((1u << rem) - 1u) : __mmask16(0xFFFF);
  const __m512 vscale = _mm512_set1_ps(scale);
  size_t r0 = 0;
  for (; r0 + 16 <= nrows; r0 += 16) {
    __m512 dots = dots16<NC>(q, rows + r0 * d, d, tail);
    __m512 bt = bterm ? _mm512_loadu_ps(bterm + r0) : _mm512_setzero_ps();
    __m512 s = _mm512_fmadd_ps(dots, vscale, bt);
    __mmask16 m = _mm512_cmp_ps_mask(s, _mm512_set1_ps(*thr), _CMP_LE_OQ);
    if (__builtin_expect(m != 0, 0)) {
      alignas(64) float sv[16];
      _mm512_store_ps(sv, s);
      while (m) {
        unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
        m = static_cast<__mmask16>(m & (m - 1));
        if (sv[lane] <= *thr) push(ctx, 0, sv[lane], r0 + lane);  // thr may have dropped
      }
    }
  }
  for (; r0 < nrows; ++r0) {
    float s = (bterm ? bterm[r0] : 0.0f) + scale * dot_row(q, rows + r0 * d, d);
    if (s <= *thr) push(ctx, 0, s, r0);
  }
}

void scan_one_avx512(const float* q, const float* rows, size_t nrows, size_t d,
                     const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  switch ((d + 15) / 16) {
    case 1: return scan_one_impl<1>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 2: return scan_one_impl<2>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 3: return scan_one_impl<3>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    case 4: return scan_one_impl<4>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
    default: return scan_one_impl<0>(q, rows, nrows, d, bterm, scale, thr, push, ctx);
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

const FlatKernels kFlatAvx512 = {"avx512", kLanes, scan_tiles_avx512, scan_one_avx512,
                                 fma_probe_avx512};

}  // namespace nk
