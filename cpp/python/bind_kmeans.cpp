// k-means helper: per-cluster sums and counts in one pass over the data
// (numpy's add.at is several times slower for this scatter-add).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/kmeans_kernels.h"
#include "python/registry.h"
#include "common/thread_pool.h"

namespace nb = nanobind;

namespace {
using CFloat2D = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using CInt1D = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

template <class T>
nb::ndarray<nb::numpy, T> owned(T* p, std::initializer_list<size_t> shape) {
  nb::capsule owner(p, [](void* q) noexcept { delete[] static_cast<T*>(q); });
  return nb::ndarray<nb::numpy, T>(p, shape.size(), shape.begin(), owner);
}
}  // namespace

namespace {
// Row-wise argmax of prod[i, j] - bias[j]: the assignment step of k-means once
// BLAS has computed x.c (bias = |c|^2 / 2). One pass over each row, which is
// small enough to stay in L1 for the second (index-finding) pass.
void argmax_bias_rows(const float* prod, const float* bias, size_t m, size_t k, int64_t* labels,
                      float* best) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < m; ++i) {
    const float* p = prod + i * k;
    float mx = ninf;
    size_t j = 0;
#if defined(__SSE2__)
    // SSE2 is part of the x86-64 baseline, so this needs no run-time dispatch.
    __m128 a0 = _mm_set1_ps(ninf), a1 = a0, a2 = a0, a3 = a0;
    for (; j + 16 <= k; j += 16) {
      a0 = _mm_max_ps(a0, _mm_sub_ps(_mm_loadu_ps(p + j), _mm_loadu_ps(bias + j)));
      a1 = _mm_max_ps(a1, _mm_sub_ps(_mm_loadu_ps(p + j + 4), _mm_loadu_ps(bias + j + 4)));
      a2 = _mm_max_ps(a2, _mm_sub_ps(_mm_loadu_ps(p + j + 8), _mm_loadu_ps(bias + j + 8)));
      a3 = _mm_max_ps(a3, _mm_sub_ps(_mm_loadu_ps(p + j + 12), _mm_loadu_ps(bias + j + 12)));
    }
    a0 = _mm_max_ps(_mm_max_ps(a0, a1), _mm_max_ps(a2, a3));
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, a0);
    mx = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
#endif
    for (; j < k; ++j) mx = std::max(mx, p[j] - bias[j]);
    int64_t arg = 0;
    size_t t = 0;
#if defined(__SSE2__)
    __m128 target = _mm_set1_ps(mx);
    for (; t + 4 <= k; t += 4) {
      int hit = _mm_movemask_ps(
          _mm_cmpeq_ps(_mm_sub_ps(_mm_loadu_ps(p + t), _mm_loadu_ps(bias + t)), target));
      if (hit) { t += __builtin_ctz(hit); break; }
    }
#endif
    for (; t < k; ++t)
      if (p[t] - bias[t] == mx) break;
    arg = (int64_t)(t < k ? t : 0);
    labels[i] = arg;
    best[i] = mx;
  }
}
}  // namespace

namespace nk {
const KmeansKernels kKmeansBaseline = {"scalar", argmax_bias_rows};
const KmeansKernels& kmeans_kernels_for(Isa isa) {
  switch (isa) {
#if defined(NEARKIT_X86)
    case Isa::AVX2: return kKmeansAvx2;
    case Isa::AVX512: return kKmeansAvx512;
#endif
    default: return kKmeansBaseline;
  }
}
const KmeansKernels& kmeans_kernels() { return kmeans_kernels_for(active_isa()); }
}  // namespace nk

NEARKIT_BIND(bind_kmeans) {
  m.def(
      "argmax_bias",
      [](CFloat2D prod, nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu> bias,
         size_t threads) {
        size_t mrows = prod.shape(0), k = prod.shape(1);
        if (bias.shape(0) != k) throw std::invalid_argument("bias length differs from columns");
        if (k == 0) throw std::invalid_argument("no columns");
        int64_t* labels = new int64_t[mrows > 0 ? mrows : 1];
        float* best = new float[mrows > 0 ? mrows : 1];
        {
          nb::gil_scoped_release release;
          const nk::ArgmaxBiasFn kernel = nk::kmeans_kernels().argmax_bias;
          size_t nt = std::max<size_t>(1, std::min(threads, mrows / 64));
          if (nt <= 1) {
            kernel(prod.data(), bias.data(), mrows, k, labels, best);
          } else {
            nk::parallel_ranges(mrows, int(nt), 1, [&](size_t r0, size_t r1) {
              kernel(prod.data() + r0 * k, bias.data(), r1 - r0, k, labels + r0, best + r0);
            });
          }
        }
        return std::make_pair(owned(labels, {mrows}), owned(best, {mrows}));
      },
      nb::arg("prod"), nb::arg("bias"), nb::arg("threads") = 1,
      "Row-wise argmax of prod - bias: (labels int64, max values float32).");
  m.def(
      "kmeans_sums",
      [](CFloat2D x, CInt1D labels, size_t k) {
        size_t n = x.shape(0), d = x.shape(1);
        if (labels.shape(0) != n) throw std::invalid_argument("labels length differs from rows");
        double* sums = new double[k * d > 0 ? k * d : 1]();
        int64_t* counts = new int64_t[k > 0 ? k : 1]();
        bool bad = false;
        {
          nb::gil_scoped_release release;
          const float* xp = x.data();
          const int64_t* lp = labels.data();
          for (size_t i = 0; i < n; ++i) {
            int64_t c = lp[i];
            if (c < 0 || (size_t)c >= k) { bad = true; break; }
            counts[c]++;
            double* s = sums + (size_t)c * d;
            const float* r = xp + i * d;
            for (size_t j = 0; j < d; ++j) s[j] += r[j];
          }
        }
        if (bad) {
          delete[] sums;
          delete[] counts;
          throw std::invalid_argument("label out of range");
        }
        return std::make_pair(owned(sums, {k, d}), owned(counts, {k}));
      },
      nb::arg("x"), nb::arg("labels"), nb::arg("k"));
}
