// Dot products between a prepared int16 query and 8-bit codes.
//
// The HNSW graph walk runs on a compact copy of the vectors: one byte per
// dimension with a per-vector offset and step (see hnsw.h), so every distance
// reduces to one integer dot product sum_j qi_j * code_j plus a few per-vector
// scalars. The query is rounded to int16 (q ~= qscale * qi) once per search.
// `dpad` is the dimension rounded up to 16; qi is zero beyond the real
// dimension, so the padding bytes read from the code row (which belong to the
// node's correction terms and links) contribute nothing.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"

namespace nk {

// A distance is a few multiply-add instructions on integers with no float
// conversion of the codes. The caller keeps |qi| small enough that the int32
// lanes cannot overflow.
using CodeDotI16Fn = int32_t (*)(const int16_t* qi, const uint8_t* code, size_t dpad);

struct CodeKernels {
  const char* name;
  CodeDotI16Fn dot_i16;
};

const CodeKernels& code_kernels();             // the active ISA's table
const CodeKernels& code_kernels_for(Isa isa);  // a given ISA's table (kernels/dispatch.cpp)

extern const CodeKernels kScalarCodeKernels;
#if defined(NEARKIT_X86)
extern const CodeKernels kAvx2CodeKernels;
extern const CodeKernels kAvx512CodeKernels;
#endif

}  // namespace nk
