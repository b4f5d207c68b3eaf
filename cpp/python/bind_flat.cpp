// Python bindings of exact search (flat.h). Validation of user input happens
// in Python (nearkit._validate); these checks only guard the C++ invariants.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>

#include "index/flat.h"
#include "common/bounds.h"
#include "python/bindings.h"
#include "python/ndarray.h"

namespace nb = nanobind;

namespace {

using CFloat2D = nk::py::In<float, 2>;
using CFloat1D = nk::py::In<float, 1>;
using CInt1D = nk::py::In<int64_t, 1>;
using CMask1D = nk::py::In<uint8_t, 1>;
using nk::py::owned;

nk::KnnJob make_job(const CFloat2D& base, const CFloat1D& sqnorms,
                    const std::optional<CInt1D>& labels, const CFloat2D& queries, int metric,
                    const std::optional<CMask1D>& mask, int threads) {
  nk::KnnJob job;
  job.n = base.shape(0);
  job.d = base.shape(1);
  if (queries.shape(1) != job.d) throw std::invalid_argument("queries and base differ in dimension");
  if (job.d == 0) throw std::invalid_argument("dimension must be positive");
  if (sqnorms.shape(0) != job.n) throw std::invalid_argument("sqnorms must have one entry per row");
  if (labels && labels->shape(0) != job.n) throw std::invalid_argument("labels must have one entry per row");
  if (mask && mask->shape(0) != job.n) throw std::invalid_argument("mask must have one entry per row");
  if (metric < 0 || metric > 2) throw std::invalid_argument("metric code must be 0, 1 or 2");
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  job.base = base.data();
  job.sqnorms = sqnorms.data();
  job.labels = labels ? labels->data() : nullptr;
  job.mask = mask ? mask->data() : nullptr;
  job.metric = static_cast<nk::Metric>(metric);
  job.queries = queries.data();
  job.nq = queries.shape(0);
  job.threads = threads;
  return job;
}

}  // namespace

NEARKIT_BIND(bind_flat) {
  m.def(
      "flat_search",
      [](CFloat2D base, CFloat1D sqnorms, std::optional<CInt1D> labels, CFloat2D queries,
         size_t k, int metric, std::optional<CMask1D> mask, int threads, bool exclude_self) {
        nk::KnnJob job = make_job(base, sqnorms, labels, queries, metric, mask, threads);
        if (k == 0) throw std::invalid_argument("k must be positive");
        if (exclude_self && job.nq != job.n)
          throw std::invalid_argument("exclude_self needs the queries to be the base");
        job.k = k;
        job.exclude_self = exclude_self;
        const size_t entries = std::max<size_t>(nk::result_entries(job.nq, k), 1);
        int64_t* ids = new int64_t[entries];
        auto ids_arr = owned(ids, {job.nq, k});
        float* dist = new float[entries];
        auto dist_arr = owned(dist, {job.nq, k});
        job.out_ids = ids;
        job.out_dist = dist;
        {
          nb::gil_scoped_release release;
          nk::knn_search(job);
        }
        return nb::make_tuple(ids_arr, dist_arr);
      },
      nb::arg("base"), nb::arg("sqnorms"), nb::arg("labels").none(), nb::arg("queries"),
      nb::arg("k"), nb::arg("metric"), nb::arg("mask").none(), nb::arg("threads") = 1,
      nb::arg("exclude_self") = false,
      "Exact k-NN: (ids int64 (nq, k), distances float32 (nq, k)), padded with -1/inf.");

  m.def(
      "flat_range",
      [](CFloat2D base, CFloat1D sqnorms, std::optional<CInt1D> labels, CFloat2D queries,
         float radius, int metric, std::optional<CMask1D> mask, int threads) {
        nk::KnnJob job = make_job(base, sqnorms, labels, queries, metric, mask, threads);
        int64_t* lims = new int64_t[job.nq + 1];
        auto lims_arr = owned(lims, {job.nq + 1});
        nk::RangeResult res;
        res.lims = lims;
        {
          nb::gil_scoped_release release;
          nk::range_search(job, radius, res);
        }
        auto ids_arr = owned(res.ids, {res.total});
        auto dist_arr = owned(res.dist, {res.total});
        return nb::make_tuple(lims_arr, ids_arr, dist_arr);
      },
      nb::arg("base"), nb::arg("sqnorms"), nb::arg("labels").none(), nb::arg("queries"),
      nb::arg("radius"), nb::arg("metric"), nb::arg("mask").none(), nb::arg("threads") = 1,
      "Rows with distance < radius: (lims (nq + 1), ids, distances), sorted per query.");

  m.def("flat_tile", [] { return nk::flat_kernels().tile; },
        "Queries per tile of the active ISA's batch kernel.");
  m.def(
      "fma_probe",
      [](size_t iters) {
        nb::gil_scoped_release release;
        return nk::flat_kernels().fma_probe(iters);
      },
      nb::arg("iters"),
      "Run a register-only multiply-add loop of the active ISA; returns the FLOPs done.");
}
