// Portable fused scan kernels (also used on arm64, where the baseline
// compiler vectorises the lane loops with NEON).
#include "kernels/flat_scan.h"

namespace nk {
namespace {

constexpr size_t kLanes = 8;  // queries per tile

template <int MR>
void tile_rows(const float* qp, const float* rows, size_t r0, size_t d, const float* bterm,
               float scale, const float* thr, size_t lane0, PushFn push, void* ctx,
               const Reverse* rev) {
  float acc[MR][kLanes] = {};
  for (size_t j = 0; j < d; ++j) {
    const float* qj = qp + j * kLanes;
    for (int r = 0; r < MR; ++r) {
      float b = rows[(r0 + r) * d + j];
      for (size_t l = 0; l < kLanes; ++l) acc[r][l] += qj[l] * b;
    }
  }
  for (int r = 0; r < MR; ++r) {
    float bt = bterm ? bterm[r0 + r] : 0.0f;
    for (size_t l = 0; l < kLanes; ++l) {
      float s = bt + scale * acc[r][l];
      if (s <= thr[l]) push(ctx, lane0 + l, s, r0 + r);
      if (rev) {
        float x = s - bt + rev->qbterm[lane0 + l];
        if (x <= rev->rthr[r0 + r]) rev->push(ctx, lane0 + l, x, r0 + r);
      }
    }
  }
}

void scan_tiles_scalar(const float* qp, size_t ntiles, const float* rows, size_t nrows,
                      size_t d, const float* bterm, float scale, float* thr, PushFn push,
                      void* ctx, const Reverse* rev) {
  // Tiles outside, rows inside: the tile's packed queries stay in L1 while
  // the block of base rows (sized for L2 by the driver) streams past.
  for (size_t t = 0; t < ntiles; ++t) {
    const float* qt = qp + t * kLanes * d;
    float* tt = thr + t * kLanes;
    size_t r = 0;
    for (; r + 4 <= nrows; r += 4)
      tile_rows<4>(qt, rows, r, d, bterm, scale, tt, t * kLanes, push, ctx, rev);
    for (; r < nrows; ++r) tile_rows<1>(qt, rows, r, d, bterm, scale, tt, t * kLanes, push, ctx, rev);
  }
}

void scan_one_scalar(const float* q, const float* rows, size_t nrows, size_t d,
                     const float* bterm, float scale, float* thr, PushFn push, void* ctx) {
  for (size_t r = 0; r < nrows; ++r) {
    const float* row = rows + r * d;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= d; j += 8)
      for (int t = 0; t < 8; ++t) acc[t] += q[j + t] * row[j + t];
    float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < d; ++j) dot += q[j] * row[j];
    float s = (bterm ? bterm[r] : 0.0f) + scale * dot;
    if (s <= *thr) push(ctx, 0, s, r);
  }
}

double fma_probe_scalar(size_t iters) {
  float acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = 1.0f + i * 1e-3f;
  for (size_t it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) acc[i] = acc[i] * 0.999999f + 1e-7f;
  volatile float sink = 0;
  for (int i = 0; i < 16; ++i) sink = sink + acc[i];
  return 2.0 * 16.0 * static_cast<double>(iters);
}

}  // namespace

const FlatKernels kFlatScalar = {"scalar", kLanes, scan_tiles_scalar, scan_one_scalar,
                                 fma_probe_scalar};

}  // namespace nk
