// Random-projection forest: build, insert, erase and best-first search.
#include "index/trees.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "kernels/distance.h"
#include "kernels/tree_kernels.h"

namespace nk {
namespace trees {

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline bool bit_of(const uint64_t* row, int64_t bit) {
  return (row[bit >> 6] >> (bit & 63)) & 1ull;
}

inline int32_t leaf_ref(size_t leaf) { return -static_cast<int32_t>(leaf) - 1; }

}  // namespace

struct Forest::Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(splitmix(seed)) {}
  uint64_t next() {
    s += 0x9E3779B97F4A7C15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Lemire's multiply-shift: an unbiased-enough index without a division.
  size_t index(size_t n) {
    return static_cast<size_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  bool flip() { return next() >> 63; }
};

// --- metric policies -----------------------------------------------------------------
//
// One struct per metric with static functions only (Annoy's idea; our code):
//   Elem                   element type of a row (float, or uint64_t words for hamming)
//   plane_dim(dim)         floats per split plane (0: hamming splits on one bit)
//   kStartCost             queue priority of a root
//   kRandomOffset          offset stored for a split made at random
//   distance(q, row, dim)  the distance results are ranked and reported by
//   create_split(...)      choose a split for some items (false: none found)
//   side(...)              which child a row goes to: 1 right, 0 left, -1 undecided
//   child_costs(...)       queue priorities of a split's two children for a query
//   kLifted                rows carry an extra coordinate (ip: norms lifted to max_norm)
// Float metrics share the hyperplane machinery (Hyperplanes<P>); they differ in
// the distance, the lifted coordinate (DotProduct) and the two-means
// assignment (Angular).

namespace {

// What the policies need to know about the forest.
struct Shape {
  size_t dim, pdim;
  float max_norm;      // DotProduct: the radius rows are lifted to
  bool origin_planes;  // planes through the origin (Annoy's angular and dot)
};

template <class P>
struct Hyperplanes {
  using Elem = float;
  static constexpr bool kLifted = false;
  static constexpr bool kAngularSplit = false;
  static constexpr float kStartCost = -std::numeric_limits<float>::infinity();
  static constexpr float kRandomOffset = 0.f;
  static size_t plane_dim(size_t dim) { return dim; }

  // The row as splits see it (only DotProduct lifts it, into buf).
  static const float* split_row(const Shape&, const float* row, float*) { return row; }

  // Signed distance of a row to a plane.
  static float margin(const Shape& sh, const float* row, const float* plane, float offset) {
    return kernels().dot(plane, row, sh.dim) + offset;
  }

  static int side(const Shape& sh, const float* row, const float* plane, float offset) {
    float m = P::margin(sh, row, plane, offset);
    return m != 0 ? m > 0 : -1;
  }

  // A query's margin (queries carry 0 in the lifted ip coordinate): the near
  // side keeps the parent's cost, the far side costs at least the margin.
  static void child_costs(const Shape& sh, const View& w, size_t s, const float* q, float cost,
                          float* cl, float* cr) {
    float m = kernels().dot(w.planes + s * sh.pdim, q, sh.dim) + w.offsets[s];
    *cl = std::max(cost, m);
    *cr = std::max(cost, -m);
  }

  // Two-means on a random walk through the items (Annoy's heuristic): the
  // plane is the perpendicular bisector of the two centroids.
  template <class Rng>
  static bool create_split(const Shape& sh, const Vectors& v, const int32_t* items, size_t n,
                           Rng& rng, float* plane, float* offset) {
    const size_t pd = sh.pdim, dim = sh.dim;
    std::vector<float> p(pd), q(pd), x(pd);
    const float* base = static_cast<const float*>(v.data);
    auto row_of = [&](int32_t slot) {
      return P::split_row(sh, base + static_cast<size_t>(slot) * dim, x.data());
    };
    size_t i = rng.index(n), j = rng.index(n - 1);
    j += (j >= i);
    const float* pi = row_of(items[i]);
    std::copy(pi, pi + pd, p.data());
    const float* qj = row_of(items[j]);
    std::copy(qj, qj + pd, q.data());
    const DistFn l2 = kernels().l2sq;
    float ic = 1, jc = 1;
    // Annoy walks 200 random items; small nodes need fewer to settle.
    const size_t steps = std::min<size_t>(200, 4 * n);
    const DistFn dotf = kernels().dot;
    for (size_t step = 0; step < steps; ++step) {
      const float* r = row_of(items[rng.index(n)]);
      float di, dj;
      if constexpr (P::kAngularSplit) {
        // Rows are unit vectors: assign by cosine to the centroids, as Annoy
        // does (measured: better trees than plain L2 two-means on GloVe).
        float pn = std::sqrt(dotf(p.data(), p.data(), pd)), qn = std::sqrt(dotf(q.data(), q.data(), pd));
        di = ic * (2 - 2 * dotf(p.data(), r, pd) / (pn > 0 ? pn : 1));
        dj = jc * (2 - 2 * dotf(q.data(), r, pd) / (qn > 0 ? qn : 1));
      } else {
        di = ic * l2(p.data(), r, pd);
        dj = jc * l2(q.data(), r, pd);
      }
      if (di < dj) {
        float a = ic / (ic + 1), b = 1 / (ic + 1);
        for (size_t z = 0; z < pd; ++z) p[z] = p[z] * a + r[z] * b;
        ic += 1;
      } else if (dj < di) {
        float a = jc / (jc + 1), b = 1 / (jc + 1);
        for (size_t z = 0; z < pd; ++z) q[z] = q[z] * a + r[z] * b;
        jc += 1;
      }
    }
    double nn = 0;
    for (size_t z = 0; z < pd; ++z) {
      plane[z] = p[z] - q[z];
      nn += double(plane[z]) * plane[z];
    }
    if (!(nn > 0) || !std::isfinite(nn)) return false;
    float inv = static_cast<float>(1.0 / std::sqrt(nn));
    double off = 0;
    for (size_t z = 0; z < pd; ++z) {
      plane[z] *= inv;
      off -= double(plane[z]) * (p[z] + q[z]) * 0.5;
    }
    *offset = sh.origin_planes ? 0.f : static_cast<float>(off);
    return true;
  }
};

struct Euclidean : Hyperplanes<Euclidean> {  // squared L2
  static float distance(const float* q, const float* row, size_t dim) {
    return kernels().l2sq(q, row, dim);
  }
};

struct Manhattan : Hyperplanes<Manhattan> {  // L1; splits as Euclidean
  static float distance(const float* q, const float* row, size_t dim) {
    return tree_kernels().l1(q, row, dim);
  }
};

struct Angular : Hyperplanes<Angular> {  // cosine: rows arrive unit length
  static constexpr bool kAngularSplit = true;
  static float distance(const float* q, const float* row, size_t dim) {
    return 1.f - kernels().dot(q, row, dim);
  }
};

// Inner product: a row x becomes (x, sqrt(max_norm^2 - |x|^2)), so every row
// has norm max_norm and the largest dot is the nearest in L2 (the XBOX
// transform Annoy uses); queries get 0 in that coordinate.
struct DotProduct : Hyperplanes<DotProduct> {
  static constexpr bool kLifted = true;
  static size_t plane_dim(size_t dim) { return dim + 1; }
  static float distance(const float* q, const float* row, size_t dim) {
    return 1.f - kernels().dot(q, row, dim);
  }
  static float lift(const Shape& sh, const float* row) {
    float nn = kernels().dot(row, row, sh.dim);
    return std::sqrt(std::max(0.f, sh.max_norm * sh.max_norm - nn));
  }
  static const float* split_row(const Shape& sh, const float* row, float* buf) {
    std::copy(row, row + sh.dim, buf);
    buf[sh.dim] = lift(sh, row);
    return buf;
  }
  static float margin(const Shape& sh, const float* row, const float* plane, float offset) {
    float m = kernels().dot(plane, row, sh.dim) + offset;
    m += plane[sh.dim] * lift(sh, row);
    return m;
  }
};

// Bit vectors: a split is one bit (its index stored as the offset, -1 for a
// random split), the walk's cost is the number of bits the query disagrees on.
struct Hamming {
  using Elem = uint64_t;
  static constexpr bool kLifted = false;
  static constexpr float kStartCost = 0.f;
  static constexpr float kRandomOffset = -1.f;
  static size_t plane_dim(size_t) { return 0; }

  static float distance(const uint64_t* q, const uint64_t* row, size_t words) {
    return tree_kernels().hamming(q, row, words);
  }

  static int side(const Shape&, const uint64_t* row, const float*, float offset) {
    int64_t bit = static_cast<int64_t>(offset);
    return bit >= 0 ? int(bit_of(row, bit)) : -1;
  }

  static void child_costs(const Shape&, const View& w, size_t s, const uint64_t* q, float cost,
                          float* cl, float* cr) {
    int64_t bit = static_cast<int64_t>(w.offsets[s]);
    if (bit < 0) {
      *cl = *cr = cost;
    } else {
      bool b = bit_of(q, bit);
      *cl = cost + (b ? 1.f : 0.f);
      *cr = cost + (b ? 0.f : 1.f);
    }
  }

  // The most balanced of up to 16 random bits (stops early at one that sends
  // between 7/16 and 9/16 of the items right).
  template <class Rng>
  static bool create_split(const Shape& sh, const Vectors& v, const int32_t* items, size_t n,
                           Rng& rng, float*, float* offset) {
    const uint64_t* base = static_cast<const uint64_t*>(v.data);
    const size_t dim = sh.dim;
    int64_t best = -1;
    size_t best_gap = n;
    const int64_t nbits = static_cast<int64_t>(dim) * 64;
    for (int attempt = 0; attempt < 16; ++attempt) {
      int64_t bit = static_cast<int64_t>(rng.index(static_cast<size_t>(nbits)));
      size_t ones = 0;
      for (size_t i = 0; i < n; ++i) ones += bit_of(base + static_cast<size_t>(items[i]) * dim, bit);
      if (ones == 0 || ones == n) continue;
      size_t gap = ones > n - ones ? 2 * ones - n : n - 2 * ones;
      if (gap < best_gap) best_gap = gap, best = bit;
      if (gap <= n / 8) break;
    }
    *offset = static_cast<float>(best);
    return best >= 0;
  }
};

}  // namespace

// The one run-time switch: metric_ -> policy.
template <class F>
decltype(auto) Forest::with_policy(F&& f) const {
  switch (metric_) {
    case Metric::L2: return f(Euclidean{});
    case Metric::IP: return f(DotProduct{});
    case Metric::Cosine: return f(Angular{});
    case Metric::Manhattan: return f(Manhattan{});
    default: return f(Hamming{});
  }
}

Forest::Forest(int metric, size_t dim, int leaf_size, uint64_t seed)
    : metric_(Metric(metric)), dim_(dim), leaf_size_(leaf_size), seed_(seed) {
  if (metric < int(Metric::L2) || metric > int(Metric::Hamming))
    throw std::invalid_argument("unknown metric code");
  if (dim == 0) throw std::invalid_argument("dim must be positive");
  if (leaf_size < 1) throw std::invalid_argument("leaf_size must be >= 1");
  pdim_ = with_policy([&](auto p) { return decltype(p)::plane_dim(dim); });
  refresh_view();
}

void Forest::refresh_view() {
  if (frozen_) return;
  View& w = view_;
  w.planes = store_.planes.data();
  w.offsets = store_.offsets.data();
  w.children = store_.children.data();
  w.leaf_off = store_.leaf_off.data();
  w.leaf_cnt = store_.leaf_cnt.data();
  w.leaf_items = store_.leaf_items.data();
  w.roots = store_.roots.data();
  w.n_splits = store_.offsets.size();
  w.n_leaves = store_.leaf_cnt.size();
  w.n_leaf_items = store_.leaf_items.size();
  w.n_trees = store_.roots.size();
}

// --- building ------------------------------------------------------------------------

int32_t Forest::new_leaf(NodeStore& ns, const int32_t* items, size_t n, size_t cap) const {
  size_t leaf = ns.leaf_cnt.size();
  ns.leaf_off.push_back(static_cast<int64_t>(ns.leaf_items.size()));
  ns.leaf_cnt.push_back(static_cast<int32_t>(n));
  ns.leaf_cap.push_back(static_cast<int32_t>(cap));
  ns.leaf_items.insert(ns.leaf_items.end(), items, items + n);
  ns.leaf_items.resize(ns.leaf_items.size() + (cap - n), -1);
  return leaf_ref(leaf);
}

// Split items (permuted in place) until every leaf holds at most leaf_size.
template <class P>
int32_t Forest::make_tree(NodeStore& ns, const Vectors& v, int32_t* items, size_t n,
                          Rng& rng, StopToken* stop) const {
  if (n <= static_cast<size_t>(leaf_size_)) return new_leaf(ns, items, n, n);
  // The build only publishes its trees once all are grown: stopping here leaves
  // the old forest as it was.
  if (stop && n >= 4096 && stop->stop_requested()) throw Interrupted();
  std::vector<float> plane(pdim_), best_plane(pdim_);
  std::vector<uint8_t> side(n), best_side(n);
  float off = 0, best_off = 0;
  double best_imb = 2.0;
  const Shape sh{dim_, pdim_, max_norm_, origin_planes_};
  const auto* rows = static_cast<const typename P::Elem*>(v.data);
  for (int attempt = 0; attempt < 3 && best_imb > 0.95; ++attempt) {
    if (!P::create_split(sh, v, items, n, rng, plane.data(), &off)) continue;
    size_t right = 0;
    for (size_t i = 0; i < n; ++i) {
      // A row on the plane goes to a random side (hamming's chosen bit is never -1).
      int sd = P::side(sh, rows + static_cast<size_t>(items[i]) * dim_, plane.data(), off);
      bool r = sd >= 0 ? sd != 0 : rng.flip();
      side[i] = r;
      right += r;
    }
    double imb = double(std::max(right, n - right)) / double(n);
    if (imb < best_imb) {
      best_imb = imb;
      best_plane.swap(plane);
      best_side.swap(side);
      best_off = off;
      plane.resize(pdim_);
      side.resize(n);
    }
  }
  size_t nl;
  if (best_imb > 0.99) {
    // No useful plane: split at random. A zero plane (hamming: bit -1) sends
    // searches down both sides with the same priority.
    std::fill(best_plane.begin(), best_plane.end(), 0.f);
    best_off = P::kRandomOffset;
    for (size_t i = n - 1; i > 0; --i) std::swap(items[i], items[rng.index(i + 1)]);
    nl = n / 2;
  } else {
    std::vector<int32_t> tmp(items, items + n);
    size_t a = 0;
    for (size_t i = 0; i < n; ++i)
      if (!best_side[i]) items[a++] = tmp[i];
    nl = a;
    for (size_t i = 0; i < n; ++i)
      if (best_side[i]) items[a++] = tmp[i];
  }
  size_t s = ns.offsets.size();
  ns.planes.insert(ns.planes.end(), best_plane.begin(), best_plane.end());
  ns.offsets.push_back(best_off);
  ns.children.push_back(0);
  ns.children.push_back(0);
  int32_t left = make_tree<P>(ns, v, items, nl, rng, stop);
  int32_t right = make_tree<P>(ns, v, items + nl, n - nl, rng, stop);
  ns.children[2 * s] = left;
  ns.children[2 * s + 1] = right;
  return static_cast<int32_t>(s);
}

void Forest::build(const Vectors& v, const int32_t* slots, size_t n_slots, int n_trees, int threads) {
  if (frozen_) throw std::runtime_error("this index is read-only (memory-mapped)");
  if (n_trees < 0) throw std::invalid_argument("n_trees must be >= 0");
  for (size_t i = 0; i < n_slots; ++i)
    if (slots[i] < 0 || static_cast<size_t>(slots[i]) >= v.n)
      throw std::invalid_argument("slot out of range");
  with_policy([&](auto p) { build_impl<decltype(p)>(v, slots, n_slots, n_trees, threads); });
}

template <class P>
void Forest::build_impl(const Vectors& v, const int32_t* slots, size_t n_slots, int n_trees,
                        int threads) {
  if constexpr (P::kLifted) {  // the radius every row is lifted to
    const float* base = static_cast<const float*>(v.data);
    float mx = 0;
    for (size_t i = 0; i < n_slots; ++i) {
      const float* row = base + static_cast<size_t>(slots[i]) * dim_;
      mx = std::max(mx, kernels().dot(row, row, dim_));
    }
    max_norm_ = std::sqrt(mx);
  }
  std::vector<NodeStore> per_tree(static_cast<size_t>(n_trees));
  std::vector<int32_t> roots(static_cast<size_t>(n_trees));
  StopToken stop;
  threads = std::max(1, std::min(threads, n_trees));
  run_workers(threads, [&](int first) {
    std::vector<int32_t> items;
    for (int t = first; t < n_trees; t += threads) {
      if (stop.stop_requested()) return;
      items.assign(slots, slots + n_slots);
      Rng rng(seed_ * 0x2545F4914F6CDD1Dull + splitmix(static_cast<uint64_t>(t) + 1));
      roots[t] = make_tree<P>(per_tree[t], v, items.data(), items.size(), rng, &stop);
    }
  }, &stop);
  // Concatenate the trees in tree order, shifting their references.
  NodeStore all;
  for (int t = 0; t < n_trees; ++t) {
    NodeStore& ns = per_tree[t];
    int32_t split_base = static_cast<int32_t>(all.offsets.size());
    int32_t leaf_base = static_cast<int32_t>(all.leaf_cnt.size());
    int64_t item_base = static_cast<int64_t>(all.leaf_items.size());
    auto shift = [&](int32_t r) { return r >= 0 ? r + split_base : r - leaf_base; };
    all.planes.insert(all.planes.end(), ns.planes.begin(), ns.planes.end());
    all.offsets.insert(all.offsets.end(), ns.offsets.begin(), ns.offsets.end());
    for (int32_t c : ns.children) all.children.push_back(shift(c));
    for (int64_t o : ns.leaf_off) all.leaf_off.push_back(o + item_base);
    all.leaf_cnt.insert(all.leaf_cnt.end(), ns.leaf_cnt.begin(), ns.leaf_cnt.end());
    all.leaf_cap.insert(all.leaf_cap.end(), ns.leaf_cap.begin(), ns.leaf_cap.end());
    all.leaf_items.insert(all.leaf_items.end(), ns.leaf_items.begin(), ns.leaf_items.end());
    all.roots.push_back(shift(roots[t]));
    NodeStore().planes.swap(ns.planes);  // free as we go
    ns = NodeStore();
  }
  store_ = std::move(all);
  split_counter_ = 0;
  split_key_.clear();
  leaf_key_.clear();
  refresh_view();
}

// --- incremental updates -----------------------------------------------------------------

void Forest::insert(const Vectors& v, const int32_t* slots, size_t n) {
  if (frozen_) throw std::runtime_error("this index is read-only (memory-mapped)");
  with_policy([&](auto p) { insert_impl<decltype(p)>(v, slots, n); });
}

template <class P>
void Forest::insert_impl(const Vectors& v, const int32_t* slots, size_t n) {
  NodeStore& ns = store_;
  const Shape sh{dim_, pdim_, max_norm_, origin_planes_};
  const auto* rows = static_cast<const typename P::Elem*>(v.data);
  std::vector<int32_t> buf;
  for (size_t i = 0; i < n; ++i) {
    int32_t slot = slots[i];
    if (slot < 0 || static_cast<size_t>(slot) >= v.n) throw std::invalid_argument("slot out of range");
    for (size_t t = 0; t < ns.roots.size(); ++t) {
      int32_t ref = ns.roots[t], parent = -1;
      int pside = 0;
      while (ref >= 0) {
        size_t s = static_cast<size_t>(ref);
        // Undecided (on the plane, or a random split): a side fixed by (slot, split).
        int sd = P::side(sh, rows + static_cast<size_t>(slot) * dim_, ns.planes.data() + s * pdim_,
                         ns.offsets[s]);
        bool r = sd >= 0 ? sd != 0 : ((splitmix(static_cast<uint64_t>(slot) ^ (s << 32)) & 1) != 0);
        parent = ref;
        pside = r;
        ref = ns.children[2 * s + r];
      }
      size_t leaf = static_cast<size_t>(-ref - 1);
      int32_t cnt = ns.leaf_cnt[leaf];
      if (cnt < ns.leaf_cap[leaf]) {
        ns.leaf_items[ns.leaf_off[leaf] + cnt] = slot;
        ns.leaf_cnt[leaf] = cnt + 1;
        continue;
      }
      if (cnt < leaf_size_) {  // a packed leaf: move it to a block with room
        int64_t off = static_cast<int64_t>(ns.leaf_items.size());
        ns.leaf_items.resize(ns.leaf_items.size() + leaf_size_, -1);
        std::copy(ns.leaf_items.begin() + ns.leaf_off[leaf],
                  ns.leaf_items.begin() + ns.leaf_off[leaf] + cnt, ns.leaf_items.begin() + off);
        ns.leaf_items[off + cnt] = slot;
        ns.leaf_off[leaf] = off;
        ns.leaf_cnt[leaf] = cnt + 1;
        ns.leaf_cap[leaf] = leaf_size_;
        continue;
      }
      // Full: replace the leaf by a subtree (the old leaf stays, empty and unreferenced).
      buf.assign(ns.leaf_items.begin() + ns.leaf_off[leaf],
                 ns.leaf_items.begin() + ns.leaf_off[leaf] + cnt);
      buf.push_back(slot);
      ns.leaf_cnt[leaf] = 0;
      Rng rng(seed_ * 0x2545F4914F6CDD1Dull + splitmix(t + 1) + splitmix(~split_counter_++));
      int32_t sub = make_tree<P>(ns, v, buf.data(), buf.size(), rng);
      split_key_.clear();
      leaf_key_.clear();
      if (parent < 0)
        ns.roots[t] = sub;
      else
        ns.children[2 * static_cast<size_t>(parent) + pside] = sub;
    }
  }
  refresh_view();
}

size_t Forest::erase(const int32_t* slots, size_t n, size_t n_rows) {
  if (frozen_) throw std::runtime_error("this index is read-only (memory-mapped)");
  std::vector<uint8_t> gone(n_rows, 0);
  for (size_t i = 0; i < n; ++i)
    if (slots[i] >= 0 && static_cast<size_t>(slots[i]) < n_rows) gone[slots[i]] = 1;
  size_t dropped = 0;
  NodeStore& ns = store_;
  for (size_t l = 0; l < ns.leaf_cnt.size(); ++l) {
    int32_t* it = ns.leaf_items.data() + ns.leaf_off[l];
    int32_t keep = 0;
    for (int32_t i = 0; i < ns.leaf_cnt[l]; ++i) {
      int32_t s = it[i];
      if (s >= 0 && static_cast<size_t>(s) < n_rows && gone[s]) continue;
      it[keep++] = s;
    }
    dropped += static_cast<size_t>(ns.leaf_cnt[l] - keep);
    ns.leaf_cnt[l] = keep;
  }
  refresh_view();
  return dropped;
}

// --- search ------------------------------------------------------------------------------

namespace {
// Per-thread "seen" bits (one bit per row keeps the set in L1/L2); the bits a
// query set are cleared again from its candidate list.
struct Seen {
  std::vector<uint64_t> bits;
  void start(size_t n) {
    if (bits.size() * 64 < n) bits.resize((n + 63) / 64, 0);
  }
  bool test_set(uint32_t s) {
    uint64_t m = 1ull << (s & 63);
    uint64_t& w = bits[s >> 6];
    bool was = (w & m) != 0;
    w |= m;
    return was;
  }
  void clear(const int32_t* slots, size_t n) {
    for (size_t i = 0; i < n; ++i) bits[static_cast<uint32_t>(slots[i]) >> 6] = 0;
  }
};
thread_local Seen t_seen;
}  // namespace

template <class P>
void Forest::search_one(const Vectors& v, const void* q, size_t k, int64_t search_k,
                        const uint8_t* mask, int64_t* out_ids, float* out_d) const {
  const View& w = view_;
  const size_t limit = search_k > 0 ? static_cast<size_t>(search_k) : std::numeric_limits<size_t>::max();
  Seen& seen = t_seen;
  seen.start(v.n);

  // Queue entries: (cost, tie key, node); smallest cost first, then larger key.
  struct Entry {
    float cost;
    int32_t key, ref;
  };
  const bool keyed = !split_key_.empty();
  const int32_t* skey = split_key_.data();
  const int32_t* lkey = leaf_key_.data();
  auto key_of = [&](int32_t ref) -> int32_t {
    if (!keyed) return 0;
    return ref >= 0 ? skey[ref] : lkey[-static_cast<int64_t>(ref) - 1];
  };
  std::vector<Entry> heap;
  heap.reserve(256);
  auto cmp = [](const Entry& a, const Entry& b) {
    return a.cost > b.cost || (a.cost == b.cost && a.key < b.key);
  };
  for (size_t t = 0; t < w.n_trees; ++t) heap.push_back({P::kStartCost, key_of(w.roots[t]), w.roots[t]});
  std::make_heap(heap.begin(), heap.end(), cmp);

  std::vector<int32_t> cand;
  cand.reserve(std::min<size_t>(limit, 1 << 16));
  size_t gathered = 0;
  using Elem = typename P::Elem;
  const Elem* qe = static_cast<const Elem*>(q);
  const Shape sh{dim_, pdim_, max_norm_, origin_planes_};
  const size_t row_bytes = dim_ * sizeof(Elem);
  const char* vbase = static_cast<const char*>(v.data);
  while (gathered < limit && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    Entry e = heap.back();
    heap.pop_back();

    if (e.ref < 0) {
      size_t leaf = static_cast<size_t>(-static_cast<int64_t>(e.ref) - 1);
      const int32_t* it = w.leaf_items + w.leaf_off[leaf];
      int32_t cnt = w.leaf_cnt[leaf];
      gathered += static_cast<size_t>(cnt);
      for (int32_t i = 0; i < cnt; ++i) {
        uint32_t s = static_cast<uint32_t>(it[i]);
        if (s < v.n && !seen.test_set(s)) {
          cand.push_back(static_cast<int32_t>(s));
          // Start fetching the row now: the tree walk hides the memory latency.
          const char* r = vbase + static_cast<size_t>(s) * row_bytes;
          for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(r + b);
        }
      }
      continue;
    }
    size_t s = static_cast<size_t>(e.ref);
    const int32_t* ch = w.children + 2 * s;
    float cl, cr;
    P::child_costs(sh, w, s, qe, e.cost, &cl, &cr);
    heap.push_back({cr, key_of(ch[1]), ch[1]});
    std::push_heap(heap.begin(), heap.end(), cmp);
    heap.push_back({cl, key_of(ch[0]), ch[0]});
    std::push_heap(heap.begin(), heap.end(), cmp);
    {
      // Most children are popped soon: start loading what they will need.
      for (int c = 0; c < 2; ++c) {
        int32_t r = ch[c];
        if (r >= 0) {
          const char* pl = reinterpret_cast<const char*>(w.planes + static_cast<size_t>(r) * pdim_);
          for (size_t b = 0; b < pdim_ * 4; b += 64) __builtin_prefetch(pl + b);
          __builtin_prefetch(w.offsets + r);
          __builtin_prefetch(w.children + 2 * static_cast<size_t>(r));
        } else {
          size_t l = static_cast<size_t>(-static_cast<int64_t>(r) - 1);
          __builtin_prefetch(w.leaf_off + l);
          __builtin_prefetch(w.leaf_cnt + l);
        }
      }
    }
  }

  seen.clear(cand.data(), cand.size());

  // Exact re-ranking of the distinct candidates.
  std::vector<std::pair<float, int32_t>> scored;
  scored.reserve(cand.size());
  const char* base = vbase;
  const size_t nc = cand.size();
  const size_t ahead = 6;
  for (size_t i = 0; i < nc && i < ahead; ++i) {
    const char* r = base + static_cast<size_t>(cand[i]) * row_bytes;
    for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(r + b);
  }
  for (size_t i = 0; i < nc; ++i) {
    if (i + ahead < nc) {
      const char* r = base + static_cast<size_t>(cand[i + ahead]) * row_bytes;
      for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(r + b);
    }
    int32_t s = cand[i];
    if (mask && !mask[s]) continue;
    scored.emplace_back(
        P::distance(qe, reinterpret_cast<const Elem*>(base + static_cast<size_t>(s) * row_bytes), dim_), s);
  }
  size_t m = std::min(k, scored.size());
  if (scored.size() > m && m > 0) std::nth_element(scored.begin(), scored.begin() + (m - 1), scored.end());
  std::sort(scored.begin(), scored.begin() + m);
  for (size_t i = 0; i < k; ++i) {
    if (i < m) {
      out_ids[i] = scored[i].second;
      out_d[i] = scored[i].first;
    } else {
      out_ids[i] = -1;
      out_d[i] = std::numeric_limits<float>::infinity();
    }
  }
}

void Forest::search(const Vectors& v, const void* queries, size_t nq, size_t k, int64_t search_k,
                    const uint8_t* mask, int threads, int64_t* out_ids, float* out_d) const {
  with_policy([&](auto p) {
    search_impl<decltype(p)>(v, queries, nq, k, search_k, mask, threads, out_ids, out_d);
  });
}

template <class P>
void Forest::search_impl(const Vectors& v, const void* queries, size_t nq, size_t k,
                         int64_t search_k, const uint8_t* mask, int threads, int64_t* out_ids,
                         float* out_d) const {
  const size_t qbytes = dim_ * sizeof(typename P::Elem);
  const char* qs = static_cast<const char*>(queries);
  StopToken stop;
  size_t nt = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), nq));
  parallel_ranges(nq, int(nt), 1, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) {
      if (stop.stop_requested()) return;
      search_one<P>(v, qs + i * qbytes, k, search_k, mask, out_ids + i * k, out_d + i * k);
    }
  }, &stop);
}

// --- persistence -----------------------------------------------------------------------

// Structural checks so a damaged (but checksum-valid) forest cannot send the
// search out of bounds or round a cycle.
static void validate(const View& v) {
  auto bad = [](const char* what) { throw std::invalid_argument(std::string("corrupt tree forest: ") + what); };
  std::vector<uint8_t> refs(v.n_splits, 0);
  auto check_ref = [&](int32_t r) {
    if (r >= 0) {
      if (static_cast<size_t>(r) >= v.n_splits) bad("split reference out of range");
      if (refs[r]++) bad("a split node has two parents");
    } else if (static_cast<size_t>(-(int64_t)r - 1) >= v.n_leaves) {
      bad("leaf reference out of range");
    }
  };
  for (size_t t = 0; t < v.n_trees; ++t) check_ref(v.roots[t]);
  for (size_t i = 0; i < 2 * v.n_splits; ++i) check_ref(v.children[i]);
  for (size_t l = 0; l < v.n_leaves; ++l)
    if (v.leaf_off[l] < 0 || v.leaf_cnt[l] < 0 ||
        static_cast<size_t>(v.leaf_off[l]) + static_cast<size_t>(v.leaf_cnt[l]) > v.n_leaf_items)
      bad("leaf extends past the item list");
}

void Forest::attach(const View& v, float max_norm, bool frozen) {
  validate(v);
  split_key_.clear();
  leaf_key_.clear();
  max_norm_ = max_norm;
  split_counter_ = 0;
  if (frozen) {
    store_ = NodeStore();
    frozen_ = true;
    view_ = v;
    return;
  }
  frozen_ = false;
  NodeStore ns;
  ns.planes.assign(v.planes, v.planes + v.n_splits * pdim_);
  ns.offsets.assign(v.offsets, v.offsets + v.n_splits);
  ns.children.assign(v.children, v.children + 2 * v.n_splits);
  ns.leaf_off.assign(v.leaf_off, v.leaf_off + v.n_leaves);
  ns.leaf_cnt.assign(v.leaf_cnt, v.leaf_cnt + v.n_leaves);
  ns.leaf_cap = ns.leaf_cnt;
  ns.leaf_items.assign(v.leaf_items, v.leaf_items + v.n_leaf_items);
  ns.roots.assign(v.roots, v.roots + v.n_trees);
  store_ = std::move(ns);
  refresh_view();
}

void Forest::set_offsets(const float* offsets, size_t n) {
  if (frozen_) throw std::runtime_error("this index is read-only (memory-mapped)");
  if (n != store_.offsets.size()) throw std::invalid_argument("one offset per split is needed");
  std::copy(offsets, offsets + n, store_.offsets.begin());
}

void Forest::set_tie_keys(const int32_t* split_keys, size_t ns, const int32_t* leaf_keys, size_t nl) {
  if (ns == 0 && nl == 0) {
    split_key_.clear();
    leaf_key_.clear();
    return;
  }
  if (ns != view_.n_splits || nl != view_.n_leaves)
    throw std::invalid_argument("one tie key per split and per leaf is needed");
  split_key_.assign(split_keys, split_keys + ns);
  leaf_key_.assign(leaf_keys, leaf_keys + nl);
}

NodeStore Forest::packed() const {
  const View& w = view_;
  NodeStore ns;
  ns.planes.assign(w.planes, w.planes + w.n_splits * pdim_);
  ns.offsets.assign(w.offsets, w.offsets + w.n_splits);
  ns.children.assign(w.children, w.children + 2 * w.n_splits);
  ns.roots.assign(w.roots, w.roots + w.n_trees);
  ns.leaf_cnt.assign(w.leaf_cnt, w.leaf_cnt + w.n_leaves);
  ns.leaf_off.resize(w.n_leaves);
  size_t total = 0;
  for (size_t l = 0; l < w.n_leaves; ++l) total += static_cast<size_t>(w.leaf_cnt[l]);
  ns.leaf_items.reserve(total);
  for (size_t l = 0; l < w.n_leaves; ++l) {
    ns.leaf_off[l] = static_cast<int64_t>(ns.leaf_items.size());
    const int32_t* it = w.leaf_items + w.leaf_off[l];
    ns.leaf_items.insert(ns.leaf_items.end(), it, it + w.leaf_cnt[l]);
  }
  return ns;
}

}  // namespace trees
}  // namespace nk
