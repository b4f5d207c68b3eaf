// Python bindings of the HNSW graph (nearkit.indexes.hnsw wraps them).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/tuple.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "index/hnsw.h"
#include "common/bounds.h"
#include "python/bindings.h"
#include "python/ndarray.h"

namespace nb = nanobind;

using nk::py::In;
using nk::py::Out1;
using nk::py::to_numpy;
using nk::py::to_numpy2;

NEARKIT_BIND(bind_hnsw) {
  nb::class_<nk::Hnsw>(m, "Hnsw", "HNSW graph core (use nearkit.HNSW)")
      .def(
          "__init__",
          [](nk::Hnsw* self, size_t dim, int metric, size_t M, size_t efc, uint64_t seed) {
            if (metric < 0 || metric > 2) throw std::invalid_argument("bad metric code");
            new (self) nk::Hnsw(dim, nk::Metric(metric), M, efc, seed);
          },
          nb::arg("dim"), nb::arg("metric"), nb::arg("M"), nb::arg("ef_construction"),
          nb::arg("seed"))
      .def("__len__", &nk::Hnsw::size)
      .def_prop_ro("n_slots", &nk::Hnsw::n_slots)
      .def_prop_ro("capacity", &nk::Hnsw::capacity)
      .def_prop_ro("block_bytes", &nk::Hnsw::block_bytes)
      .def_prop_ro("header_offset", &nk::Hnsw::header_offset)
      .def_prop_ro("readonly", &nk::Hnsw::readonly)
      .def_prop_ro("memory_bytes", &nk::Hnsw::memory_bytes)
      .def_prop_ro("max_label", &nk::Hnsw::max_label)
      .def_prop_rw("exact_threshold", &nk::Hnsw::exact_threshold, &nk::Hnsw::set_exact_threshold)
      .def_prop_rw("rerank", &nk::Hnsw::rerank, &nk::Hnsw::set_rerank)
      .def_prop_rw("exact_scale", &nk::Hnsw::exact_scale, &nk::Hnsw::set_exact_scale)
      .def_prop_ro("float_walk", &nk::Hnsw::float_walk)
      .def("use_float_walk", &nk::Hnsw::use_float_walk)
      .def_prop_ro("error_z", &nk::Hnsw::error_z)
      .def_prop_ro("n_centres", &nk::Hnsw::n_centres)
      .def("guard_report",
           [](nk::Hnsw& h) {
             nk::GuardReport g = h.guard_report();
             nb::dict out;
             out["queries"] = g.queries;
             out["references"] = g.references;
             out["max_error"] = g.max_error;
             out["confusable"] = g.confusable;
             out["codes_ok"] = g.codes_ok;
             return out;
           })
      .def(
          "add",
          [](nk::Hnsw& h, In<float, 2> x, In<int64_t, 1> ids, int threads) {
            if (x.shape(1) != h.dim()) throw std::invalid_argument("vectors have the wrong dimension");
            if (ids.shape(0) != x.shape(0)) throw std::invalid_argument("ids and vectors differ in length");
            nb::gil_scoped_release release;
            h.add(x.data(), ids.data(), x.shape(0), threads);
          },
          nb::arg("x"), nb::arg("ids"), nb::arg("threads") = 1)
      .def(
          "remove",
          [](nk::Hnsw& h, In<int64_t, 1> ids) {
            nb::gil_scoped_release release;
            return h.remove(ids.data(), ids.shape(0));
          },
          nb::arg("ids"))
      .def(
          "search",
          [](nk::Hnsw& h, In<float, 2> q, size_t k, size_t ef,
             std::optional<In<uint8_t, 1>> mask, int threads) {
            if (q.shape(1) != h.dim()) throw std::invalid_argument("queries have the wrong dimension");
            if (k == 0) throw std::invalid_argument("k must be positive");
            size_t nq = q.shape(0);
            std::vector<int64_t> ids(nk::result_entries(nq, k));
            std::vector<float> dist(nq * k);
            {
              nb::gil_scoped_release release;
              h.search(q.data(), nq, k, ef, mask ? mask->data() : nullptr,
                       mask ? mask->shape(0) : 0, threads, ids.data(), dist.data());
            }
            return nb::make_tuple(to_numpy2(std::move(ids), nq, k), to_numpy2(std::move(dist), nq, k));
          },
          nb::arg("q"), nb::arg("k"), nb::arg("ef"), nb::arg("mask").none(), nb::arg("threads") = 1)
      // One query, no filter: the lean path behind HNSW.search for Python loops.
      // Checks finiteness here instead of in numpy (the core normalises for cosine).
      .def(
          "search_one",
          [](nk::Hnsw& h, In<float, 1> q, size_t k, size_t ef) {
            const size_t d = h.dim();
            if (q.shape(0) != d)
              throw std::invalid_argument("queries have dimension " + std::to_string(q.shape(0)) +
                                          ", index expects " + std::to_string(d));
            const float* qd = q.data();
            for (size_t j = 0; j < d; ++j)
              if (!std::isfinite(qd[j]))
                throw std::invalid_argument("queries contain NaN or infinity (first at row 0)");
            if (k == 0) throw std::invalid_argument("k must be positive");
            nk::result_entries(1, k);
            std::unique_ptr<int64_t[]> ids_owner(new int64_t[k]);
            std::unique_ptr<float[]> dist_owner(new float[k]);
            int64_t* ids = ids_owner.get();
            float* dist = dist_owner.get();
            {
              nb::gil_scoped_release release;
              h.search(qd, 1, k, ef, nullptr, 0, 1, ids, dist);
            }
            ids_owner.release();
            dist_owner.release();
            nb::capsule own_ids(ids, [](void* p) noexcept { delete[] static_cast<int64_t*>(p); });
            nb::capsule own_dist(dist, [](void* p) noexcept { delete[] static_cast<float*>(p); });
            return nb::make_tuple(Out1<int64_t>(ids, {k}, own_ids), Out1<float>(dist, {k}, own_dist));
          },
          nb::arg("q"), nb::arg("k"), nb::arg("ef"))
      .def("slot_labels",
           [](nk::Hnsw& h) {
             std::vector<int64_t> out(h.n_slots());
             h.slot_labels(out.data(), out.size());
             return to_numpy(std::move(out));
           })
      // Exact top-k among the masked slots (no walk): the store's table has chosen the scan.
      .def(
          "scan",
          [](nk::Hnsw& h, In<float, 2> q, size_t k, In<uint8_t, 1> mask) {
            if (q.shape(1) != h.dim()) throw std::invalid_argument("queries have the wrong dimension");
            if (k == 0) throw std::invalid_argument("k must be positive");
            size_t nq = q.shape(0);
            std::vector<int64_t> ids(nk::result_entries(nq, k));
            std::vector<float> dist(nq * k);
            {
              nb::gil_scoped_release release;
              h.scan(q.data(), nq, k, mask.data(), mask.shape(0), ids.data(), dist.data());
            }
            return nb::make_tuple(to_numpy2(std::move(ids), nq, k), to_numpy2(std::move(dist), nq, k));
          },
          nb::arg("q"), nb::arg("k"), nb::arg("mask"))
      // Gathers the stored vectors of some slots (the store and the server read
      // the index's vectors instead of keeping their own copy).
      .def("vectors_at",
           [](nk::Hnsw& h, In<int64_t, 1> slots) {
             size_t n = slots.shape(0);
             std::vector<float> out(n * h.dim());
             {
               nb::gil_scoped_release release;
               h.vectors_at(slots.data(), n, out.data());
             }
             return to_numpy2(std::move(out), n, h.dim());
           },
           nb::arg("slots"))
      .def("export_arrays",
           [](nk::Hnsw& h) {
             std::vector<uint8_t> blocks, levels;
             std::vector<float> vectors, quant;
             std::vector<int64_t> labels, offsets;
             std::vector<uint32_t> upper;
             nk::HnswState st;
             {
               nb::gil_scoped_release release;
               h.export_arrays(blocks, vectors, labels, levels, offsets, upper, quant, st);
             }
             size_t n = st.n_slots;
             nb::dict out;
             out["blocks"] = to_numpy2(std::move(blocks), n, h.block_bytes());
             out["vectors"] = to_numpy2(std::move(vectors), n, h.dim());
             out["labels"] = to_numpy(std::move(labels));
             out["levels"] = to_numpy(std::move(levels));
             out["upper_offsets"] = to_numpy(std::move(offsets));
             out["upper_links"] = to_numpy(std::move(upper));
             size_t qcols = (h.dim() + 15) / 16 * 16;  // [header, centres...] x dpad
             size_t qrows = quant.size() / qcols;
             out["quant"] = to_numpy2(std::move(quant), qrows, qcols);
             out["entry"] = st.entry;
             out["max_level"] = st.max_level;
             return out;
           })
      .def(
          "attach",
          [](nk::Hnsw& h, In<uint8_t, 2> blocks, In<float, 2> vectors, In<int64_t, 1> labels,
             In<uint8_t, 1> levels, In<int64_t, 1> offsets, In<uint32_t, 1> upper,
             In<float, 2> quant, int64_t entry, int max_level, bool borrow, bool legacy) {
            size_t n = labels.shape(0);
            if (blocks.shape(0) != n || vectors.shape(0) != n || levels.shape(0) != n ||
                offsets.shape(0) != n + 1)
              throw std::invalid_argument("HNSW file: sections disagree on the number of slots");
            if (vectors.shape(1) != h.dim())
              throw std::invalid_argument("HNSW file: vectors section has the wrong dimension");
            if (quant.shape(0) < 1 || quant.shape(1) != (h.dim() + 15) / 16 * 16 ||
                (legacy && quant.shape(0) != 2))
              throw std::invalid_argument("HNSW file: bad quantiser section");
            nk::HnswState st{entry, max_level, n};
            // The arrays stay referenced by the caller for the whole call.
            nb::gil_scoped_release release;
            h.attach(blocks.data(), blocks.shape(0) * blocks.shape(1), vectors.data(),
                     labels.data(), levels.data(), offsets.data(), upper.data(), upper.shape(0),
                     quant.data(), quant.shape(0), st, borrow, legacy);
          },
          nb::arg("blocks"), nb::arg("vectors"), nb::arg("labels"), nb::arg("levels"),
          nb::arg("upper_offsets"), nb::arg("upper_links"), nb::arg("quant"), nb::arg("entry"),
          nb::arg("max_level"), nb::arg("borrow"), nb::arg("legacy") = false);
}
