// Buffers the kernels read with vector loads.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace nk {

// A float buffer aligned to 64 bytes, so that the kernels' vector loads of
// packed queries never straddle cache lines.
class AlignedFloats {
 public:
  AlignedFloats() = default;
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  ~AlignedFloats() { std::free(data_); }

  float* data() { return data_; }
  // Resizes (contents lost) and optionally zero-fills.
  void assign(size_t n, bool zero) {
    if (n > cap_) {
      std::free(data_);
      cap_ = n;
      data_ = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (!data_) throw std::bad_alloc();
    }
    if (zero) std::fill_n(data_, n, 0.0f);
  }

 private:
  float* data_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace nk
