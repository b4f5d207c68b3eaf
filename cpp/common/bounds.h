// Size arithmetic on numbers that come from Python: a product that wraps
// around would allocate a small buffer and then write far past it.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace nk {

// nq * k entries of a result array, refused (ValueError in Python) when the
// product overflows or could not be allocated anyway (> 2^40 entries). The
// Python layer clips k to the stored count first; this is the last line.
inline size_t result_entries(size_t nq, size_t k) {
  size_t out;
  if (__builtin_mul_overflow(nq, k, &out) || out > (size_t(1) << 40))
    throw std::invalid_argument("a result of " + std::to_string(nq) + " queries x k=" +
                                std::to_string(k) + " entries is too large");
  return out;
}

}  // namespace nk
