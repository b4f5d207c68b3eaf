// arm64 kernels (NEON is part of the arm64 baseline). Not exercised by the x86
// CI; kept small and mirrors the AVX2 structure.
#include <arm_neon.h>

#include "kernels/distance.h"
#include "kernels/distance_impl.h"

namespace nk {
namespace {

float l2sq_neon(const float* a, const float* b, size_t d) {
  float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    float32x4_t t0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
    float32x4_t t1 = vsubq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    s0 = vfmaq_f32(s0, t0, t0);
    s1 = vfmaq_f32(s1, t1, t1);
  }
  float s = vaddvq_f32(vaddq_f32(s0, s1));
  for (; i < d; ++i) {
    float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

float dot_neon(const float* a, const float* b, size_t d) {
  float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
  }
  float s = vaddvq_f32(vaddq_f32(s0, s1));
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

const Kernels kDistanceNeon = {
    "neon",         l2sq_neon,           dot_neon,           many<l2sq_neon>,
    many<dot_neon>, gather<l2sq_neon>, gather<dot_neon>,
};

}  // namespace nk
