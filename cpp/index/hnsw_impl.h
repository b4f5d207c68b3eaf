// What the files of class Hnsw share, and nothing else includes:
//   hnsw.cpp         storage, scratch and locks, insert and the walk, add, search
//   hnsw_codec.cpp   the per-vector SQ8 codes: centres, encoding, the guard,
//                    query preparation
//   hnsw_repair.cpp  remove(): unlinking dead nodes, repairing their neighbours
//   hnsw_io.cpp      export, attach (with the legacy layout), introspection
// The code distance (dist, code_error, exact_dist) is defined here, inline:
// the walk in hnsw.cpp calls it for every node it measures.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "index/hnsw.h"

namespace nk {
namespace hnsw_detail {

inline constexpr float kInf = std::numeric_limits<float>::infinity();

// Closest first; among equal distances the most recently inserted node (the
// highest slot) first, as hnswlib's heuristic orders them. Exact ties are
// common on sparse, binary or duplicated data, and taking the oldest nodes
// first sent every later node's links to the same few early nodes: their
// lists filled with copies of each other and were pruned to them, and the
// walk lost its way out (l2 on sparse vectors, 20k x 32: recall@1 0.925 with
// the oldest first, 0.97 with the newest; hnswlib 0.98-0.99).
inline void sort_closest_first(std::vector<std::pair<float, uint32_t>>& pool) {
  std::sort(pool.begin(), pool.end(), [](const auto& a, const auto& b) {
    return a.first < b.first || (a.first == b.first && a.second > b.second);
  });
}

inline size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

inline uint32_t load_relaxed(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline uint32_t load_acquire(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void store_relaxed(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
inline void store_release(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

inline uint64_t pack_top(uint32_t entry, int level) {
  return (uint64_t(uint32_t(level + 1)) << 32) | entry;
}
inline uint32_t top_entry(uint64_t t) { return uint32_t(t & 0xFFFFFFFFu); }
inline int top_level(uint64_t t) { return int(uint32_t(t >> 32)) - 1; }

}  // namespace hnsw_detail


using namespace hnsw_detail;

// ---------------------------------------------------------------- scratch

struct Hnsw::Query {
  std::vector<int16_t> qi;   // q (ip) or q - mu (l2) ~= qscale * qi, zero in the padding
  std::vector<float> xbuf;   // prepare_slot: the decoded vector
  mutable float cs[kMaxCentres];  // per centre: l2 |q - c_a|^2, ip 1 - q.c_a
  mutable uint32_t ready = 0;     // bit a: cs[a] computed (on first use)
  float qscale = 0.f, sum = 0.f;
  float err = 0.f;           // error scale of q's side (see code_error)
  const float* xf = nullptr;  // the float query (exact distances)
  bool exact = false, l2 = true;
  const CodeKernels* ck = nullptr;
  const Kernels* K = nullptr;
};

// Per-thread working memory, pooled so that searches allocate nothing.
struct Hnsw::Scratch {
  std::vector<uint64_t> visited;  // one bit per slot, cleared per layer search
  std::vector<std::pair<float, uint32_t>> cand, res;  // heaps
  std::vector<std::pair<float, uint32_t>> pool, pool2;
  std::vector<std::pair<float, uint32_t>> fresh;  // search_layer_sorted: one expansion's entrants
  std::vector<uint32_t> todo, sel, sel2, links;
  std::vector<std::vector<uint32_t>> per_level;  // insert: chosen neighbours per layer
  std::vector<float> qnorm, dbuf;
  Query q, qn;
  std::vector<Query> kept;  // select_neighbours: prepared form of each kept neighbour

  // A bitset (n/8 bytes) stays in cache far better than a byte or epoch per
  // slot; clearing it costs a memset of n/8 bytes per layer search.
  void begin(size_t n_slots) {
    size_t words = (n_slots + 63) / 64;
    if (visited.size() < words) visited.resize(words + words / 4);
    std::memset(visited.data(), 0, words * sizeof(uint64_t));
  }
  bool test_and_set(uint32_t s) {
    uint64_t& w = visited[s >> 6];
    uint64_t bit = uint64_t(1) << (s & 63);
    bool seen = (w & bit) != 0;
    w |= bit;
    return seen;
  }
};

// ---------------------------------------------------------------- code distance

inline uint32_t Hnsw::centre_of(size_t s) const {
  return load_relaxed(hdr(s)) >> kCentreShift;
}

inline float Hnsw::dist(const Query& q, size_t s) const {
  if (q.exact) return exact_dist(q.xf, s, *q.K);
  const CodeAux ax = code_aux(s);
  const float dot = q.qscale * float(q.ck->dot_i16(q.qi.data(), block(s), dpad_));
  const float r = ax.offset * q.sum + ax.step * dot;
  const uint32_t a = ax.centre;
  if (!(q.ready >> a & 1u)) {  // a query meets few centres: each is measured on first use
    q.cs[a] = q.l2 ? q.K->l2sq(q.xf, centre(a), dim_) : 1.f - q.K->dot(q.xf, centre(a), dim_);
    q.ready |= 1u << a;
  }
  const float c = q.cs[a];
  return q.l2 ? c - 2.f * r + ax.norm : c - r;
}

// Standard deviation of a code distance's error for stored slot s, modelling
// each dimension's rounding error as uniform within +-delta/2 and independent
// of the query: l2 |q - x|^2 moves by 2 (q - x).e, ip by q.e. Plus the float
// rounding of the sum of terms as large as |q - c_a|^2 (l2) or q.c_a (ip). The
// guard checks the model on the data (and falls back to floats when it fails);
// the bias |e|^2 <= dim * delta^2 / 4 is handled by the callers. Called after
// dist(q, s), which measured q against s's centre.
inline float Hnsw::code_error(const Query& q, size_t s, float d) const {
  const CodeAux ax = code_aux(s);
  const float delta = ax.step;
  const float c = q.cs[ax.centre];
  if (q.l2)
    return delta * (0.57735027f * std::sqrt(std::max(d, 0.f)) + q.err) +
           1e-6f * (std::fabs(c) + std::fabs(ax.norm));
  return delta * q.err + 1e-6f * (std::fabs(c) + std::fabs(c - d) + 1.f);
}

inline float Hnsw::exact_dist(const float* q, size_t s, const Kernels& K) const {
  return metric_ == Metric::L2 ? K.l2sq(q, vec(s), dim_) : 1.f - K.dot(q, vec(s), dim_);
}

}  // namespace nk
