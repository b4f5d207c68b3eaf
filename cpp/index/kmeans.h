// The k-means steps that are not BLAS: nearest-centroid assignment by direct
// scan (small dimensions) and per-cluster sums. The Python driver
// (nearkit._kmeans) runs the iterations; the argmax assignment kernel after a
// BLAS product is kernels/kmeans_kernels.h.
#pragma once
#include <cstddef>
#include <cstdint>

namespace nk {

// Nearest of k centroids c (k, d) by squared L2 for each of the n rows x:
// labels[i], dist[i]. For low-dimensional data (PQ sub-spaces), where a BLAS
// product with a tiny inner dimension is slow. k >= 1.
void assign_nearest_blocked(const float* x, size_t n, size_t d, const float* c, size_t k,
                            int64_t* labels, float* dist);

// sums (k, d) += rows of x by label, counts (k) += 1; both zeroed by the
// caller. Returns false, having stopped, at a label outside [0, k).
bool cluster_sums(const float* x, size_t n, size_t d, const int64_t* labels, size_t k,
                  double* sums, int64_t* counts);

}  // namespace nk
