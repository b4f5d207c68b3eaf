// The "many" and "gather" kernels are the same loop for every ISA around that
// ISA's pairwise kernel; this template writes them once. Include it only from a
// kernels/<isa>/distance_<isa>.cpp so the loop is compiled with that file's flags.
#pragma once
#include <cstddef>
#include <cstdint>

namespace nk {

template <float (*F)(const float*, const float*, size_t)>
void many(const float* q, const float* base, size_t n, size_t d, float* out) {
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 < n) __builtin_prefetch(base + (i + 2) * d);
    out[i] = F(q, base + i * d, d);
  }
}

template <float (*F)(const float*, const float*, size_t)>
void gather(const float* q, const float* base, const int64_t* idx, size_t n, size_t d,
            float* out) {
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 < n) __builtin_prefetch(base + static_cast<size_t>(idx[i + 2]) * d);
    out[i] = F(q, base + static_cast<size_t>(idx[i]) * d, d);
  }
}

}  // namespace nk
