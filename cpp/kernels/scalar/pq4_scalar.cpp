// Scalar fast-scan kernel: the reference the SIMD kernels are tested against,
// and what NEON runs for now.
#include "kernels/pq4.h"

namespace nk {
namespace {

void pq4_scan_scalar(const uint8_t* codes, size_t nblocks, size_t mpad, const uint8_t* lut,
                     uint16_t* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* c = codes + b * mpad * 16;
    uint16_t acc[kPq4Block] = {0};
    for (size_t m = 0; m < mpad; ++m) {
      const uint8_t* cm = c + m * 16;
      const uint8_t* L = lut + m * 16;
      for (size_t j = 0; j < 16; ++j) {
        acc[j] += L[cm[j] & 15];
        acc[j + 16] += L[cm[j] >> 4];
      }
    }
    for (size_t j = 0; j < kPq4Block; ++j) out[b * kPq4Block + j] = acc[j];
  }
}

}  // namespace

const Pq4Kernels kPq4Scalar = {"scalar", pq4_scan_scalar};

}  // namespace nk
