// Bounded top-k selection: keeps the k smallest (distance, id) pairs seen.
//
// TopK is a max-heap: right for small k (graph and tree searches). Reservoir
// has the same interface but appends and cuts back with nth_element: right for
// large k (IVF re-ranking keeps k * k_factor candidates). Exact search keeps
// its own per-query heaps in index/flat.cpp: they order ties by id and sit in
// one array per query batch for its scan kernels.
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

}  // namespace nk
