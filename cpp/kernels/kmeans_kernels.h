// k-means assignment kernel, one per instruction set: row-wise argmax of
// prod[i, j] - bias[j] (the BLAS product x.c minus |c|^2 / 2).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"

namespace nk {

using ArgmaxBiasFn = void (*)(const float* prod, const float* bias, size_t m, size_t k,
                              int64_t* labels, float* best);

struct KmeansKernels {
  const char* name;
  ArgmaxBiasFn argmax_bias;
};

const KmeansKernels& kmeans_kernels_for(Isa isa);
const KmeansKernels& kmeans_kernels();

extern const KmeansKernels kKmeansScalar;
#if defined(NEARKIT_X86)
extern const KmeansKernels kKmeansAvx2;
extern const KmeansKernels kKmeansAvx512;
#endif

}  // namespace nk
