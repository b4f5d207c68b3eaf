// Float32 distance kernels, one table per instruction set.
//
// Every index reaches distances through kernels(), which returns the table of
// the active ISA (kernels/dispatch.h). Fetch it once per search call, not per distance.
// Only two primitives are needed: squared L2 and the dot product. Cosine is
// served by normalising vectors on the way in and using 1 - dot; "ip" is
// 1 - dot on the raw vectors.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/metric.h"  // distances serve these metrics
#include "kernels/cpu.h"

namespace nk {

using DistFn = float (*)(const float* a, const float* b, size_t d);
// One query against n rows stored contiguously (row stride d): out[i] = f(q, base_i).
using DistManyFn = void (*)(const float* q, const float* base, size_t n, size_t d, float* out);
// One query against n rows picked by index: out[i] = f(q, base + idx[i] * d).
using DistGatherFn = void (*)(const float* q, const float* base, const int64_t* idx, size_t n,
                              size_t d, float* out);

struct Kernels {
  const char* name;
  DistFn l2sq;
  DistFn dot;
  DistManyFn l2sq_many;
  DistManyFn dot_many;
  DistGatherFn l2sq_gather;
  DistGatherFn dot_gather;
};

const Kernels& kernels();           // the active ISA's table
const Kernels& kernels_for(Isa isa);  // a given ISA's table (must be supported)

// Per-ISA tables, defined in kernels/<isa>/distance_<isa>.cpp.
extern const Kernels kDistanceScalar;
#if defined(NEARKIT_X86)
extern const Kernels kDistanceAvx2;
extern const Kernels kDistanceAvx512;
#endif
#if defined(NEARKIT_ARM)
extern const Kernels kDistanceNeon;
#endif

}  // namespace nk
