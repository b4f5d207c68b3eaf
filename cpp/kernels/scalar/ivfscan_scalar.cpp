// Portable blocked kernels: the compiler vectorises the 16-lane accumulators
// with the baseline SSE2 / NEON.
#include "kernels/ivfscan.h"

namespace nk {
namespace {

void dot_blocks_scalar(const float* q, const float* blocks, size_t nblocks, size_t d, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const float* x = blocks + b * d * kFlatBlock;
    float acc[kFlatBlock] = {0};
    for (size_t j = 0; j < d; ++j)
      for (size_t i = 0; i < kFlatBlock; ++i) acc[i] += q[j] * x[j * kFlatBlock + i];
    for (size_t i = 0; i < kFlatBlock; ++i) out[b * kFlatBlock + i] = acc[i];
  }
}

void l2_blocks_scalar(const float* q, const float* blocks, size_t nblocks, size_t d, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const float* x = blocks + b * d * kFlatBlock;
    float acc[kFlatBlock] = {0};
    for (size_t j = 0; j < d; ++j)
      for (size_t i = 0; i < kFlatBlock; ++i) {
        float t = q[j] - x[j * kFlatBlock + i];
        acc[i] += t * t;
      }
    for (size_t i = 0; i < kFlatBlock; ++i) out[b * kFlatBlock + i] = acc[i];
  }
}

}  // namespace

void to_blocks(const float* rows, size_t n, size_t d, float* out) {
  for (size_t l = 0; l < n; ++l)
    for (size_t j = 0; j < d; ++j)
      out[(l / kFlatBlock) * kFlatBlock * d + j * kFlatBlock + (l % kFlatBlock)] = rows[l * d + j];
}

const BlockKernels kBlockScalar = {"scalar", dot_blocks_scalar, l2_blocks_scalar};

}  // namespace nk
