// Python bindings for the random-projection forest (nearkit._core.TreeForest).
// Every call that walks trees or vectors releases the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/bounds.h"
#include "python/bindings.h"
#include "python/ndarray.h"
#include "kernels/tree_kernels.h"
#include "index/trees.h"

namespace nb = nanobind;
using nk::trees::Forest;

namespace {

using AnyArr = nk::py::InUntypedAny;
using I32 = nk::py::In<int32_t, 1>;
using I64 = nk::py::In<int64_t, 1>;
using F32 = nk::py::InAny<float>;
using U8 = nk::py::In<uint8_t, 1>;
using nk::py::adopt;

// Rows as the forest expects them: float32 (n, dim), or uint64 (n, words) for hamming.
nk::trees::Vectors rows(const Forest& f, const AnyArr& a, const char* what) {
  bool ham = nk::Metric(f.metric()) == nk::Metric::Hamming;
  bool ok_type = ham ? a.dtype() == nb::dtype<uint64_t>() : a.dtype() == nb::dtype<float>();
  if (!ok_type)
    throw std::invalid_argument(std::string(what) + (ham ? " must be uint64 words" : " must be float32"));
  if (a.ndim() != 2 || a.shape(1) != f.dim())
    throw std::invalid_argument(std::string(what) + " must have shape (n, " + std::to_string(f.dim()) + ")");
  return {a.data(), a.shape(0)};
}

}  // namespace

NEARKIT_BIND(bind_trees) {
  // The trees' own kernels (L1, hamming) through the active ISA: for tests.
  m.def(
      "tree_l1",
      [](nk::py::In<float, 2> a,
         nk::py::In<float, 1> q) {
        if (a.shape(1) != q.shape(0)) throw std::invalid_argument("dimension mismatch");
        std::vector<float> out(a.shape(0));
        const auto& K = nk::trees::tree_kernels();
        for (size_t i = 0; i < a.shape(0); ++i) out[i] = K.l1(a.data() + i * a.shape(1), q.data(), q.shape(0));
        return nk::py::copied(out, {out.size()});
      },
      nb::arg("rows"), nb::arg("query"));
  m.def(
      "tree_hamming",
      [](nk::py::In<uint64_t, 2> a,
         nk::py::In<uint64_t, 1> q) {
        if (a.shape(1) != q.shape(0)) throw std::invalid_argument("dimension mismatch");
        std::vector<float> out(a.shape(0));
        const auto& K = nk::trees::tree_kernels();
        for (size_t i = 0; i < a.shape(0); ++i) out[i] = K.hamming(a.data() + i * a.shape(1), q.data(), q.shape(0));
        return nk::py::copied(out, {out.size()});
      },
      nb::arg("rows"), nb::arg("query"));

  nb::class_<Forest>(m, "TreeForest", "Random-projection forest over caller-owned vectors.")
      .def(nb::init<int, size_t, int, uint64_t>(), nb::arg("metric"), nb::arg("dim"),
           nb::arg("leaf_size"), nb::arg("seed"))
      .def_prop_ro("metric", &Forest::metric)
      .def_prop_ro("dim", &Forest::dim)
      .def_prop_ro("plane_dim", &Forest::plane_dim)
      .def_prop_ro("leaf_size", &Forest::leaf_size)
      .def_prop_ro("max_norm", &Forest::max_norm)
      .def_prop_ro("frozen", &Forest::frozen)
      .def_prop_ro("n_trees", [](const Forest& f) { return f.view().n_trees; })
      .def_prop_ro("n_splits", [](const Forest& f) { return f.view().n_splits; })
      .def_prop_ro("n_leaves", [](const Forest& f) { return f.view().n_leaves; })
      .def(
          "build",
          [](Forest& f, AnyArr vec, I32 slots, int n_trees, int threads) {
            auto v = rows(f, vec, "vectors");
            nb::gil_scoped_release r;
            f.build(v, slots.data(), slots.shape(0), n_trees, threads);
          },
          nb::arg("vectors"), nb::arg("slots"), nb::arg("n_trees"), nb::arg("threads"))
      .def(
          "insert",
          [](Forest& f, AnyArr vec, I32 slots) {
            auto v = rows(f, vec, "vectors");
            nb::gil_scoped_release r;
            f.insert(v, slots.data(), slots.shape(0));
          },
          nb::arg("vectors"), nb::arg("slots"))
      .def(
          "erase",
          [](Forest& f, I32 slots, size_t n_rows) {
            nb::gil_scoped_release r;
            return f.erase(slots.data(), slots.shape(0), n_rows);
          },
          nb::arg("slots"), nb::arg("n_rows"))
      .def(
          "search",
          [](const Forest& f, AnyArr vec, AnyArr queries, size_t k, int64_t search_k,
             std::optional<U8> mask, int threads) {
            auto v = rows(f, vec, "vectors");
            auto q = rows(f, queries, "queries");
            if (k == 0) throw std::invalid_argument("k must be positive");
            if (mask && mask->shape(0) < v.n) throw std::invalid_argument("mask shorter than the vectors");
            size_t nq = q.n;
            const size_t entries = std::max<size_t>(nk::result_entries(nq, k), 1);
            int64_t* ids = new int64_t[entries];
            nb::capsule oi(ids, [](void* p) noexcept { delete[] static_cast<int64_t*>(p); });
            float* d = new float[entries];
            nb::capsule od(d, [](void* p) noexcept { delete[] static_cast<float*>(p); });
            {
              nb::gil_scoped_release r;
              f.search(v, q.data, nq, k, search_k, mask ? mask->data() : nullptr, threads, ids, d);
            }
            return nb::make_tuple(nk::py::Out2<int64_t>(ids, {nq, k}, oi),
                                  nk::py::Out2<float>(d, {nq, k}, od));
          },
          nb::arg("vectors"), nb::arg("queries"), nb::arg("k"), nb::arg("search_k"),
          nb::arg("mask").none(), nb::arg("threads"))
      .def(
          "attach",
          [](Forest& f, F32 planes, F32 offsets, I32 children, I64 leaf_off, I32 leaf_cnt,
             I32 leaf_items, I32 roots, float max_norm, bool frozen) {
            nk::trees::View v;
            size_t ns = offsets.size();
            if (planes.size() != ns * f.plane_dim()) throw std::invalid_argument("corrupt tree forest: planes size");
            if (children.shape(0) != 2 * ns) throw std::invalid_argument("corrupt tree forest: children size");
            if (leaf_off.shape(0) != leaf_cnt.shape(0)) throw std::invalid_argument("corrupt tree forest: leaf tables");
            v.planes = planes.data();
            v.offsets = offsets.data();
            v.children = children.data();
            v.leaf_off = leaf_off.data();
            v.leaf_cnt = leaf_cnt.data();
            v.leaf_items = leaf_items.data();
            v.roots = roots.data();
            v.n_splits = ns;
            v.n_leaves = leaf_cnt.shape(0);
            v.n_leaf_items = leaf_items.shape(0);
            v.n_trees = roots.shape(0);
            nb::gil_scoped_release r;
            f.attach(v, max_norm, frozen);
          },
          nb::arg("planes"), nb::arg("offsets"), nb::arg("children"), nb::arg("leaf_off"),
          nb::arg("leaf_cnt"), nb::arg("leaf_items"), nb::arg("roots"), nb::arg("max_norm"),
          nb::arg("frozen"),
          "Adopt saved arrays; frozen=True searches them in place (keep them alive).")
      .def_prop_rw("origin_planes", &Forest::origin_planes, &Forest::set_origin_planes)
      .def(
          "set_offsets",
          [](Forest& f, nk::py::In<float, 1> o) {
            f.set_offsets(o.data(), o.shape(0));
          },
          nb::arg("offsets"))
      .def(
          "set_tie_keys",
          [](Forest& f, I32 split_keys, I32 leaf_keys) {
            f.set_tie_keys(split_keys.data(), split_keys.shape(0), leaf_keys.data(), leaf_keys.shape(0));
          },
          nb::arg("split_keys"), nb::arg("leaf_keys"))
      .def("packed", [](const Forest& f) {
        nk::trees::NodeStore ns;
        {
          nb::gil_scoped_release r;
          ns = f.packed();
        }
        nb::dict out;
        size_t n = ns.offsets.size();
        size_t nl = ns.leaf_off.size(), ni = ns.leaf_items.size(), nr = ns.roots.size();
        out["planes"] = adopt(std::move(ns.planes), {n, f.plane_dim()});
        out["offsets"] = adopt(std::move(ns.offsets), {n});
        out["children"] = adopt(std::move(ns.children), {n, 2});
        out["leaf_off"] = adopt(std::move(ns.leaf_off), {nl});
        out["leaf_cnt"] = adopt(std::move(ns.leaf_cnt), {nl});
        out["leaf_items"] = adopt(std::move(ns.leaf_items), {ni});
        out["roots"] = adopt(std::move(ns.roots), {nr});
        return out;
      });
}
