#include "kernels/distance.h"

#include <stdexcept>

namespace nk {

const Kernels& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return kScalarKernels;
#if defined(NEARKIT_X86)
    case Isa::AVX2: return kAvx2Kernels;
    case Isa::AVX512: return kAvx512Kernels;
#endif
#if defined(NEARKIT_ARM)
    case Isa::NEON: return kNeonKernels;
#endif
    default: throw std::invalid_argument("no kernels for this instruction set in this build");
  }
}

const Kernels& kernels() { return kernels_for(active_isa()); }

}  // namespace nk
