// Python bindings of the annoy-file search (nearkit._core.AnnoyNodes), used by
// nearkit.compat.annoy for loaded indexes. Results come back as Python lists,
// the types annoy returns, built here to keep per-call overhead low.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "index/annoy_nodes.h"
#include "kernels/distance.h"
#include "python/bindings.h"
#include "python/ndarray.h"
#include "index/trees.h"

namespace nb = nanobind;
using nk::annoy::Nodes;

namespace {

using Bytes = nk::py::In<uint8_t, 1>;
using AnyVec = nk::py::InUntyped<1>;
using AnyRows = nk::py::InUntyped<2>;
using FloatRows = nk::py::In<float, 2>;

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

// A vector as annoy reads one: anything with len() and integer indexing whose
// items convert with float() (same errors: IndexError for the length,
// TypeError from len()/[]/float()). Contiguous float32 buffers are copied.
// hamming: each value becomes bit 1 iff > 0.5, packed 64 to a word, low bit first.
void read_vector(nb::handle v, size_t f, bool hamming, std::vector<float>& x, std::vector<uint64_t>& words) {
  PyObject* o = v.ptr();
  x.resize(f);
  bool done = false;
  if (!PyList_CheckExact(o) && !PyTuple_CheckExact(o) && PyObject_CheckBuffer(o)) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
      done = view.ndim == 1 && view.format && std::strcmp(view.format, "f") == 0 && size_t(view.shape[0]) == f;
      if (done) std::memcpy(x.data(), view.buf, f * sizeof(float));
      PyBuffer_Release(&view);
    } else {
      PyErr_Clear();
    }
  }
  if (!done) {
    Py_ssize_t len = PyObject_Size(o);
    if (len < 0) throw nb::python_error();
    if (size_t(len) != f)
      throw nb::index_error(("Vector has wrong length (expected " + std::to_string(f) + ", got " +
                             std::to_string(len) + ")").c_str());
    const bool fast = PyList_CheckExact(o) || PyTuple_CheckExact(o);
    for (size_t z = 0; z < f; ++z) {
      PyObject* item;
      if (fast) {
        item = PyList_CheckExact(o) ? PyList_GET_ITEM(o, z) : PyTuple_GET_ITEM(o, z);
        Py_INCREF(item);
      } else {
        PyObject* key = PyLong_FromSize_t(z);
        item = PyObject_GetItem(o, key);
        Py_DECREF(key);
        if (!item) throw nb::python_error();
      }
      double d = PyFloat_AsDouble(item);
      Py_DECREF(item);
      if (d == -1.0 && PyErr_Occurred()) throw nb::python_error();
      x[z] = float(d);
    }
  }
  if (hamming) {
    words.assign((f + 63) / 64, 0);
    for (size_t z = 0; z < f; ++z)
      if (x[z] > 0.5f) words[z / 64] |= uint64_t(1) << (z % 64);
  }
}

// An item index as annoy's argument parsing reads a C int: an int (or anything
// with __index__; TypeError otherwise) within the C int range (OverflowError with
// Python's messages otherwise). Done here so that get_distance costs one call.
int64_t annoy_c_int(nb::handle h) {
  PyObject* o = h.ptr();
  nb::object idx;
  if (!PyLong_Check(o)) {
    idx = nb::steal(PyNumber_Index(o));
    if (!idx.is_valid()) throw nb::python_error();
    o = idx.ptr();
  }
  // PyLong_AsLong's own OverflowError beyond a C long, as annoy's "i" format gives.
  long v = PyLong_AsLong(o);
  if (v == -1 && PyErr_Occurred()) throw nb::python_error();
  if (v > std::numeric_limits<int>::max()) {
    PyErr_SetString(PyExc_OverflowError, "signed integer is greater than maximum");
    throw nb::python_error();
  }
  if (v < std::numeric_limits<int>::min()) {
    PyErr_SetString(PyExc_OverflowError, "signed integer is less than minimum");
    throw nb::python_error();
  }
  return int64_t(v);
}

// annoy's IndexError for an item index outside 0 .. n-1.
void check_item_index(int64_t i, uint64_t n) {
  if (i < 0) throw nb::index_error("Item index can not be negative");
  if (uint64_t(i) >= n) throw nb::index_error("Item index larger than the largest item index");
}

// The raw vectors of an index built in memory, for get_distance: one object made
// once per state of the rows so that a call converts two ints, not an array.
struct PyRows {
  nb::object owner;  // the numpy array whose memory `data` points into
  const float* data;
  size_t n, f;
  int metric;
  float distance(int64_t i, int64_t j) const {
    check_item_index(i, n);
    check_item_index(j, n);
    const float* a = data + size_t(i) * f;
    const float* b = data + size_t(j) * f;
    if (metric == nk::annoy::Hamming) {  // rows hold 0/1 per bit
      size_t d = 0;
      for (size_t z = 0; z < f; ++z) d += a[z] != b[z];
      return float(d);
    }
    float qnorm = metric == nk::annoy::Angular ? nk::kernels().dot(a, a, f) : 0.f;
    return nk::annoy::reported_distance(metric, nk::annoy::row_distance(metric, a, qnorm, b, f));
  }
};

void check_item(const Nodes& n, int64_t i) { check_item_index(i, n.n_items()); }

// One annoy query on a forest built in memory: the forest gathers candidates,
// then they are scored with annoy's own formulas on the raw vectors and
// sorted by (distance, id), as annoy does.
nb::object forest_query(const nk::trees::Forest& forest, AnyRows core, FloatRows raw, nb::handle vec,
                        size_t n_items, int metric, uint64_t n, int64_t search_k, bool include) {
  std::vector<int32_t> ids;
  std::vector<float> dist;
  const size_t f = raw.shape(1);
  const size_t n_trees = forest.view().n_trees;
  if (core.shape(0) < n_items || raw.shape(0) < n_items) throw std::invalid_argument("fewer rows than items");
  bool ham = metric == nk::annoy::Hamming;
  std::vector<float> qv;
  std::vector<uint64_t> qw;
  read_vector(vec, f, ham, qv, qw);
  if (ham ? qw.size() != forest.dim() : forest.dim() != f) throw std::invalid_argument("query does not fit the forest");
  if (n != 0 && search_k != 0 && n_trees != 0 && n_items != 0) {
    if (search_k == -1) {
      unsigned __int128 sk = (unsigned __int128)n * n_trees;
      search_k = sk > (unsigned __int128)std::numeric_limits<int64_t>::max() ? -1 : int64_t(sk);
    } else if (search_k < 0) {
      search_k = -1;  // any other negative: unlimited
    }
    size_t k = size_t(std::min<uint64_t>(n, n_items));
    nb::gil_scoped_release r;
    std::vector<int64_t> found(k);
    std::vector<float> fd(k);
    const float* qf = qv.data();
    float qnorm = 0.f;
    std::vector<float> unit;
    const void* cq = ham ? static_cast<const void*>(qw.data()) : static_cast<const void*>(qf);
    if (metric == nk::annoy::Angular) {
      qnorm = nk::kernels().dot(qf, qf, f);
      if (qnorm > 0) {
        unit.resize(f);
        float inv = 1.f / std::sqrt(qnorm);
        for (size_t z = 0; z < f; ++z) unit[z] = qf[z] * inv;
        cq = unit.data();
      }
    }
    forest.search({core.data(), n_items}, cq, 1, k, search_k, nullptr, 1, found.data(), fd.data());
    std::vector<std::pair<float, int32_t>> scored;
    scored.reserve(k);
    const float* rows = raw.data();
    for (size_t i = 0; i < k && found[i] >= 0; ++i) {
      int32_t id = int32_t(found[i]);
      float d = ham ? fd[i] : nk::annoy::row_distance(metric, qf, qnorm, rows + size_t(id) * f, f);
      scored.push_back({d, id});
    }
    std::sort(scored.begin(), scored.end());
    ids.reserve(scored.size());
    dist.reserve(scored.size());
    for (auto& [d, id] : scored) {
      ids.push_back(id);
      dist.push_back(nk::annoy::reported_distance(metric, d));
    }
  }
  return as_lists(ids, dist, include);
}

}  // namespace

NEARKIT_BIND(bind_annoy) {
  nb::class_<PyRows>(m, "AnnoyRows",
                     "The raw vectors of an index built in memory: annoy's get_distance between two items.")
      .def(
          "__init__",
          [](PyRows* self, nb::object owner, FloatRows raw, size_t n_items, int metric) {
            if (n_items > raw.shape(0)) throw std::invalid_argument("n_items exceeds the rows");
            new (self) PyRows{std::move(owner), raw.data(), n_items, raw.shape(1), metric};
          },
          nb::arg("owner"), nb::arg("raw_rows"), nb::arg("n_items"), nb::arg("metric"),
          "owner: the array raw_rows is (kept alive); items 0..n_items-1 are valid.")
      .def(
          "distance",
          [](const PyRows& r, nb::handle i, nb::handle j) { return r.distance(annoy_c_int(i), annoy_c_int(j)); },
          nb::arg("i"), nb::arg("j"), "i, j: item indexes read as annoy reads a C int.");
  m.def("annoy_forest_query", &forest_query, nb::arg("forest"), nb::arg("core_rows"), nb::arg("raw_rows"),
        nb::arg("query"), nb::arg("n_items"), nb::arg("metric"), nb::arg("n"), nb::arg("search_k"),
        nb::arg("include_distances"),
        "annoy's get_nns_by_vector on a TreeForest: lists of ids (and distances), annoy's order.");

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
          [](const PyNodes& p, nb::handle vec, size_t f, uint64_t n, int64_t search_k, bool include) {
            std::vector<float> qv;
            std::vector<uint64_t> qw;
            bool ham = p.nodes.metric() == nk::annoy::Hamming;
            read_vector(vec, f, ham, qv, qw);
            std::vector<int32_t> ids;
            std::vector<float> dist;
            {
              nb::gil_scoped_release r;
              p.nodes.search(ham ? static_cast<const void*>(qw.data()) : qv.data(), n, search_k, ids, dist);
            }
            return as_lists(ids, dist, include);
          },
          nb::arg("query"), nb::arg("f"), nb::arg("n"), nb::arg("search_k"), nb::arg("include_distances"),
          "query: any sequence of f numbers, read as annoy reads it.")
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
          [](const PyNodes& p, nb::handle hi, nb::handle hj) {
            const int64_t i = annoy_c_int(hi), j = annoy_c_int(hj);
            check_item(p.nodes, i);
            check_item(p.nodes, j);
            return p.nodes.distance(size_t(i), size_t(j));
          },
          nb::arg("i"), nb::arg("j"), "i, j: item indexes read as annoy reads a C int.");
}
