// A forest of random-projection trees (the Annoy idea), searched best-first.
//
// Layout (flat arrays, so a saved forest can be memory-mapped and searched
// without copying):
//   split s:  planes[s * pdim ...] (unit normal), offsets[s], children[2s], children[2s+1]
//             (hamming: offsets[s] holds the bit index, -1 for a random split)
//   leaf l:   leaf_items[leaf_off[l] .. + leaf_cnt[l]]   (slot numbers)
//   a node reference r >= 0 is split r; r < 0 is leaf (-r - 1); roots[t] is tree t.
// The vectors themselves are not part of the forest: every call receives them
// (float32 rows, or uint64 words for hamming), so Python owns them and they
// can be an ordinary array, a file mapping or a growing on-disk array.
//
// Determinism: tree t draws from its own generator seeded with (seed, t), and
// trees are concatenated in tree order, so the forest does not depend on the
// thread count. Splits made later by add() draw from (seed, tree, split count).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/metric.h"
#include "common/thread_pool.h"

namespace nk {
namespace trees {

// Growable node storage: one per tree while building, then the forest's own.
struct NodeStore {
  std::vector<float> planes, offsets;
  std::vector<int32_t> children;
  std::vector<int64_t> leaf_off;
  std::vector<int32_t> leaf_cnt, leaf_cap, leaf_items;
  std::vector<int32_t> roots;
};

// Read-only pointers used by search: into a NodeStore or into mapped arrays.
struct View {
  const float* planes = nullptr;
  const float* offsets = nullptr;
  const int32_t* children = nullptr;
  const int64_t* leaf_off = nullptr;
  const int32_t* leaf_cnt = nullptr;
  const int32_t* leaf_items = nullptr;
  const int32_t* roots = nullptr;
  size_t n_splits = 0, n_leaves = 0, n_leaf_items = 0, n_trees = 0;
};

struct Vectors {  // the caller's rows
  const void* data;
  size_t n;  // rows
};

class Forest {
 public:
  // dim: floats per row (words per row for hamming; nbits is then the bit count).
  Forest(int metric, size_t dim, int leaf_size, uint64_t seed);

  int metric() const { return int(metric_); }  // the code of common/metric.h
  size_t dim() const { return dim_; }
  size_t plane_dim() const { return pdim_; }
  int leaf_size() const { return leaf_size_; }
  float max_norm() const { return max_norm_; }
  bool frozen() const { return frozen_; }
  const View& view() const { return view_; }

  // Build n_trees trees over the given slots (replaces any existing trees).
  void build(const Vectors& v, const int32_t* slots, size_t n_slots, int n_trees, int threads);
  // Insert slots (already present in v) into every tree, splitting full leaves.
  void insert(const Vectors& v, const int32_t* slots, size_t n);
  // Remove slots from every leaf. Returns the number of leaf entries dropped.
  size_t erase(const int32_t* slots, size_t n, size_t n_rows);

  // search_k: stop collecting once this many leaf entries were gathered
  // (duplicates across trees count, as in Annoy); <= 0 means unlimited.
  // mask (optional, n rows): only slots with mask[s] != 0 are returned.
  // Writes k results per query, ascending by (distance, slot); -1 / +inf pads.
  void search(const Vectors& v, const void* queries, size_t nq, size_t k, int64_t search_k,
              const uint8_t* mask, int threads, int64_t* out_ids, float* out_d) const;

  // Adopt saved arrays. frozen=true keeps the pointers (caller keeps them alive);
  // frozen=false copies them so the forest can grow.
  void attach(const View& v, float max_norm, bool frozen);
  // The forest with leaves packed (no spare capacity), for saving.
  NodeStore packed() const;

  // Planes through the origin (no offset), as Annoy's angular and dot trees.
  void set_origin_planes(bool on) { origin_planes_ = on; }
  bool origin_planes() const { return origin_planes_; }
  // Replace the split offsets used at query time (Annoy's dot adds a constant).
  void set_offsets(const float* offsets, size_t n);
  // Order of equal priorities in the search queue: the node with the larger key
  // is visited first (Annoy's file order). Empty keys: no particular order.
  void set_tie_keys(const int32_t* split_keys, size_t ns, const int32_t* leaf_keys, size_t nl);

 private:
  struct Rng;
  // The metric policies (Euclidean, DotProduct, Angular, Manhattan, Hamming in
  // trees.cpp) say how a metric measures, splits and orders the walk; the
  // templates below are the build and the walk over one policy, and
  // with_policy() the one switch from metric_ to them.
  template <class F>
  decltype(auto) with_policy(F&& f) const;
  template <class P>
  void build_impl(const Vectors& v, const int32_t* slots, size_t n_slots, int n_trees, int threads);
  template <class P>
  void insert_impl(const Vectors& v, const int32_t* slots, size_t n);
  template <class P>
  int32_t make_tree(NodeStore& ns, const Vectors& v, int32_t* items, size_t n, Rng& rng,
                    StopToken* stop = nullptr) const;
  template <class P>
  void search_impl(const Vectors& v, const void* queries, size_t nq, size_t k, int64_t search_k,
                   const uint8_t* mask, int threads, int64_t* out_ids, float* out_d) const;
  template <class P>
  void search_one(const Vectors& v, const void* q, size_t k, int64_t search_k,
                  const uint8_t* mask, int64_t* out_ids, float* out_d) const;
  int32_t new_leaf(NodeStore& ns, const int32_t* items, size_t n, size_t cap) const;
  void refresh_view();

  Metric metric_;
  size_t dim_, pdim_;
  int leaf_size_;
  uint64_t seed_;
  float max_norm_ = 0.f;  // ip: norms are lifted to this radius by an extra coordinate
  bool frozen_ = false;
  bool origin_planes_ = false;
  std::vector<int32_t> split_key_, leaf_key_;
  uint64_t split_counter_ = 0;  // seeds the splits made by insert()
  NodeStore store_;
  View view_;
};

}  // namespace trees
}  // namespace nk
