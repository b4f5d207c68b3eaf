// annoy 1.17.3's search on its own node array; see annoy_nodes.h.
#include "index/annoy_nodes.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <queue>
#include <stdexcept>

#include "kernels/distance.h"
#include "kernels/tree_kernels.h"

namespace nk {
namespace annoy {

namespace {
[[noreturn]] void corrupt(const std::string& what) {
  throw std::invalid_argument("not an annoy index for this f and metric: " + what);
}
}  // namespace

Nodes::Nodes(const uint8_t* data, size_t bytes, int metric, size_t f)
    : data_(data), f_(f), words_((f + 63) / 64), metric_(metric) {
  switch (metric) {
    case Angular: s_ = 12 + 4 * f, coff_ = 4, voff_ = 12; break;
    case Euclidean:
    case Manhattan: s_ = 16 + 4 * f, coff_ = 8, voff_ = 16; break;
    case Dot: s_ = 16 + 4 * f, coff_ = 4, voff_ = 16; break;
    case Hamming: s_ = 16 + 8 * words_, coff_ = 4, voff_ = 16; break;
    default: throw std::invalid_argument("unknown annoy metric code");
  }
  K_ = (s_ - coff_) / 4;
  if (bytes == 0 || bytes % s_) corrupt("the size is not a multiple of the node size");
  n_nodes_ = bytes / s_;
  if (n_nodes_ > size_t(std::numeric_limits<int32_t>::max())) corrupt("more nodes than annoy can number");
  // annoy's rule: the trailing run of nodes with equal descendant counts are the
  // roots; the first of them is dropped when it is the original last root
  // right before its own copy.
  int32_t m = -1;
  for (size_t i = n_nodes_; i-- > 0;) {
    int32_t k = n_desc(i);
    if (m == -1 || k == m) {
      roots_.push_back(int32_t(i));
      m = k;
    } else {
      break;
    }
  }
  if (roots_.size() > 1 && children(roots_.front())[0] == children(roots_.back())[0]) roots_.pop_back();
  if (m < 0 || size_t(m) > n_nodes_) corrupt("the roots claim " + std::to_string(m) + " items");
  n_items_ = size_t(m);
  for (int32_t r : roots_) {
    int32_t k = n_desc(r);
    if (size_t(r) < n_items_ && k == 1) continue;  // a single-item forest
    if (size_t(k) <= K_) continue;                 // a root that is one bucket
    const int32_t* c = children(r);
    if (c[0] < 0 || size_t(c[0]) >= n_nodes_ || c[1] < 0 || size_t(c[1]) >= n_nodes_)
      corrupt("a root's children point outside the file");
  }
}

float row_distance(int metric, const float* q, float qnorm, const float* x, size_t f) {
  switch (metric) {
    case Angular: {
      float qq = kernels().dot(x, x, f);
      float ppqq = qnorm * qq;
      return ppqq > 0 ? 2.f - 2.f * kernels().dot(q, x, f) / std::sqrt(ppqq) : 2.f;
    }
    case Euclidean: return kernels().l2sq(q, x, f);
    case Manhattan: return trees::tree_kernels().l1(q, x, f);
    default: return -kernels().dot(q, x, f);
  }
}

float reported_distance(int metric, float d) {
  switch (metric) {
    case Angular:
    case Euclidean: return std::sqrt(std::max(d, 0.f));
    case Manhattan: return std::max(d, 0.f);
    case Dot: return -d;
    default: return d;
  }
}

float Nodes::raw_distance(const void* q, float qnorm, size_t j) const {
  const uint8_t* node = data_ + j * s_;
  switch (metric_) {
    case Angular: {
      const float* x = reinterpret_cast<const float*>(node + voff_);
      float pp = qnorm;
      float qq = *reinterpret_cast<const float*>(node + 4);
      if (qq == 0.f) qq = kernels().dot(x, x, f_);  // files of older annoy versions leave it 0
      float pq = kernels().dot(static_cast<const float*>(q), x, f_);
      float ppqq = pp * qq;
      return ppqq > 0 ? 2.f - 2.f * pq / std::sqrt(ppqq) : 2.f;
    }
    case Euclidean:
      return kernels().l2sq(static_cast<const float*>(q), reinterpret_cast<const float*>(node + voff_), f_);
    case Manhattan:
      return trees::tree_kernels().l1(static_cast<const float*>(q), reinterpret_cast<const float*>(node + voff_), f_);
    case Dot:
      return -kernels().dot(static_cast<const float*>(q), reinterpret_cast<const float*>(node + voff_), f_);
    default:
      return trees::tree_kernels().hamming(static_cast<const uint64_t*>(q),
                                           reinterpret_cast<const uint64_t*>(node + voff_), words_);
  }
}

float Nodes::report(float d) const { return reported_distance(metric_, d); }

template <class T>
void Nodes::walk(const void* q, int64_t search_k, std::vector<int32_t>& nns) const {
  std::priority_queue<std::pair<T, int32_t>> pq;
  const T start = metric_ == Hamming ? std::numeric_limits<T>::max() : std::numeric_limits<T>::infinity();
  for (int32_t r : roots_) pq.push({start, r});
  const size_t limit = search_k < 0 ? std::numeric_limits<size_t>::max() : size_t(search_k);
  size_t pops = 0;
  while (nns.size() < limit && !pq.empty()) {
    auto [d, i] = pq.top();
    pq.pop();
    if (++pops > n_nodes_ + roots_.size()) corrupt("the trees contain a cycle");
    int32_t k = n_desc(i);
    if (k == 1 && size_t(i) < n_items_) {
      nns.push_back(i);
    } else if (k < 0) {
      corrupt("negative descendant count at node " + std::to_string(i));
    } else if (size_t(k) <= K_) {
      const int32_t* dst = children(i);
      nns.insert(nns.end(), dst, dst + k);
    } else {
      const int32_t* c = children(i);
      if (c[0] < 0 || size_t(c[0]) >= n_nodes_ || c[1] < 0 || size_t(c[1]) >= n_nodes_)
        corrupt("a child points outside the file at node " + std::to_string(i));
      const uint8_t* node = data_ + size_t(i) * s_;
      if constexpr (std::is_same_v<T, uint64_t>) {
        uint64_t bit = *reinterpret_cast<const uint64_t*>(node + voff_);
        const uint64_t* y = static_cast<const uint64_t*>(q);
        uint64_t chunk = bit / 64;
        bool margin = chunk < words_ && (y[chunk] & (uint64_t(1) << (63 - bit % 64))) != 0;
        pq.push({d - (margin != true), c[1]});
        pq.push({d - (margin != false), c[0]});
      } else {
        const float* v = reinterpret_cast<const float*>(node + voff_);
        float margin = kernels().dot(v, static_cast<const float*>(q), f_);
        if (metric_ == Euclidean || metric_ == Manhattan) {
          margin += *reinterpret_cast<const float*>(node + 4);
        } else if (metric_ == Dot) {
          float df = *reinterpret_cast<const float*>(node + 12);
          margin += df * df;
        }
        pq.push({std::min(d, margin), c[1]});
        pq.push({std::min(d, -margin), c[0]});
      }
    }
  }
}

void Nodes::search(const void* q, uint64_t n, int64_t search_k, std::vector<int32_t>& ids,
                   std::vector<float>& dist) const {
  ids.clear();
  dist.clear();
  if (search_k == -1) {
    unsigned __int128 sk = (unsigned __int128)n * roots_.size();
    search_k = sk > (unsigned __int128)std::numeric_limits<int64_t>::max() ? -2 : int64_t(sk);
  }
  if (search_k == 0 || n == 0) return;
  std::vector<int32_t> nns;
  if (metric_ == Hamming)
    walk<uint64_t>(q, search_k, nns);
  else
    walk<float>(q, search_k, nns);
  std::sort(nns.begin(), nns.end());
  nns.erase(std::unique(nns.begin(), nns.end()), nns.end());
  float qnorm = metric_ == Angular ? kernels().dot(static_cast<const float*>(q), static_cast<const float*>(q), f_) : 0.f;
  std::vector<std::pair<float, int32_t>> scored;
  scored.reserve(nns.size());
  for (int32_t j : nns) {
    if (j < 0 || size_t(j) >= n_nodes_) corrupt("a bucket lists an item outside the file");
    if (size_t(j) < n_items_ && n_desc(j) == 1) scored.push_back({raw_distance(q, qnorm, j), j});
  }
  size_t p = size_t(std::min<uint64_t>(n, scored.size()));
  std::partial_sort(scored.begin(), scored.begin() + p, scored.end());
  ids.resize(p);
  dist.resize(p);
  for (size_t i = 0; i < p; ++i) {
    ids[i] = scored[i].second;
    dist[i] = report(scored[i].first);
  }
}

void Nodes::item(size_t i, float* out) const {
  const uint8_t* node = data_ + i * s_ + voff_;
  if (metric_ == Hamming) {
    const uint64_t* w = reinterpret_cast<const uint64_t*>(node);
    for (size_t z = 0; z < f_; ++z) out[z] = float((w[z / 64] >> (z % 64)) & 1);
  } else {
    std::memcpy(out, node, f_ * sizeof(float));
  }
}

float Nodes::distance(size_t i, size_t j) const {
  const void* q = vector_ptr(i);
  float qnorm = 0.f;
  if (metric_ == Angular) {
    qnorm = *reinterpret_cast<const float*>(data_ + i * s_ + 4);
    if (qnorm == 0.f) qnorm = kernels().dot(static_cast<const float*>(q), static_cast<const float*>(q), f_);
  }
  return report(raw_distance(q, qnorm, j));
}

}  // namespace annoy
}  // namespace nk
