// Exact (brute-force) search: fused distance + top-k scan kernels and the
// drivers that run them over blocks of queries and base rows.
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
// pushed row's distance, computed in double, decides (flat.cpp, KnnState):
// the result is the exact k nearest, ties by slot.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"
#include "kernels/distance.h"

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

const FlatKernels& flat_kernels();  // the active ISA's table
extern const FlatKernels kScalarFlat;
#if defined(NEARKIT_X86)
extern const FlatKernels kAvx2Flat;
extern const FlatKernels kAvx512Flat;
#endif

// Exact k-NN of nq queries against n base rows. Results are slot numbers
// mapped through `labels` (or left as slots when labels is null), ascending
// distance, padded with -1 / +inf. mask (nullable) marks allowed slots.
// exclude_self: query i never returns slot i (queries are the base itself).
struct KnnJob {
  const float* base = nullptr;
  size_t n = 0, d = 0;
  const float* sqnorms = nullptr;  // ||row||^2, needed for L2
  const int64_t* labels = nullptr;
  const uint8_t* mask = nullptr;
  Metric metric = Metric::L2;
  const float* queries = nullptr;
  size_t nq = 0, k = 0;
  bool exclude_self = false;
  int threads = 1;
  int64_t* out_ids = nullptr;
  float* out_dist = nullptr;
};
void knn_search(const KnnJob& job);

// All rows with distance < radius per query, CSR: lims (nq + 1).
struct RangeResult {
  int64_t* lims = nullptr;  // caller-allocated, nq + 1
  // filled by range_search (ownership passes to the caller: delete[])
  int64_t* ids = nullptr;
  float* dist = nullptr;
  size_t total = 0;
};
void range_search(const KnnJob& job, float radius, RangeResult& out);

}  // namespace nk
