#include "index/kmeans.h"

#include <vector>

#include "kernels/ivfscan.h"

namespace nk {

void assign_nearest_blocked(const float* x, size_t n, size_t d, const float* c, size_t k,
                            int64_t* labels, float* dist) {
  const size_t nb = (k + kFlatBlock - 1) / kFlatBlock;
  std::vector<float> blocks(nb * kFlatBlock * d, 0.f), out(nb * kFlatBlock);
  to_blocks(c, k, d, blocks.data());
  const BlockKernels& B = block_kernels();
  for (size_t i = 0; i < n; ++i) {
    B.l2sq(x + i * d, blocks.data(), nb, d, out.data());
    // min first (branch-free, vectorisable), then the first index holding it
    float mn = out[0];
    {
      float acc[16];
      size_t l = 0;
      for (size_t t = 0; t < 16; ++t) acc[t] = out[0];
      for (; l + 16 <= k; l += 16)
        for (size_t t = 0; t < 16; ++t) acc[t] = out[l + t] < acc[t] ? out[l + t] : acc[t];
      for (size_t t = 0; t < 16; ++t) mn = acc[t] < mn ? acc[t] : mn;
      for (; l < k; ++l) mn = out[l] < mn ? out[l] : mn;
    }
    size_t best = 0;
    while (out[best] != mn) ++best;
    labels[i] = (int64_t)best;
    dist[i] = mn;
  }
}

bool cluster_sums(const float* x, size_t n, size_t d, const int64_t* labels, size_t k,
                  double* sums, int64_t* counts) {
  for (size_t i = 0; i < n; ++i) {
    int64_t c = labels[i];
    if (c < 0 || (size_t)c >= k) return false;
    counts[c]++;
    double* s = sums + (size_t)c * d;
    const float* r = x + i * d;
    for (size_t j = 0; j < d; ++j) s[j] += r[j];
  }
  return true;
}

}  // namespace nk
