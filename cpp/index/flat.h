// Exact (brute-force) search: the drivers that run the fused scan kernels
// (kernels/flat_scan.h) over blocks of queries and base rows, and turn their
// candidates into exact results.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/metric.h"
#include "kernels/flat_scan.h"

namespace nk {

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
