#include "kernels/hnsw_codes.h"

namespace nk {
namespace {

int32_t code_dot_i16_scalar(const int16_t* qi, const uint8_t* code, size_t dpad) {
  int32_t s = 0;
  for (size_t i = 0; i < dpad; ++i) s += int32_t(qi[i]) * int32_t(code[i]);
  return s;
}

}  // namespace

const CodeKernels kScalarCodeKernels = {"scalar", code_dot_i16_scalar};

const CodeKernels& code_kernels() {
  switch (active_isa()) {
#if defined(NEARKIT_X86)
    case Isa::AVX512: return kAvx512CodeKernels;
    case Isa::AVX2: return kAvx2CodeKernels;
#endif
    default: return kScalarCodeKernels;  // NEON: the scalar loop auto-vectorises well enough
  }
}

}  // namespace nk
