// Search directly on the node array of an annoy 1.17.3 index file (for
// nearkit.compat.annoy): the file is memory-mapped by Python and searched in
// place, so loading costs O(1) in the file size, as in annoy itself.
//
// Node layouts (native little-endian, s bytes per node; K = ids a bucket holds):
//   angular    int32 n_desc | int32 children[2] or float norm | float v[f]      (v at 12)
//   euclidean/ int32 n_desc | float a | int32 children[2] | float v[f]          (v at 16)
//   manhattan
//   dot        int32 n_desc | int32 children[2] | float dot_factor | float v[f] (v at 16)
//   hamming    int32 n_desc | int32 children[2] | pad | uint64 v[words]       (v at 16)
// Items are nodes 0..n_items-1 (n_desc == 1); after the trees come copies of
// every root, which is how the roots are found (scan back from the end).
//
// The search reproduces annoy's best-first walk exactly (same priorities, same
// tie order: equal priorities pop the larger node number first), so results on
// annoy's files are annoy's results.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nk {
namespace annoy {

enum Metric : int { Angular = 0, Euclidean = 1, Manhattan = 2, Dot = 3, Hamming = 4 };

// annoy's distance between a query and a stored float row, before the final
// normalisation (angular: 2 - 2cos with qnorm = q.q; euclidean: squared L2;
// manhattan: L1; dot: minus the inner product). Not for hamming.
float row_distance(int metric, const float* q, float qnorm, const float* row, size_t f);
// What annoy reports for such a distance (sqrt, clamping, sign).
float reported_distance(int metric, float raw);

class Nodes {
 public:
  // data: the whole file (n_nodes * node_size bytes), kept alive by the caller.
  // Throws std::invalid_argument when the bytes are not a plausible forest.
  Nodes(const uint8_t* data, size_t bytes, int metric, size_t f);

  size_t n_items() const { return n_items_; }
  size_t n_nodes() const { return n_nodes_; }
  size_t node_size() const { return s_; }
  int metric() const { return metric_; }
  const std::vector<int32_t>& roots() const { return roots_; }
  bool is_item(size_t i) const { return i < n_items_ && n_desc(i) == 1; }

  // query: f floats (hamming: words uint64). n: results wanted. search_k: -1
  // means n * n_trees, other negatives unlimited, 0 nothing.
  void search(const void* query, uint64_t n, int64_t search_k, std::vector<int32_t>& ids,
              std::vector<float>& dist) const;
  // The stored vector of item i, as floats (hamming: 0/1 per bit).
  void item(size_t i, float* out) const;
  const void* vector_ptr(size_t i) const { return data_ + i * s_ + voff_; }
  // annoy's get_distance between items i and j (normalised as annoy reports it).
  float distance(size_t i, size_t j) const;

 private:
  int32_t n_desc(size_t i) const { return *reinterpret_cast<const int32_t*>(data_ + i * s_); }
  const int32_t* children(size_t i) const {
    return reinterpret_cast<const int32_t*>(data_ + i * s_ + coff_);
  }
  float raw_distance(const void* q, float qnorm, size_t item) const;
  float report(float raw) const;
  template <class T>
  void walk(const void* q, int64_t search_k, std::vector<int32_t>& nns) const;

  const uint8_t* data_;
  size_t n_nodes_, s_, f_, words_;
  int metric_;
  size_t coff_, voff_, K_;
  size_t n_items_ = 0;
  std::vector<int32_t> roots_;
};

}  // namespace annoy
}  // namespace nk
