// Python bindings for inverted-file search (index/ivf.h) and the kernels the
// IVF Python code calls directly.
//
// IvfSearcher keeps references to the numpy arrays (or memory maps) that its
// nk::IvfLists points into, so Python builds one per index state and each
// search is a single call.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/distance.h"
#include "index/ivf.h"
#include "index/kmeans.h"
#include "kernels/ivfscan.h"
#include "kernels/pq4.h"
#include "common/bounds.h"
#include "python/bindings.h"
#include "python/ndarray.h"

namespace nb = nanobind;

namespace {

template <class T, class... Extra>
using CArr = nb::ndarray<const T, nb::c_contig, nb::device::cpu, Extra...>;
using nk::py::owned;

struct IvfSearcher {
  std::unique_ptr<nk::IvfLists> lists;
  // Held only to keep the arrays alive while the lists point into them.
  CArr<float, nb::ndim<2>> centroids, refine;
  CArr<float> sq_vmin, sq_step;
  CArr<float, nb::ndim<3>> codebooks;
  CArr<int64_t, nb::ndim<1>> offsets, ids;
  CArr<uint8_t> codes;

  IvfSearcher(const std::string& codec, int metric, CArr<float, nb::ndim<2>> centroids_,
              CArr<int64_t, nb::ndim<1>> offsets_, CArr<int64_t, nb::ndim<1>> ids_,
              CArr<uint8_t> codes_, size_t code_size, std::optional<CArr<float>> vmin,
              std::optional<CArr<float>> step, std::optional<CArr<float, nb::ndim<3>>> books,
              size_t mpad, bool by_residual, std::optional<CArr<float, nb::ndim<2>>> refine_)
      : centroids(centroids_), offsets(offsets_), ids(ids_), codes(codes_) {
    nk::IvfArrays a;
    a.codec = nk::codec_from_name(codec);
    a.metric = metric;
    a.centroids = centroids_.data();
    a.nlist = centroids_.shape(0);
    a.dim = centroids_.shape(1);
    a.offsets = offsets_.data();
    a.n_offsets = offsets_.shape(0);
    a.ids = ids_.data();
    a.nslots = ids_.shape(0);
    a.codes = codes_.data();
    a.codes_bytes = codes_.nbytes();
    a.code_size = code_size;
    a.has_sq = vmin && step;
    if (vmin) sq_vmin = *vmin, a.sq_vmin = vmin->data(), a.sq_vmin_len = vmin->size();
    if (step) sq_step = *step, a.sq_step = step->data(), a.sq_step_len = step->size();
    if (books) {
      a.has_codebooks = true;
      codebooks = *books;
      a.codebooks = books->data();
      a.pq_m = books->shape(0);
      a.pq_ksub = books->shape(1);
      a.pq_dsub = books->shape(2);
    }
    a.mpad = mpad;
    a.by_residual = by_residual;
    if (refine_) {
      a.has_refine = true;
      refine = *refine_;
      a.refine = refine_->data();
      a.refine_rows = refine_->shape(0);
      a.refine_dim = refine_->shape(1);
    }
    lists = std::make_unique<nk::IvfLists>(a);
  }

  std::pair<nk::py::Out<int64_t>, nk::py::Out<float>> search(
      CArr<float, nb::ndim<2>> q, std::optional<CArr<float, nb::ndim<2>>> q_orig, size_t k,
      size_t nprobe, size_t k_factor, std::optional<CArr<uint8_t, nb::ndim<1>>> mask,
      size_t threads) {
    const nk::IvfView& v = lists->view();
    size_t nq = q.shape(0);
    if (q.shape(1) != v.dim) throw std::invalid_argument("query dimension mismatch");
    if (k == 0 || nprobe == 0) throw std::invalid_argument("k and nprobe must be positive");
    for (size_t i = 0; i < nq * v.dim; ++i)
      if (!std::isfinite(q.data()[i])) throw std::invalid_argument("queries contain NaN or infinity");
    const float* qo = nullptr;
    if (v.refine) {
      if (!q_orig || q_orig->shape(0) != nq || q_orig->shape(1) != v.refine_dim)
        throw std::invalid_argument("refine needs original-space queries");
      qo = q_orig->data();
    }
    const uint8_t* mp = nullptr;
    if (mask) {
      if (mask->shape(0) != v.nslots) throw std::invalid_argument("mask length differs from slots");
      mp = mask->data();
    }
    const size_t entries = std::max<size_t>(nk::result_entries(nq, k), 1);
    std::unique_ptr<int64_t[]> ids_owner(new int64_t[entries]);
    std::unique_ptr<float[]> dist_owner(new float[entries]);
    int64_t* ids = ids_owner.get();
    float* dist = dist_owner.get();
    {
      nb::gil_scoped_release release;
      nk::ivf_search(v, q.data(), qo, nq, k, nprobe, k_factor, mp, threads, ids, dist);
    }
    ids_owner.release();
    dist_owner.release();
    return {owned(ids, {nq, k}), owned(dist, {nq, k})};
  }
};

}  // namespace

NEARKIT_BIND(bind_ivf) {
  nb::class_<IvfSearcher>(m, "IvfSearcher")
      .def(nb::init<const std::string&, int, CArr<float, nb::ndim<2>>, CArr<int64_t, nb::ndim<1>>,
                    CArr<int64_t, nb::ndim<1>>, CArr<uint8_t>, size_t, std::optional<CArr<float>>,
                    std::optional<CArr<float>>, std::optional<CArr<float, nb::ndim<3>>>, size_t, bool,
                    std::optional<CArr<float, nb::ndim<2>>>>(),
           nb::arg("codec"), nb::arg("metric"), nb::arg("centroids"), nb::arg("offsets"),
           nb::arg("ids"), nb::arg("codes"), nb::arg("code_size"), nb::arg("sq_vmin").none(),
           nb::arg("sq_step").none(), nb::arg("codebooks").none(), nb::arg("mpad"),
           nb::arg("by_residual"), nb::arg("refine").none())
      .def("search", &IvfSearcher::search, nb::arg("q"), nb::arg("q_orig").none(), nb::arg("k"),
           nb::arg("nprobe"), nb::arg("k_factor"), nb::arg("mask").none(), nb::arg("threads"));

  m.def(
      "pq4_scan",
      [](CArr<uint8_t, nb::ndim<1>> codes, size_t mpad, CArr<uint8_t, nb::ndim<1>> lut,
         const std::string& isa) {
        if (mpad == 0 || mpad % 2) throw std::invalid_argument("mpad must be even and positive");
        if (lut.shape(0) != mpad * 16) throw std::invalid_argument("lut must have mpad * 16 entries");
        size_t block = mpad * 16;
        if (codes.shape(0) % block) throw std::invalid_argument("codes are not whole blocks");
        size_t nblocks = codes.shape(0) / block;
        nk::Isa want = nk::isa_from_name(isa);
        if (!nk::isa_supported(want)) throw std::invalid_argument("instruction set not supported here");
        const nk::Pq4Kernels& P = nk::pq4_kernels_for(want);
        uint16_t* out = new uint16_t[nblocks * 32 > 0 ? nblocks * 32 : 1];
        {
          nb::gil_scoped_release release;
          P.scan(codes.data(), nblocks, mpad, lut.data(), out);
        }
        return owned(out, {nblocks, 32});
      },
      nb::arg("codes"), nb::arg("mpad"), nb::arg("lut"), nb::arg("isa"),
      "Fast-scan kernel of one ISA (for tests): uint16 sums (nblocks, 32).");

  m.def(
      "assign_blocked",
      [](CArr<float, nb::ndim<2>> x, CArr<float, nb::ndim<2>> c) {
        size_t n = x.shape(0), d = x.shape(1), k = c.shape(0);
        if (c.shape(1) != d) throw std::invalid_argument("dimension mismatch");
        if (k == 0) throw std::invalid_argument("no centroids");
        int64_t* labels = new int64_t[n > 0 ? n : 1];
        float* dist = new float[n > 0 ? n : 1];
        {
          nb::gil_scoped_release release;
          nk::assign_nearest_blocked(x.data(), n, d, c.data(), k, labels, dist);
        }
        return std::make_pair(owned(labels, {n}), owned(dist, {n}));
      },
      nb::arg("x"), nb::arg("centroids"),
      "Nearest centroid (labels, squared distances) by direct scan; for small dimensions.");

  m.def(
      "normalized_rows",
      [](CArr<float, nb::ndim<2>> x) {
        size_t n = x.shape(0), d = x.shape(1);
        float* out = new float[n * d > 0 ? n * d : 1];
        {
          nb::gil_scoped_release release;
          const nk::Kernels& K = nk::kernels();
          for (size_t i = 0; i < n; ++i) {
            const float* r = x.data() + i * d;
            float s = K.dot(r, r, d);
            float inv = s > 0 ? 1.0f / std::sqrt(s) : 1.0f;  // zero rows stay zero
            for (size_t j = 0; j < d; ++j) out[i * d + j] = r[j] * inv;
          }
        }
        return owned(out, {n, d});
      },
      nb::arg("x"), "Unit-normalised copy of the rows (zero rows stay zero).");

  m.def(
      "half_to_float",
      [](CArr<uint16_t, nb::ndim<1>> h) {
        size_t n = h.shape(0);
        float* out = new float[n > 0 ? n : 1];
        for (size_t i = 0; i < n; ++i) out[i] = nk::half_to_float(h.data()[i]);
        return owned(out, {1, n});
      },
      nb::arg("h"));
}
