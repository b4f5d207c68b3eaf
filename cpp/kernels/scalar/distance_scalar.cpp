// Portable kernels: eight independent accumulators so the compiler can keep
// several additions in flight (and vectorise with the baseline SSE2/NEON).
#include "kernels/distance.h"
#include "kernels/distance_impl.h"

namespace nk {
namespace {

float l2sq_scalar(const float* a, const float* b, size_t d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int j = 0; j < 8; ++j) {
      float t = a[i + j] - b[i + j];
      acc[j] += t * t;
    }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < d; ++i) {
    float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

float dot_scalar(const float* a, const float* b, size_t d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

const Kernels kDistanceScalar = {
    "scalar",         l2sq_scalar,           dot_scalar,           many<l2sq_scalar>,
    many<dot_scalar>, gather<l2sq_scalar>, gather<dot_scalar>,
};

}  // namespace nk
