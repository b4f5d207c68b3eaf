// Portable L1 / hamming kernels.
#include "kernels/tree_kernels.h"

#include <cmath>

namespace nk {
namespace trees {
namespace {

float l1_scalar(const float* a, const float* b, size_t d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += std::fabs(a[i + j] - b[i + j]);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < d; ++i) s += std::fabs(a[i] - b[i]);
  return s;
}

// Bit counting without the popcnt instruction (baseline x86-64 lacks it).
inline uint64_t popcount_swar(uint64_t v) {
  v = v - ((v >> 1) & 0x5555555555555555ull);
  v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
  v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return (v * 0x0101010101010101ull) >> 56;
}

float hamming_scalar(const uint64_t* a, const uint64_t* b, size_t words) {
  uint64_t s = 0;
  for (size_t i = 0; i < words; ++i) s += popcount_swar(a[i] ^ b[i]);
  return static_cast<float>(s);
}

}  // namespace

const TreeKernels kTreeScalar = {"scalar", l1_scalar, hamming_scalar};

}  // namespace trees
}  // namespace nk
