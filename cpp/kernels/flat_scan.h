// Fused distance + top-k scan kernels of exact search, one table per ISA
// (kernels/dispatch.h); index/flat.h runs them over blocks of queries and rows.
//
// Every kernel computes a *score* that orders base rows like the metric does:
//   score(q, row) = bterm[row] + scale * dot(q, row)
// with bterm = ||row||^2, scale = -2 for squared L2 (||q||^2 is the same for
// every row, so it is left out), and bterm = 0, scale = -1 for inner product
// and cosine. Whenever a score is at or below the current threshold of its
// query, the kernel calls `push`, which records the candidate and lowers the
// threshold. (At, not only below: the top-k orders equal scores by id, so the
// result never depends on the order in which candidates arrive.)
// Pushes are rare once the thresholds settle, so the kernels spend their time
// in the multiply-adds. The scores are rounded, so the drivers set each
// threshold an error bound above the score the current k-th could have, and a
// pushed row's distance, computed in double, decides (index/flat.cpp, KnnState):
// the result is the exact k nearest, ties by slot.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"

namespace nk {

// Candidate callback: lane = query within the tile (0 for scan_one), row =
// index within the rows handed to the kernel. It must update thr[lane].
using PushFn = void (*)(void* ctx, size_t lane, float score, size_t row);

// Optional second selection in scan_tiles, for symmetric all-pairs work
// (knn_graph): every score computed for (query lane, row) is also offered to
// the row's own top-k, as the score of the lane's vector seen from the row:
//   score_row(lane) = score_lane(row) - bterm[row] + qbterm[lane].
struct Reverse {
  const float* qbterm;  // per lane of all tiles; +inf on padding lanes
  float* rthr;          // per row; push must update rthr[row]
  PushFn push;          // push(ctx, lane, score, row)
};

struct FlatKernels {
  const char* name;
  size_t tile;  // queries per tile, the lane count of scan_tile
  // ntiles tiles of `tile` queries, each packed dimension-major
  // (qp[(t * d + j) * tile + lane]), against nrows contiguous rows of dimension d;
  // thr has ntiles * tile entries and push gets lane = t * tile + lane.
  // rev (nullable): also run the reverse selection.
  void (*scan_tiles)(const float* qp, size_t ntiles, const float* rows, size_t nrows, size_t d,
                     const float* bterm, float scale, float* thr, PushFn push, void* ctx,
                     const Reverse* rev);
  // One query against nrows contiguous rows; thr points to one threshold.
  void (*scan_one)(const float* q, const float* rows, size_t nrows, size_t d, const float* bterm,
                   float scale, float* thr, PushFn push, void* ctx);
  // Register-only multiply-add loop for `iters` iterations; returns the
  // floating-point operations done. Benchmarks time it to find the FMA peak.
  double (*fma_probe)(size_t iters);
};

const FlatKernels& flat_kernels();               // the active ISA's table
const FlatKernels& flat_kernels_for(Isa isa);    // a given ISA's table
extern const FlatKernels kFlatScalar;
#if defined(NEARKIT_X86)
extern const FlatKernels kFlatAvx2;
extern const FlatKernels kFlatAvx512;
#endif

}  // namespace nk
