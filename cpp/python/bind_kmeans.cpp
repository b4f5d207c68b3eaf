// Python bindings of the k-means steps in C++: the assignment argmax after the
// BLAS product (kernels/kmeans_kernels.h) and the per-cluster sums
// (index/kmeans.h; numpy's add.at is several times slower for this scatter-add).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>

#include <algorithm>
#include <stdexcept>

#include "kernels/cpu.h"
#include "kernels/kmeans_kernels.h"
#include "index/kmeans.h"
#include "python/bindings.h"
#include "python/ndarray.h"
#include "common/thread_pool.h"

namespace nb = nanobind;

namespace {
using CFloat2D = nk::py::In<float, 2>;
using CInt1D = nk::py::In<int64_t, 1>;
using nk::py::owned;
}  // namespace

NEARKIT_BIND(bind_kmeans) {
  m.def(
      "argmax_bias",
      [](CFloat2D prod, nk::py::In<float, 1> bias,
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
          bad = !nk::cluster_sums(x.data(), n, d, labels.data(), k, sums, counts);
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
