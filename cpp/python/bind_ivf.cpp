// Python bindings for inverted-file search and the fast-scan kernels.
//
// IvfSearcher keeps references to the numpy arrays (or memory maps) it reads,
// so Python builds one per index state and each search is a single call.
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
#include "kernels/ivfscan.h"
#include "kernels/pq4.h"
#include "common/bounds.h"
#include "python/registry.h"

namespace nb = nanobind;

namespace {

template <class T, class... Extra>
using CArr = nb::ndarray<const T, nb::c_contig, nb::device::cpu, Extra...>;

template <class T>
nb::ndarray<nb::numpy, T> owned(T* p, size_t a, size_t b) {
  nb::capsule owner(p, [](void* q) noexcept { delete[] static_cast<T*>(q); });
  size_t shape[2] = {a, b};
  return nb::ndarray<nb::numpy, T>(p, 2, shape, owner);
}

struct IvfSearcher {
  nk::IvfView view;
  std::vector<float> centroid_blocks;
  std::vector<uint32_t> list_valid;
  // Held only to keep the arrays alive while the view points into them.
  CArr<float, nb::ndim<2>> centroids, refine;
  CArr<float> sq_vmin, sq_step;
  CArr<float, nb::ndim<3>> codebooks;
  CArr<int64_t, nb::ndim<1>> offsets, ids;
  CArr<uint8_t> codes;

  IvfSearcher(const std::string& codec, int metric, CArr<float, nb::ndim<2>> centroids_,
              CArr<int64_t, nb::ndim<1>> offsets_, CArr<int64_t, nb::ndim<1>> ids_,
              CArr<uint8_t> codes_, size_t code_size, std::optional<CArr<float>> vmin,
              std::optional<CArr<float>> step, std::optional<CArr<float, nb::ndim<3>>> books,
              size_t mpad, bool by_residual, std::optional<CArr<float, nb::ndim<2>>> refine_) {
    nk::IvfView& v = view;
    v.dim = centroids_.shape(1);
    v.nlist = centroids_.shape(0);
    v.metric = metric;
    if (codec == "flat") v.codec = nk::Codec::Flat;
    else if (codec == "sq8") v.codec = nk::Codec::SQ8;
    else if (codec == "fp16") v.codec = nk::Codec::FP16;
    else if (codec == "pq8") v.codec = nk::Codec::PQ8;
    else if (codec == "pq4fs") v.codec = nk::Codec::PQ4FS;
    else throw std::invalid_argument("unknown codec " + codec);
    if (offsets_.shape(0) != v.nlist + 1) throw std::invalid_argument("offsets must have nlist + 1 entries");
    centroids = centroids_;
    offsets = offsets_;
    ids = ids_;
    codes = codes_;
    v.centroids = centroids_.data();
    {
      size_t nb_ = (v.nlist + nk::kFlatBlock - 1) / nk::kFlatBlock;
      centroid_blocks.assign(nb_ * nk::kFlatBlock * v.dim, 0.f);
      for (size_t l = 0; l < v.nlist; ++l)
        for (size_t j = 0; j < v.dim; ++j)
          centroid_blocks[(l / 16) * 16 * v.dim + j * 16 + (l % 16)] = centroids_.data()[l * v.dim + j];
      v.centroid_blocks = centroid_blocks.data();
    }
    v.offsets = offsets_.data();
    v.ids = ids_.data();
    v.nslots = ids_.shape(0);
    if ((size_t)offsets_.data()[v.nlist] != v.nslots || offsets_.data()[0] != 0)
      throw std::invalid_argument("offsets do not span the id array");
    for (size_t l = 0; l < v.nlist; ++l)
      if (offsets_.data()[l + 1] < offsets_.data()[l]) throw std::invalid_argument("offsets must not decrease");
    {
      bool dense = true;
      list_valid.assign(v.nlist, 0);
      const int64_t* off = offsets_.data();
      for (size_t l = 0; l < v.nlist && dense; ++l) {
        int64_t i = off[l];
        while (i < off[l + 1] && v.ids[i] >= 0) ++i;
        list_valid[l] = uint32_t(i - off[l]);
        for (int64_t j = i; j < off[l + 1]; ++j)
          if (v.ids[j] >= 0) { dense = false; break; }
      }
      v.list_valid = dense ? list_valid.data() : nullptr;
    }
    v.codes = codes_.data();
    v.code_size = code_size;
    size_t need = v.codec == nk::Codec::PQ4FS ? v.nslots / nk::kPq4Block * code_size : v.nslots * code_size;
    if (codes_.nbytes() < need) throw std::invalid_argument("codes array is too small for the slots");
    if (v.codec == nk::Codec::Flat) {
      if (code_size != 4 * v.dim) throw std::invalid_argument("flat code size");
      for (size_t l = 0; l <= v.nlist; ++l)
        if (offsets_.data()[l] % (int64_t)nk::kFlatBlock) throw std::invalid_argument("flat lists must be padded to 16");
    }
    if (v.codec == nk::Codec::SQ8) {
      if (!vmin || !step || vmin->size() != v.dim || step->size() != v.dim || code_size != v.dim)
        throw std::invalid_argument("sq8 needs vmin and step of length dim");
      sq_vmin = *vmin;
      sq_step = *step;
      v.sq_vmin = vmin->data();
      v.sq_step = step->data();
    }
    if (v.codec == nk::Codec::FP16 && code_size != 2 * v.dim) throw std::invalid_argument("fp16 code size");
    if (v.codec == nk::Codec::PQ8 || v.codec == nk::Codec::PQ4FS) {
      if (!books) throw std::invalid_argument("pq needs codebooks");
      codebooks = *books;
      v.pq_codebooks = books->data();
      v.pq_m = books->shape(0);
      v.pq_ksub = books->shape(1);
      v.pq_dsub = books->shape(2);
      if (v.pq_m * v.pq_dsub != v.dim) throw std::invalid_argument("codebooks do not cover dim");
      if (v.codec == nk::Codec::PQ8 && (v.pq_ksub > 256 || code_size != v.pq_m))
        throw std::invalid_argument("pq8 needs <= 256 centroids and M-byte codes");
      if (v.codec == nk::Codec::PQ4FS) {
        if (v.pq_ksub != 16 || mpad < v.pq_m || mpad % 2 || code_size != mpad * 16 ||
            v.nslots % nk::kPq4Block)
          throw std::invalid_argument("pq4fs layout mismatch");
        for (size_t l = 0; l <= v.nlist; ++l)
          if (offsets_.data()[l] % (int64_t)nk::kPq4Block) throw std::invalid_argument("pq4fs lists must be padded to 32");
      }
      v.pq_mpad = mpad;
    }
    v.by_residual = by_residual;
    if (refine_) {
      if (refine_->shape(0) != v.nslots) throw std::invalid_argument("refine vectors must cover every slot");
      refine = *refine_;
      v.refine = refine_->data();
      v.refine_dim = refine_->shape(1);
    }
  }

  std::pair<nb::ndarray<nb::numpy, int64_t>, nb::ndarray<nb::numpy, float>> search(
      CArr<float, nb::ndim<2>> q, std::optional<CArr<float, nb::ndim<2>>> q_orig, size_t k,
      size_t nprobe, size_t k_factor, std::optional<CArr<uint8_t, nb::ndim<1>>> mask,
      size_t threads) {
    const nk::IvfView& v = view;
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
    return {owned(ids, nq, k), owned(dist, nq, k)};
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
        return owned(out, nblocks, 32);
      },
      nb::arg("codes"), nb::arg("mpad"), nb::arg("lut"), nb::arg("isa"),
      "Fast-scan kernel of one ISA (for tests): uint16 sums (nblocks, 32).");

  m.def(
      "assign_blocked",
      [](CArr<float, nb::ndim<2>> x, CArr<float, nb::ndim<2>> c) {
        // Nearest centroid by squared L2 for low-dimensional data (PQ
        // sub-spaces), where a BLAS product with a tiny inner dimension is slow.
        size_t n = x.shape(0), d = x.shape(1), k = c.shape(0);
        if (c.shape(1) != d) throw std::invalid_argument("dimension mismatch");
        if (k == 0) throw std::invalid_argument("no centroids");
        int64_t* labels = new int64_t[n > 0 ? n : 1];
        float* dist = new float[n > 0 ? n : 1];
        {
          nb::gil_scoped_release release;
          size_t nb_ = (k + nk::kFlatBlock - 1) / nk::kFlatBlock;
          std::vector<float> blocks(nb_ * nk::kFlatBlock * d, 0.f), out(nb_ * nk::kFlatBlock);
          for (size_t l = 0; l < k; ++l)
            for (size_t j = 0; j < d; ++j) blocks[(l / 16) * 16 * d + j * 16 + (l % 16)] = c.data()[l * d + j];
          const nk::BlockKernels& B = nk::block_kernels();
          for (size_t i = 0; i < n; ++i) {
            B.l2sq(x.data() + i * d, blocks.data(), nb_, d, out.data());
            // min first (branch-free, vectorisable), then the first index holding it
            float mn = out[0];
            {
              float acc[16];
              size_t l = 0;
              for (size_t t = 0; t < 16; ++t) acc[t] = out[0];
              for (; l + 16 <= k; l += 16)
                for (size_t t = 0; t < 16; ++t) acc[t] = out[l + t] < acc[t] ? out[l + t] : acc[t];
              for (size_t t = 0; t < 16; ++t) mn = acc[t] < mn ? acc[t] : mn;
              for (; l < k; ++l) mn = out[l] < mn ? out[l] : mn;
            }
            size_t best = 0;
            while (out[best] != mn) ++best;
            labels[i] = (int64_t)best;
            dist[i] = mn;
          }
        }
        nb::capsule o1(labels, [](void* p) noexcept { delete[] static_cast<int64_t*>(p); });
        nb::capsule o2(dist, [](void* p) noexcept { delete[] static_cast<float*>(p); });
        size_t shape[1] = {n};
        return std::make_pair(nb::ndarray<nb::numpy, int64_t>(labels, 1, shape, o1),
                              nb::ndarray<nb::numpy, float>(dist, 1, shape, o2));
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
        return owned(out, n, d);
      },
      nb::arg("x"), "Unit-normalised copy of the rows (zero rows stay zero).");

  m.def(
      "half_to_float",
      [](CArr<uint16_t, nb::ndim<1>> h) {
        size_t n = h.shape(0);
        float* out = new float[n > 0 ? n : 1];
        for (size_t i = 0; i < n; ++i) out[i] = nk::half_to_float(h.data()[i]);
        return owned(out, 1, n);
      },
      nb::arg("h"));
}
