// Distance kernels only the trees need (L1 and hamming), one table per ISA,
// chosen at run time by kernels/dispatch.h (see cpu.h for the rules of ISA files).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"

namespace nk {
namespace trees {

using L1Fn = float (*)(const float* a, const float* b, size_t d);
using HammingFn = float (*)(const uint64_t* a, const uint64_t* b, size_t words);

struct TreeKernels {
  const char* name;
  L1Fn l1;
  HammingFn hamming;
};

const TreeKernels& tree_kernels();             // the active ISA's table
const TreeKernels& tree_kernels_for(Isa isa);  // a given ISA's table

extern const TreeKernels kTreeScalar;
#if defined(NEARKIT_X86)
extern const TreeKernels kTreeAvx2;
extern const TreeKernels kTreeAvx512;
#endif

}  // namespace trees
}  // namespace nk
