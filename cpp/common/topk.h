// Bounded top-k selection: keeps the k smallest (distance, id) pairs seen.
//
// TopK is a max-heap: right for small k (graph and tree searches). Reservoir
// has the same interface but appends and cuts back with nth_element: right for
// large k (IVF re-ranking keeps k * k_factor candidates). heap_push_by_id is
// the bounded heap of exact search (index/flat.cpp), see there.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace nk {

class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k); }

  // Distance a candidate must beat to enter; +inf until k items are held.
  float threshold() const {
    return heap_.size() < k_ ? std::numeric_limits<float>::infinity() : heap_.front().first;
  }

  void push(float dist, int64_t id) {
    if (heap_.size() < k_) {
      heap_.emplace_back(dist, id);
      std::push_heap(heap_.begin(), heap_.end());
    } else if (dist < heap_.front().first) {
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.back() = {dist, id};
      std::push_heap(heap_.begin(), heap_.end());
    }
  }

  size_t size() const { return heap_.size(); }
  void clear() { heap_.clear(); }

  // Writes k results in ascending distance; missing slots get id -1, +inf.
  void write_sorted(int64_t* ids, float* dists) {
    std::sort_heap(heap_.begin(), heap_.end());
    size_t i = 0;
    for (; i < heap_.size(); ++i) {
      dists[i] = heap_[i].first;
      ids[i] = heap_[i].second;
    }
    for (; i < k_; ++i) {
      dists[i] = std::numeric_limits<float>::infinity();
      ids[i] = -1;
    }
    heap_.clear();
  }

 private:
  size_t k_;
  std::vector<std::pair<float, int64_t>> heap_;  // max-heap on distance
};

// Keeps the k smallest (score, slot) pairs, as TopK does, but amortised: new
// candidates are appended while below the threshold and the buffer is cut back
// to k with nth_element when full. With refine, k * k_factor can be hundreds,
// where heap updates on every accepted candidate dominated the scan.
class Reservoir {
 public:
  explicit Reservoir(size_t k) : k_(k), cap_(2 * k + 32) { buf_.reserve(cap_); }
  float threshold() const { return thr_; }
  void push(float d, int64_t id) {
    if (!(d < thr_)) return;
    buf_.emplace_back(d, id);
    if (buf_.size() >= cap_) shrink();
  }
  // Writes k results in ascending score (in no particular order when !sorted,
  // which is all re-ranking needs); missing slots get id -1, +inf.
  void write_sorted(int64_t* ids, float* dists, bool sorted = true) {
    if (buf_.size() > k_) shrink();
    if (sorted) std::sort(buf_.begin(), buf_.end(), less);
    size_t i = 0;
    for (; i < buf_.size(); ++i) {
      dists[i] = buf_[i].first;
      ids[i] = buf_[i].second;
    }
    for (; i < k_; ++i) {
      dists[i] = std::numeric_limits<float>::infinity();
      ids[i] = -1;
    }
    buf_.clear();
    thr_ = std::numeric_limits<float>::infinity();
  }

 private:
  static bool less(const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
    return a.first < b.first || (a.first == b.first && a.second < b.second);
  }
  void shrink() {
    // Scores only: quantised scores tie often and the id tie-break cost more
    // than it bought (the input order, hence the result, is still deterministic).
    std::nth_element(buf_.begin(), buf_.begin() + (k_ - 1), buf_.end(),
                     [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
                       return a.first < b.first;
                     });
    buf_.resize(k_);
    thr_ = buf_[k_ - 1].first;  // nth_element: everything before it is <= it
  }
  size_t k_, cap_;
  std::vector<std::pair<float, int64_t>> buf_;
  float thr_ = std::numeric_limits<float>::infinity();
};

// A bounded max-heap of the k smallest (dist, id) pairs that lives in the
// caller's arrays (dist[0..k), ids[0..k), n = entries held), ordered by
// distance and equal distances by id. Exact search keeps one per query in a
// single array per query batch (thousands of queries per batch: no vector per
// query) with double distances, and needs the id order so equal distances give
// the same result for any thread count or kernel. TopK cannot serve there: it
// holds float pairs in its own vector and keeps the first of equal distances
// (changing that would change HNSW's results on ties).
// Returns false when (d, id) does not enter; dist[0] is then, and after any
// insertion, the largest held.
template <class D>
inline bool heap_push_by_id(D* dist, int64_t* ids, uint32_t& n, size_t k, D d, int64_t id) {
  auto above = [&](size_t i) { return dist[i] > d || (dist[i] == d && ids[i] > id); };
  size_t i;
  if (n < k) {  // sift up
    i = n++;
    while (i > 0) {
      size_t parent = (i - 1) / 2;
      if (above(parent)) break;
      dist[i] = dist[parent];
      ids[i] = ids[parent];
      i = parent;
    }
  } else {  // replace the largest, sift down
    if (!above(0)) return false;
    i = 0;
    for (;;) {
      size_t child = 2 * i + 1;
      if (child >= k) break;
      if (child + 1 < k &&
          (dist[child + 1] > dist[child] || (dist[child + 1] == dist[child] && ids[child + 1] > ids[child])))
        ++child;
      if (!above(child)) break;
      dist[i] = dist[child];
      ids[i] = ids[child];
      i = child;
    }
  }
  dist[i] = d;
  ids[i] = id;
  return true;
}

}  // namespace nk
