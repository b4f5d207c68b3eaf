// Python bindings of the annoy-file search (nearkit._core.AnnoyNodes), used by
// nearkit.compat.annoy for loaded indexes. Results come back as Python lists,
// the types annoy returns, built here to keep per-call overhead low.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "annoy_nodes.h"
#include "registry.h"

namespace nb = nanobind;
using nk::annoy::Nodes;

namespace {

using Bytes = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using AnyVec = nb::ndarray<nb::ro, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// The node array plus the Python object that owns its memory (a file mapping).
struct PyNodes {
  nb::object owner;
  Nodes nodes;
  PyNodes(nb::object o, const uint8_t* p, size_t n, int metric, size_t f)
      : owner(std::move(o)), nodes(p, n, metric, f) {}
};

nb::object as_lists(const std::vector<int32_t>& ids, const std::vector<float>& dist, bool include) {
  PyObject* li = PyList_New(Py_ssize_t(ids.size()));
  if (!li) throw nb::python_error();
  for (size_t i = 0; i < ids.size(); ++i) PyList_SET_ITEM(li, Py_ssize_t(i), PyLong_FromLong(ids[i]));
  nb::object out = nb::steal(li);
  if (!include) return out;
  PyObject* ld = PyList_New(Py_ssize_t(dist.size()));
  if (!ld) throw nb::python_error();
  for (size_t i = 0; i < dist.size(); ++i) PyList_SET_ITEM(ld, Py_ssize_t(i), PyFloat_FromDouble(dist[i]));
  return nb::make_tuple(out, nb::steal(ld));
}

void check_item(const Nodes& n, int64_t i) {
  if (i < 0) throw nb::index_error("Item index can not be negative");
  if (uint64_t(i) >= n.n_items()) throw nb::index_error("Item index larger than the largest item index");
}

}  // namespace

NEARKIT_BIND(bind_annoy) {
  nb::class_<PyNodes>(m, "AnnoyNodes", "An annoy 1.17.3 node array searched in place (nearkit.compat.annoy).")
      .def(
          "__init__",
          [](PyNodes* self, nb::object owner, Bytes data, int metric, size_t f) {
            new (self) PyNodes(owner, data.data(), data.shape(0), metric, f);
          },
          nb::arg("owner"), nb::arg("data"), nb::arg("metric"), nb::arg("f"),
          "owner: the object that keeps data's memory alive; data: the file's bytes.")
      .def_prop_ro("n_items", [](const PyNodes& p) { return p.nodes.n_items(); })
      .def_prop_ro("n_trees", [](const PyNodes& p) { return p.nodes.roots().size(); })
      .def_prop_ro("n_nodes", [](const PyNodes& p) { return p.nodes.n_nodes(); })
      .def_prop_ro("node_size", [](const PyNodes& p) { return p.nodes.node_size(); })
      .def_prop_ro("owner", [](const PyNodes& p) { return p.owner; })
      .def("is_item", [](const PyNodes& p, int64_t i) { return i >= 0 && p.nodes.is_item(size_t(i)); })
      .def(
          "search",
          [](const PyNodes& p, AnyVec q, uint64_t n, int64_t search_k, bool include) {
            std::vector<int32_t> ids;
            std::vector<float> dist;
            {
              nb::gil_scoped_release r;
              p.nodes.search(q.data(), n, search_k, ids, dist);
            }
            return as_lists(ids, dist, include);
          },
          nb::arg("query"), nb::arg("n"), nb::arg("search_k"), nb::arg("include_distances"),
          "query: f float32 (hamming: packed uint64 words), contiguous; the caller checks its length.")
      .def(
          "search_item",
          [](const PyNodes& p, int64_t i, uint64_t n, int64_t search_k, bool include) {
            check_item(p.nodes, i);
            std::vector<int32_t> ids;
            std::vector<float> dist;
            {
              nb::gil_scoped_release r;
              p.nodes.search(p.nodes.vector_ptr(size_t(i)), n, search_k, ids, dist);
            }
            return as_lists(ids, dist, include);
          },
          nb::arg("i"), nb::arg("n"), nb::arg("search_k"), nb::arg("include_distances"))
      .def(
          "item",
          [](const PyNodes& p, int64_t i, size_t f) {
            check_item(p.nodes, i);
            std::vector<float> v(f);
            p.nodes.item(size_t(i), v.data());
            PyObject* l = PyList_New(Py_ssize_t(f));
            if (!l) throw nb::python_error();
            for (size_t z = 0; z < f; ++z) PyList_SET_ITEM(l, Py_ssize_t(z), PyFloat_FromDouble(v[z]));
            return nb::steal(l);
          },
          nb::arg("i"), nb::arg("f"))
      .def(
          "distance",
          [](const PyNodes& p, int64_t i, int64_t j) {
            check_item(p.nodes, i);
            check_item(p.nodes, j);
            return p.nodes.distance(size_t(i), size_t(j));
          },
          nb::arg("i"), nb::arg("j"));
}
