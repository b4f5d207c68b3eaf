// Bounded top-k selection: keeps the k smallest (distance, id) pairs seen.
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

}  // namespace nk
