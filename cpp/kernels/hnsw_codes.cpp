#include "kernels/hnsw_codes.h"

namespace nk {
namespace {

int32_t code_dot_i16_scalar(const int16_t* qi, const uint8_t* code, size_t dpad) {
  int32_t s = 0;
  for (size_t i = 0; i < dpad; ++i) s += int32_t(qi[i]) * int32_t(code[i]);
  return s;
}

}  // namespace

// NEON has no table of its own: this loop auto-vectorises well enough.
// The choice of table is in kernels/dispatch.cpp.
const CodeKernels kScalarCodeKernels = {"scalar", code_dot_i16_scalar};

}  // namespace nk
