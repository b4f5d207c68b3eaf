#include "index/ivf.h"

#include "common/thread_pool.h"

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/distance.h"
#include "kernels/ivfscan.h"
#include "kernels/pq4.h"
#include "common/topk.h"

namespace nk {

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x7fffffu;
  int32_t exp = int32_t((x >> 23) & 0xff) - 127 + 15;
  if (((x >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00u);  // overflow -> inf
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    mant |= 0x800000u;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | (uint32_t(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into exponent: fine
  return uint16_t(half);
}

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { mant <<= 1; ++e; } while (!(mant & 0x400u));
      x = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

namespace {

const float* half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = half_to_float(uint16_t(i));
    return t;
  }();
  return table.data();
}

// Scratch space reused across the queries one thread handles.
struct Workspace {
  std::vector<float> coarse;
  std::vector<std::pair<float, int64_t>> probe;
  std::vector<float> buf;
  std::vector<float> lut;
  std::vector<float> qtmp;
  std::vector<uint8_t> qlut;
  std::vector<uint16_t> acc;
  std::vector<int64_t> cand_pos;
  std::vector<float> cand_dist;
  void neg_inplace(size_t n) {
    for (size_t i = 0; i < n; ++i) buf[i] = -buf[i];
  }
};

// Score: smaller is closer. L2: squared distance. IP: -dot.
inline void push_if(Reservoir& heap, float s, int64_t pos, const uint8_t* mask, const int64_t* ids) {
  if (ids[pos] < 0) return;
  if (mask && !mask[pos]) return;
  heap.push(s, pos);
}

void compute_pq_lut(const IvfView& v, const float* q, float* lut, const Kernels& K) {
  // lut[m * ksub + c] = L2: |q_m - C_mc|^2, IP: -q_m . C_mc
  const size_t ds = v.pq_dsub, ks = v.pq_ksub;
  for (size_t m = 0; m < v.pq_m; ++m) {
    const float* qm = q + m * ds;
    const float* cb = v.pq_codebooks + m * ks * ds;
    float* L = lut + m * ks;
    if (ds <= 4) {
      // Tiny sub-vectors (e.g. 2 dimensions for PQ25 on 50-d): a plain loop
      // beats a SIMD kernel call per centroid.
      for (size_t c = 0; c < ks; ++c) {
        const float* x = cb + c * ds;
        float s = 0.f;
        if (v.metric == Metric::L2) {
          for (size_t j = 0; j < ds; ++j) {
            float t = qm[j] - x[j];
            s += t * t;
          }
        } else {
          for (size_t j = 0; j < ds; ++j) s -= qm[j] * x[j];
        }
        L[c] = s;
      }
    } else if (v.metric == Metric::L2) {
      K.l2sq_many(qm, cb, ks, ds, L);
    } else {
      K.dot_many(qm, cb, ks, ds, L);
      for (size_t c = 0; c < ks; ++c) L[c] = -L[c];
    }
  }
}

// noinline: inlined into the thread_local caller, every workspace access went
// through __tls_get_addr inside the hot loops.
__attribute__((noinline)) void search_one(const IvfView& v, const float* q, const float* q_orig, size_t k, size_t nprobe,
                size_t k_factor, const uint8_t* mask, int64_t* out_ids, float* out_dist,
                Workspace& ws, const Kernels& K, const Pq4Kernels& P, const BlockKernels& B) {
  const size_t d = v.dim;
  const bool ip = v.metric != Metric::L2;
  // 1. coarse: the nprobe lists of smallest score
  const size_t ncb = (v.nlist + kFlatBlock - 1) / kFlatBlock;
  ws.coarse.resize(ncb * kFlatBlock);
  if (ip) {
    B.dot(q, v.centroid_blocks, ncb, d, ws.coarse.data());
    for (size_t l = 0; l < v.nlist; ++l) ws.coarse[l] = -ws.coarse[l];
  } else {
    B.l2sq(q, v.centroid_blocks, ncb, d, ws.coarse.data());
  }
  nprobe = std::min(nprobe, v.nlist);
  // Keep the nprobe smallest scores with a bounded max-heap (cheaper than
  // sorting or nth_element over all nlist scores when nprobe is small).
  ws.probe.clear();
  {
    auto& h = ws.probe;
    const float* coarse = ws.coarse.data();
    for (size_t l = 0; l < v.nlist; ++l) {
      float s = coarse[l];
      if (h.size() < nprobe) {
        h.emplace_back(s, (int64_t)l);
        std::push_heap(h.begin(), h.end());
      } else if (s < h.front().first) {
        std::pop_heap(h.begin(), h.end());
        h.back() = {s, (int64_t)l};
        std::push_heap(h.begin(), h.end());
      }
    }
  }
  const bool refine = v.refine != nullptr;
  // Candidates kept for the re-rank: k * k_factor, but never more than there
  // are slots (and never a product that wraps around).
  size_t kc = k;
  if (refine && (__builtin_mul_overflow(k, std::max<size_t>(k_factor, 1), &kc) || kc > v.nslots))
    kc = std::max(k, v.nslots);
  Reservoir heap(kc);

  // Per-query tables that do not depend on the list.
  float qscale = 1.f, qbias = 0.f;
  if (v.codec == Codec::PQ4FS) {
    ws.lut.resize(v.pq_m * 16);
    compute_pq_lut(v, q, ws.lut.data(), K);
    // Quantise: per sub-quantiser offset, one global scale keeping sums in uint16.
    float span = 0.f;
    qbias = 0.f;
    for (size_t m = 0; m < v.pq_m; ++m) {
      float* L = ws.lut.data() + m * 16;
      float mn = *std::min_element(L, L + 16), mx = *std::max_element(L, L + 16);
      qbias += mn;
      span = std::max(span, mx - mn);
      for (size_t c = 0; c < 16; ++c) L[c] -= mn;
    }
    // Keep every sum below 32767 so the scan can filter with signed 16-bit compares.
    float top = std::min(255.f, std::floor(32766.f / float(std::max<size_t>(v.pq_mpad, 1))));
    qscale = span > 0 ? top / span : 1.f;
    ws.qlut.assign(v.pq_mpad * 16, 0);
    // Local pointers: uint8_t stores may alias anything, so going through the
    // vectors would reload them on every element.
    uint8_t* ql = ws.qlut.data();
    const float* lf = ws.lut.data();
    const size_t nl = v.pq_m * 16;
    for (size_t i = 0; i < nl; ++i) {
      float r = lf[i] * qscale + 0.5f;  // entries are >= 0: round half up
      ql[i] = uint8_t(r < top ? r : top);
    }
  } else if (v.codec == Codec::PQ8 && (ip || !v.by_residual)) {
    ws.lut.resize(v.pq_m * v.pq_ksub);
    compute_pq_lut(v, q, ws.lut.data(), K);
  } else if (v.codec == Codec::SQ8) {
    ws.qtmp.resize(d);
    // L2: q - vmin (then subtract step * code); IP: q * step (plus q . vmin).
    for (size_t j = 0; j < d; ++j) ws.qtmp[j] = ip ? q[j] * v.sq_step[j] : q[j] - v.sq_vmin[j];
  }
  float sq_ip_const = 0.f;
  if (v.codec == Codec::SQ8 && ip)
    for (size_t j = 0; j < d; ++j) sq_ip_const += q[j] * v.sq_vmin[j];

  // 2. scan the probed lists
  for (size_t p = 0; p < nprobe; ++p) {
    const int64_t l = ws.probe[p].second;
    const int64_t start = v.offsets[l], end = v.offsets[l + 1];
    const size_t n = size_t(end - start);
    if (n == 0) continue;
    switch (v.codec) {
      case Codec::Flat: {
        // Blocked layout: list starts and lengths are multiples of 16.
        ws.buf.resize(n);
        const float* base = reinterpret_cast<const float*>(v.codes) + size_t(start) * d;
        const float* buf = ws.buf.data();
        if (ip) {
          B.dot(q, base, n / kFlatBlock, d, ws.buf.data());
          ws.neg_inplace(n);
        } else {
          B.l2sq(q, base, n / kFlatBlock, d, ws.buf.data());
        }
        if (v.list_valid) {  // live slots are a prefix of the list: no id checks
          const size_t nv = v.list_valid[l];
          for (size_t i = 0; i < nv; ++i)
            if (buf[i] < heap.threshold() && (!mask || mask[start + i])) heap.push(buf[i], start + i);
        } else {
          for (size_t i = 0; i < n; ++i) push_if(heap, buf[i], start + i, mask, v.ids);
        }
        break;
      }
      case Codec::SQ8: {
        const float* qt = ws.qtmp.data();
        const float* step = v.sq_step;
        for (size_t i = 0; i < n; ++i) {
          const uint8_t* c = v.codes + (size_t(start) + i) * d;
          float s = 0.f;
          if (ip) {
            for (size_t j = 0; j < d; ++j) s += qt[j] * float(c[j]);
            s = -(s + sq_ip_const);
          } else {
            for (size_t j = 0; j < d; ++j) {
              float t = qt[j] - step[j] * float(c[j]);
              s += t * t;
            }
          }
          push_if(heap, s, start + i, mask, v.ids);
        }
        break;
      }
      case Codec::FP16: {
        const float* tab = half_table();
        ws.buf.resize(d);
        for (size_t i = 0; i < n; ++i) {
          const uint16_t* c = reinterpret_cast<const uint16_t*>(v.codes) + (size_t(start) + i) * d;
          for (size_t j = 0; j < d; ++j) ws.buf[j] = tab[c[j]];
          float s = ip ? -K.dot(q, ws.buf.data(), d) : K.l2sq(q, ws.buf.data(), d);
          push_if(heap, s, start + i, mask, v.ids);
        }
        break;
      }
      case Codec::PQ8: {
        float cst = 0.f;
        if (v.by_residual) {
          if (ip) {
            cst = ws.coarse[l];  // -q . c_l
          } else {
            ws.qtmp.resize(d);
            const float* c = v.centroids + size_t(l) * d;
            for (size_t j = 0; j < d; ++j) ws.qtmp[j] = q[j] - c[j];
            ws.lut.resize(v.pq_m * v.pq_ksub);
            compute_pq_lut(v, ws.qtmp.data(), ws.lut.data(), K);
          }
        }
        const float* lut = ws.lut.data();
        const size_t M = v.pq_m, ks = v.pq_ksub;
        for (size_t i = 0; i < n; ++i) {
          const uint8_t* c = v.codes + (size_t(start) + i) * M;
          float s = cst;
          for (size_t m = 0; m < M; ++m) s += lut[m * ks + c[m]];
          push_if(heap, s, start + i, mask, v.ids);
        }
        break;
      }
      case Codec::PQ4FS: {
        const size_t nblocks = n / kPq4Block;
        ws.acc.resize(n);
        P.scan(v.codes + size_t(start) / kPq4Block * v.code_size, nblocks, v.pq_mpad,
               ws.qlut.data(), ws.acc.data());
        const uint16_t* acc = ws.acc.data();
        for (size_t b = 0; b < nblocks; ++b) {
          const uint16_t* a = acc + b * kPq4Block;
          const int64_t pos0 = start + int64_t(b * kPq4Block);
          // Candidates of this block below the current threshold, as a bit mask
          // (sums stay below 32767, so a signed 16-bit compare is exact).
          float thr = heap.threshold();
          int thr16 = thr >= 32767.f ? 32767 : int(std::ceil(thr));
          uint32_t bits = 0;
#if defined(__SSE2__)
          const __m128i t = _mm_set1_epi16(int16_t(thr16));
          const __m128i* av = reinterpret_cast<const __m128i*>(a);
          __m128i c0 = _mm_cmplt_epi16(_mm_loadu_si128(av), t);
          __m128i c1 = _mm_cmplt_epi16(_mm_loadu_si128(av + 1), t);
          __m128i c2 = _mm_cmplt_epi16(_mm_loadu_si128(av + 2), t);
          __m128i c3 = _mm_cmplt_epi16(_mm_loadu_si128(av + 3), t);
          bits = uint32_t(_mm_movemask_epi8(_mm_packs_epi16(c0, c1))) |
                 (uint32_t(_mm_movemask_epi8(_mm_packs_epi16(c2, c3))) << 16);
#else
          for (size_t i = 0; i < kPq4Block; ++i)
            if (int(a[i]) < thr16) bits |= 1u << i;
#endif
          if (v.list_valid) {  // live slots are a prefix: drop the padding by mask
            const size_t nv = v.list_valid[l], first = b * kPq4Block;
            if (first + kPq4Block > nv) bits &= nv > first ? (uint32_t(1) << (nv - first)) - 1 : 0u;
            while (bits) {
              size_t i = size_t(__builtin_ctz(bits));
              bits &= bits - 1;
              const int64_t pos = pos0 + int64_t(i);
              if (float(a[i]) < heap.threshold() && (!mask || mask[pos])) heap.push(float(a[i]), pos);
            }
          } else {
            while (bits) {
              size_t i = size_t(__builtin_ctz(bits));
              bits &= bits - 1;
              if (float(a[i]) < heap.threshold()) push_if(heap, float(a[i]), pos0 + int64_t(i), mask, v.ids);
            }
          }
        }
        break;
      }
    }
  }

  // 3. results (with optional exact re-ranking)
  ws.cand_pos.resize(kc);
  ws.cand_dist.resize(kc);
  heap.write_sorted(ws.cand_pos.data(), ws.cand_dist.data(), !refine);
  if (v.codec == Codec::PQ4FS)
    for (size_t i = 0; i < kc; ++i)
      if (ws.cand_pos[i] >= 0) ws.cand_dist[i] = ws.cand_dist[i] / qscale + qbias;
  if (refine) {
    Reservoir exact(k);
    const size_t rd = v.refine_dim;
    // Candidates are scattered over the vector array: prefetch a few ahead.
    constexpr size_t kAhead = 10;
    for (size_t i = 0; i < std::min(kc, kAhead); ++i)
      if (ws.cand_pos[i] >= 0)
        for (size_t b = 0; b < rd * 4; b += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(v.refine + size_t(ws.cand_pos[i]) * rd) + b);
    for (size_t i = 0; i < kc; ++i) {
      int64_t pos = ws.cand_pos[i];
      if (pos < 0) continue;
      if (i + kAhead < kc && ws.cand_pos[i + kAhead] >= 0)
        for (size_t b = 0; b < rd * 4; b += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(v.refine + size_t(ws.cand_pos[i + kAhead]) * rd) + b);
      const float* x = v.refine + size_t(pos) * rd;
      float s = ip ? -K.dot(q_orig, x, rd) : K.l2sq(q_orig, x, rd);
      exact.push(s, pos);
    }
    exact.write_sorted(ws.cand_pos.data(), ws.cand_dist.data());
  }
  for (size_t i = 0; i < k; ++i) {
    int64_t pos = ws.cand_pos[i];
    if (pos < 0) {
      out_ids[i] = -1;
      out_dist[i] = std::numeric_limits<float>::infinity();
    } else {
      out_ids[i] = v.ids[pos];
      out_dist[i] = ip ? 1.f + ws.cand_dist[i] : std::max(ws.cand_dist[i], 0.f);
    }
  }
}

}  // namespace

void ivf_search(const IvfView& v, const float* q, const float* q_orig, size_t nq, size_t k,
                size_t nprobe, size_t k_factor, const uint8_t* mask, size_t threads,
                int64_t* out_ids, float* out_dist) {
  const Kernels& K = kernels();
  const Pq4Kernels& P = pq4_kernels();
  const BlockKernels& B = block_kernels();
  auto run = [&](size_t q0, size_t q1) {
    thread_local Workspace ws;  // reused across calls: no per-query allocations
    for (size_t i = q0; i < q1; ++i)
      search_one(v, q + i * v.dim, q_orig ? q_orig + i * v.refine_dim : nullptr, k, nprobe,
                 k_factor, mask, out_ids + i * k, out_dist + i * k, ws, K, P, B);
  };
  threads = std::max<size_t>(1, std::min(threads, nq));
  StopToken stop;
  parallel_ranges(nq, int(threads), 1, [&](size_t a, size_t b) {
    for (size_t i = a; i < b; i += 64) {
      if (stop.stop_requested()) return;
      run(i, std::min(b, i + 64));
    }
  }, &stop);
}

Codec codec_from_name(const std::string& name) {
  if (name == "flat") return Codec::Flat;
  if (name == "sq8") return Codec::SQ8;
  if (name == "fp16") return Codec::FP16;
  if (name == "pq8") return Codec::PQ8;
  if (name == "pq4fs") return Codec::PQ4FS;
  throw std::invalid_argument("unknown codec " + name);
}

IvfLists::IvfLists(const IvfArrays& a) {
  IvfView& v = view_;
  v.dim = a.dim;
  v.nlist = a.nlist;
  v.metric = a.metric == 0 ? Metric::L2 : Metric::IP;
  v.codec = a.codec;
  if (a.n_offsets != v.nlist + 1) throw std::invalid_argument("offsets must have nlist + 1 entries");
  v.centroids = a.centroids;
  centroid_blocks_.assign((v.nlist + kFlatBlock - 1) / kFlatBlock * kFlatBlock * v.dim, 0.f);
  to_blocks(a.centroids, v.nlist, v.dim, centroid_blocks_.data());
  v.centroid_blocks = centroid_blocks_.data();
  const int64_t* off = a.offsets;
  v.offsets = off;
  v.ids = a.ids;
  v.nslots = a.nslots;
  if ((size_t)off[v.nlist] != v.nslots || off[0] != 0)
    throw std::invalid_argument("offsets do not span the id array");
  for (size_t l = 0; l < v.nlist; ++l)
    if (off[l + 1] < off[l]) throw std::invalid_argument("offsets must not decrease");
  {
    bool dense = true;
    list_valid_.assign(v.nlist, 0);
    for (size_t l = 0; l < v.nlist && dense; ++l) {
      int64_t i = off[l];
      while (i < off[l + 1] && v.ids[i] >= 0) ++i;
      list_valid_[l] = uint32_t(i - off[l]);
      for (int64_t j = i; j < off[l + 1]; ++j)
        if (v.ids[j] >= 0) { dense = false; break; }
    }
    v.list_valid = dense ? list_valid_.data() : nullptr;
  }
  v.codes = a.codes;
  v.code_size = a.code_size;
  size_t need = v.codec == Codec::PQ4FS ? v.nslots / kPq4Block * a.code_size : v.nslots * a.code_size;
  if (a.codes_bytes < need) throw std::invalid_argument("codes array is too small for the slots");
  if (v.codec == Codec::Flat) {
    if (a.code_size != 4 * v.dim) throw std::invalid_argument("flat code size");
    for (size_t l = 0; l <= v.nlist; ++l)
      if (off[l] % (int64_t)kFlatBlock) throw std::invalid_argument("flat lists must be padded to 16");
  }
  if (v.codec == Codec::SQ8) {
    if (!a.has_sq || a.sq_vmin_len != v.dim || a.sq_step_len != v.dim ||
        a.code_size != v.dim)
      throw std::invalid_argument("sq8 needs vmin and step of length dim");
    v.sq_vmin = a.sq_vmin;
    v.sq_step = a.sq_step;
  }
  if (v.codec == Codec::FP16 && a.code_size != 2 * v.dim) throw std::invalid_argument("fp16 code size");
  if (v.codec == Codec::PQ8 || v.codec == Codec::PQ4FS) {
    if (!a.has_codebooks) throw std::invalid_argument("pq needs codebooks");
    v.pq_codebooks = a.codebooks;
    v.pq_m = a.pq_m;
    v.pq_ksub = a.pq_ksub;
    v.pq_dsub = a.pq_dsub;
    if (v.pq_m * v.pq_dsub != v.dim) throw std::invalid_argument("codebooks do not cover dim");
    if (v.codec == Codec::PQ8 && (v.pq_ksub > 256 || a.code_size != v.pq_m))
      throw std::invalid_argument("pq8 needs <= 256 centroids and M-byte codes");
    if (v.codec == Codec::PQ4FS) {
      if (v.pq_ksub != 16 || a.mpad < v.pq_m || a.mpad % 2 || a.code_size != a.mpad * 16 ||
          v.nslots % kPq4Block)
        throw std::invalid_argument("pq4fs layout mismatch");
      for (size_t l = 0; l <= v.nlist; ++l)
        if (off[l] % (int64_t)kPq4Block) throw std::invalid_argument("pq4fs lists must be padded to 32");
    }
    v.pq_mpad = a.mpad;
  }
  v.by_residual = a.by_residual;
  if (a.has_refine) {
    if (a.refine_rows != v.nslots) throw std::invalid_argument("refine vectors must cover every slot");
    v.refine = a.refine;
    v.refine_dim = a.refine_dim;
  }
}

}  // namespace nk
