// Distance kernels over "blocked" float storage: 16 vectors per block, stored
// dimension-major (block[j * 16 + i] = dimension j of vector i). One query
// then costs d broadcast-FMAs per 16 vectors with no horizontal sums, which is
// what makes scanning short inverted lists (and the coarse centroids) fast.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"

namespace nk {

constexpr size_t kFlatBlock = 16;

// Writes n rows of dimension d in the blocked layout; `out` holds
// ceil(n / 16) * 16 * d floats and is zeroed by the caller (padding lanes).
void to_blocks(const float* rows, size_t n, size_t d, float* out);

// out[b * 16 + i] = score of vector i of block b. dot: q . x; l2: |q - x|^2.
using BlockFn = void (*)(const float* q, const float* blocks, size_t nblocks, size_t d, float* out);

struct BlockKernels {
  const char* name;
  BlockFn dot;
  BlockFn l2sq;
};

const BlockKernels& block_kernels();
const BlockKernels& block_kernels_for(Isa isa);

extern const BlockKernels kBlockScalar;
#if defined(NEARKIT_X86)
extern const BlockKernels kBlockAvx2;
extern const BlockKernels kBlockAvx512;
#endif

}  // namespace nk
