// Distances between a prepared float query and 8-bit scalar codes.
//
// The HNSW graph walk runs on a compact copy of the vectors: one byte per
// dimension, x_j ~= lo_j + scale_j * code_j. The query is prepared once per
// search so that each distance is a short SIMD loop over the codes:
//   l2:  sum_j (qp_j - scale_j * code_j)^2       with qp_j = q_j - lo_j
//   dot: sum_j qp_j * code_j                     with qp_j = q_j * scale_j
// `dpad` is the dimension rounded up to 16; qp and scale are zero beyond the
// real dimension, so the padding bytes read from the code row (which belong to
// the node's link block) contribute nothing.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu.h"

namespace nk {

using CodeL2Fn = float (*)(const float* qp, const float* scale, const uint8_t* code, size_t dpad);
using CodeDotFn = float (*)(const float* qp, const uint8_t* code, size_t dpad);
// Integer form of `dot` for inner-product metrics: the prepared query is
// rounded to int16 (qp ~= qscale * qi), so a distance is a few multiply-add
// instructions on integers with no float conversion of the codes. The caller
// keeps |qi| small enough that the int32 lanes cannot overflow.
using CodeDotI16Fn = int32_t (*)(const int16_t* qi, const uint8_t* code, size_t dpad);

struct CodeKernels {
  const char* name;
  CodeL2Fn l2;
  CodeDotFn dot;
  CodeDotI16Fn dot_i16;
};

const CodeKernels& code_kernels();  // the active ISA's table

extern const CodeKernels kScalarCodeKernels;
#if defined(NEARKIT_X86)
extern const CodeKernels kAvx2CodeKernels;
extern const CodeKernels kAvx512CodeKernels;
#endif

}  // namespace nk
