// Hierarchical navigable small-world graph (Malkov & Yashunin) with a
// quantised walk and an exact re-rank.
//
// Codes (locally adaptive, one byte per dimension): each vector x is stored as
// a residual from one of a few centres c_a (the origin, the first batch's mean,
// k-means centres of the first batch, the means of later batches that drifted
// away), x ~= c_a + m + delta * code,
// where the offset m and step delta are the vector's own (its residual's
// minimum and range / 255). The error of a code therefore scales with the
// vector's own spread, never with the data's global range: outliers, heavy
// tails, a wide dimension or spread norms cannot coarsen anybody else's code.
// A distance is one int16 x uint8 dot product plus per-vector scalars:
//   ip:  1 - q.x^ = (1 - q.c_a) - m * sum(q) - delta * q.code
//   l2:  |q - x^|^2 = |q - c_a|^2 - 2 (m * sum(q') + delta * q'.code) + N_x
//        with q' = q - mu, N_x = |r^|^2 - 2 (mu - c_a).r^, r^ = x^ - c_a.
// Each code's rounding error is at most delta/2 per dimension, which gives the
// re-rank a per-candidate error scale (see search_one); a guard measures on a
// sample how well code distances keep the float order and switches the walk to
// float vectors when they cannot (see check_codes_locked).
//
// Memory layout, chosen because a query is bound by memory latency, not
// arithmetic:
//   level-0 block per slot, 64-byte aligned:
//     [codes: dim bytes, padded to 4][m, delta (, N for l2): f32]
//     [hdr u32: link count | FREE flag | centre << 24][M0 x u32 links]
//   so the code read for a distance, its correction terms and the node's own
//   header share the first cache line (up to ~50-d) and the links follow;
//   float vectors in a separate array, touched only by the final re-rank, the
//   exact (filtered) scan, the float walk and encoding;
//   upper-level links per node: level * (1 + M) u32 = [count, links...].
//
// Concurrency: one reader/writer lock for the index shape. Searches and the
// link-building phase of add() hold it shared; growing storage, assigning
// slots, encoding and remove() hold it exclusively. Within the shared phase
// a striped mutex guards each node's link lists against concurrent writers;
// readers copy a link list without locking (every stored id is always a valid
// slot, so a read that races a rewrite sees old or new neighbours, never junk).
#pragma once
#include <atomic>
#include <memory>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/distance.h"
#include "kernels/hnsw_codes.h"

namespace nk {

// Raw storage that is either owned (aligned, growable) or borrowed from a
// memory-mapped file section (read-only).
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }
  void grow(size_t bytes);  // owned only; keeps contents, zero-fills the rest
  void borrow(const void* p, size_t bytes) {
    release();
    data_ = static_cast<uint8_t*>(const_cast<void*>(p));
    bytes_ = bytes;
    owned_ = false;
  }
  uint8_t* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void release();
  uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
  size_t mapped_ = 0;  // > 0: data_ is an anonymous mapping of this many bytes
  bool owned_ = true;
};

// What the last code check measured (see Hnsw::check_codes_locked).
struct GuardReport {
  size_t queries = 0, references = 0;  // sample sizes; 0: never ran
  float max_error = 0.f;   // worst code error seen, in units of its modelled scale
  float confusable = 0.f;  // median number of vectors the codes cannot tell from the nearest
  bool codes_ok = true;
};

struct HnswState {  // what a file needs besides the arrays
  int64_t entry;
  int max_level;
  size_t n_slots;
};

class Hnsw {
 public:
  static constexpr uint32_t kFree = 1u << 16;  // hdr flag: slot holds no vector
  static constexpr uint32_t kCountMask = 0xFFFFu;
  static constexpr uint32_t kNone = 0xFFFFFFFFu;
  static constexpr uint32_t kCentreShift = 24;  // hdr bits 24..31: the code's centre
  static constexpr size_t kMaxCentres = 16;

  Hnsw(size_t dim, Metric metric, size_t M, size_t ef_construction, uint64_t seed);
  ~Hnsw();

  // --- mutation (refused when read-only) ---
  // Inserts or replaces (same id) n vectors, building links on `threads` threads.
  // Cosine indexes normalise vectors and queries themselves.
  void add(const float* x, const int64_t* ids, size_t n, int threads);
  // Deletes the given ids, repairs their neighbours' links, frees their slots.
  size_t remove(const int64_t* ids, size_t n);

  // --- search ---
  // mask: optional uint8 per slot (slots >= mask_len are not allowed).
  void search(const float* q, size_t nq, size_t k, size_t ef, const uint8_t* mask,
              size_t mask_len, int threads, int64_t* out_ids, float* out_dist);

  // Exact top-k among the slots whose mask byte is set, without the graph (the
  // caller has chosen the scan; search() decides by itself). One thread.
  void scan(const float* q, size_t nq, size_t k, const uint8_t* mask, size_t mask_len,
            int64_t* out_ids, float* out_dist) const;

  // --- introspection ---
  size_t dim() const { return dim_; }
  size_t size() const { return n_live_; }
  size_t n_slots() const { return n_slots_; }
  size_t capacity() const { return capacity_; }
  size_t M() const { return M_; }
  size_t block_bytes() const { return bsize_; }
  // Byte offset of a level-0 block's header word (link count | FREE | centre).
  size_t header_offset() const { return dcode_; }
  bool readonly() const { return readonly_; }
  size_t memory_bytes() const;  // storage held (or mapped) by the index, approximately
  void slot_labels(int64_t* out, size_t n) const;  // first n slots (n <= n_slots)
  // The stored (for cosine: normalised) vectors of n slots into out (n x dim), under
  // the shared lock; throws std::out_of_range for a slot >= n_slots.
  void vectors_at(const int64_t* slots, size_t n, float* out) const;
  int64_t max_label() const;                        // -1 when empty
  HnswState state() const;
  // When a filtered search switches to an exact scan of the allowed slots.
  size_t exact_threshold() const { return exact_min_; }
  void set_exact_threshold(size_t v) { exact_min_ = v; }
  size_t rerank() const { return rerank_; }
  void set_rerank(size_t v) { rerank_ = v; }
  double exact_scale() const { return exact_scale_; }
  void set_exact_scale(double v) { exact_scale_ = v; }
  // True when the guard found that codes cannot keep the float order on this
  // data: the walk (and the build) then measure float vectors.
  bool float_walk() const { return float_walk_; }
  void use_float_walk();  // asked for by the user: every later walk and build on floats
  // Multiplier of each candidate's code error scale in the re-rank bound
  // (measured by the guard, never below 4).
  float error_z() const { return z_; }
  size_t n_centres() const { return n_centres_; }
  GuardReport guard_report() const { return guard_; }

  // --- persistence: flat arrays ---
  // Export copies of the arrays (under a shared lock).
  void export_arrays(std::vector<uint8_t>& blocks, std::vector<float>& vectors,
                     std::vector<int64_t>& labels, std::vector<uint8_t>& levels,
                     std::vector<int64_t>& upper_offsets, std::vector<uint32_t>& upper_links,
                     std::vector<float>& quant, HnswState& st) const;
  // Attach arrays from a file; borrow=true keeps pointers into them (read-only).
  // quant: [header row, centres...] x dpad. legacy: a file written before the
  // per-vector codes (blocks hold per-dimension codes and quant is [lo, scale]):
  // its links are copied into the current layout and the codes rebuilt from the
  // float vectors (into owned memory, even when borrow is asked for).
  void attach(const uint8_t* blocks, size_t blocks_bytes, const float* vectors,
              const int64_t* labels, const uint8_t* levels, const int64_t* upper_offsets,
              const uint32_t* upper_links, size_t upper_len, const float* quant,
              size_t quant_rows, const HnswState& st, bool borrow, bool legacy);

 private:
  struct Scratch;
  struct Query;

  // layout accessors
  uint8_t* block(size_t s) const { return blocks_.data() + s * bsize_; }
  const uint8_t* code(size_t s) const { return block(s); }
  uint32_t* hdr(size_t s) const { return reinterpret_cast<uint32_t*>(block(s) + dcode_); }
  uint32_t* upper(size_t s, int level) const { return upper_[s] + size_t(level - 1) * (M_ + 1); }
  const float* vec(size_t s) const { return reinterpret_cast<const float*>(vectors_.data()) + s * dim_; }
  int64_t* labels() const { return reinterpret_cast<int64_t*>(labels_.data()); }
  uint8_t* levels() const { return levels_.data(); }
  size_t max_links(int level) const { return level == 0 ? M0_ : M_; }

  // codes
  const float* aux(size_t s) const { return reinterpret_cast<const float*>(block(s) + caux_); }
  // What a code distance needs besides the code: the slot's per-vector floats
  // and centre. Where they share the code's last cache line (50-d: code and
  // floats in one line) they are read from the block. Where the code fills whole
  // lines (128-d, 256-d) they would cost a line of their own per distance (256-d:
  // 5 lines, not 4; the walk is bound by those misses), so a compact copy of 16
  // bytes a slot is kept apart (1.6 MB per 100k vectors: it stays in cache).
  // The block keeps the persisted copy either way.
  struct CodeAux {
    float offset, step, norm;  // aux(s)[0..2]; norm only for l2
    uint32_t centre;
  };
  CodeAux code_aux(size_t s) const {
    if (aux_apart_) return reinterpret_cast<const CodeAux*>(code_aux_.data())[s];
    const float* ax = aux(s);
    return {ax[0], ax[1], naux_ > 2 ? ax[2] : 0.f, centre_of(s)};
  }
  void sync_code_aux(size_t s);  // the compact copy from the block (when kept apart)
  const float* centre(size_t a) const { return centres_.data() + a * dpad_; }
  uint32_t centre_of(size_t s) const;
  void encode_slot(size_t s);
  void decode_slot(size_t s, float* out) const;
  void update_codes_locked(const std::vector<uint32_t>& slots);
  void add_cluster_centres_locked(const std::vector<uint32_t>& slots);
  void check_codes_locked(const std::vector<uint32_t>& slots);
  void normalize(float* v) const;
  // The query form of x; with codes=false (or on the float walk) distances are exact.
  void prepare(const float* q, Query& out, const CodeKernels& ck, bool codes = true) const;
  void prepare_slot(size_t s, Query& q, const CodeKernels& ck) const;
  // Inner product chooses neighbours on float vectors even when the walk uses
  // codes: the heuristic compares a candidate's product with the base against
  // its products with kept neighbours, and a heavy-tailed vector's coarse code
  // (one huge entry sets its step) gets those comparisons wrong (ip on Cauchy
  // data, 20k x 32: recall@10 0.947 selecting on codes, 0.972 on floats, hnswlib
  // 0.973). For l2 and cosine, selecting on codes measured as good, and cheaper.
  bool select_on_floats() const { return float_walk_ || metric_ == Metric::IP; }
  void rescore_on_floats(const float* x, std::vector<std::pair<float, uint32_t>>& pool) const;
  float dist(const Query& q, size_t s) const;
  float code_error(const Query& q, size_t s, float d) const;  // modelled error scale

  // graph primitives (callers hold the shape lock)
  size_t read_links(size_t s, int level, uint32_t* out) const;
  void write_links(size_t s, int level, const uint32_t* ids, size_t n);
  uint32_t greedy(const Query& q, uint32_t ep, int from_level, int to_level) const;
  void prefetch_links(uint32_t s) const;
  void prefetch_code(uint32_t t) const;
  size_t unvisited_neighbours(uint32_t c, int level, size_t maxl, Scratch& sc, uint32_t* todo) const;
  // width: how many of the best unexpanded nodes level 0 expands at once (see
  // search_layer_sorted); at most kMaxWidth.
  static constexpr size_t kMaxWidth = 2;
  void search_layer_sorted(const Query& q, uint32_t ep, int level, size_t ef, Scratch& sc,
                           size_t width) const;
  void search_layer(const Query& q, uint32_t ep, int level, size_t ef, Scratch& sc,
                    const uint8_t* mask, size_t mask_len, size_t width = 1) const;
  void select_neighbours(std::vector<std::pair<float, uint32_t>>& cands, size_t m,
                         std::vector<uint32_t>& out, Scratch& sc) const;
  void insert(uint32_t s, Scratch& sc);
  void fill_links(uint32_t s, Scratch& sc);
  // Whether add() fills level-0 lists (fill_links). Not for inner products: a
  // node's nearest by inner product are the large-norm vectors rather than
  // those around it, and the extra links measured mixed (drift/ip recall@1
  // 0.74 -> 0.71; clustered 64-d 0.952 -> 0.954), so ip keeps hnswlib's graph.
  bool fills_level0() const { return metric_ != Metric::IP; }
  void connect(uint32_t s, int level, const std::vector<uint32_t>& selected, Scratch& sc);
  bool append_link(uint32_t n, int level, uint32_t s, uint32_t* buf);
  void search_one(const float* q, size_t k, size_t ef, const uint8_t* mask, size_t mask_len,
                  const std::vector<int64_t>* allowed, Scratch& sc, int64_t* out_ids,
                  float* out_dist) const;
  void exact_scan(const float* q, size_t k, const std::vector<int64_t>& allowed, Scratch& sc,
                  int64_t* out_ids, float* out_dist) const;
  void remove_slots_locked(const std::vector<uint32_t>& slots);
  void repair_node(uint32_t p, int level, const uint8_t* dead, Scratch& sc);
  std::vector<std::pair<uint32_t, int>> find_stranded_locked() const;
  void relink(uint32_t s, int level, bool force, Scratch& sc);
  void fix_stranded_locked();
  void reserve_locked(size_t slots);
  int random_level();
  float exact_dist(const float* q, size_t s, const Kernels& K) const;

  Scratch* acquire() const;
  void release(Scratch* s) const;
  // A pooled Scratch held for one scope and given back however the scope ends.
  class ScratchLease {
   public:
    explicit ScratchLease(const Hnsw& h) : h_(h), s_(h.acquire()) {}
    ~ScratchLease() { h_.release(s_); }
    ScratchLease(const ScratchLease&) = delete;
    ScratchLease& operator=(const ScratchLease&) = delete;
    Scratch& operator*() const { return *s_; }
    Scratch* operator->() const { return s_; }

   private:
    const Hnsw& h_;
    Scratch* s_;
  };
  void write_lock();
  void write_unlock() { shape_.unlock(); }
  void read_lock() const;
  void read_unlock() const { shape_.unlock_shared(); }
  std::mutex& node_lock(size_t s) const { return node_locks_[s & (kStripes - 1)]; }

  // parameters
  size_t dim_, dpad_, dcode_, M_, M0_, efc_, bsize_;
  Metric metric_;
  double level_mult_;
  std::mt19937_64 rng_;
  bool readonly_ = false;
  // A filtered search scans the allowed slots exactly when there are at most
  // exact_min_ of them, or when n_allowed^2 <= exact_scale_ * n_live: the scan
  // costs ~n_allowed exact distances while a filtered walk costs ~(unfiltered
  // walk) * n_live / n_allowed, so they break even near n_allowed ~ sqrt(c * n_live).
  // Measured with benchmarks/hnsw_filters.py on GloVe: the paths cross near 5%
  // of 399k (~21k rows) and near 10% of 100k, i.e. c ~ 1200.
  size_t exact_min_ = 1000;
  double exact_scale_ = 1200.0;
  // The re-rank covers every candidate whose error-bounded code distance can
  // still enter the top k; rerank_ > 0 also re-ranks at least rerank_ * k.
  size_t rerank_ = 0;

  // storage
  Buffer blocks_, vectors_, labels_, levels_, code_aux_;
  std::vector<uint32_t*> upper_;  // per slot, nullptr for level 0 nodes
  bool upper_owned_ = true;
  // codes: centre 0 is the origin, centre 1 the first batch's mean (mu); each
  // dpad_ long, zero in the padding.
  std::vector<float> centres_;
  size_t n_centres_ = 0;
  size_t caux_ = 0, naux_ = 0;  // per-vector floats: offset in the block, count
  bool aux_apart_ = false;      // a compact copy of them is kept (see code_aux)
  float ref_delta_ = 0.f;      // median code step of the first batch
  float z_ = 4.f;
  bool float_walk_ = false;
  size_t unchecked_ = 0;       // vectors added since the guard last ran
  GuardReport guard_;
  std::mt19937_64 guard_rng_;
  size_t capacity_ = 0, n_slots_ = 0, n_live_ = 0;
  std::vector<uint32_t> free_;
  std::unordered_map<int64_t, uint32_t> slot_of_;
  // Entry point and top level packed in one word so readers never see a
  // level that the entry node does not have: (level + 1) << 32 | entry slot.
  std::atomic<uint64_t> top_{kNone};
  std::mutex entry_mutex_;  // held by an insert that raises the top level
  std::mutex mutate_mutex_;  // add() and remove() run one at a time

  // locks
  static constexpr size_t kStripes = 4096;
  mutable std::shared_mutex shape_;
  mutable std::atomic<int> writers_waiting_{0};
  mutable std::unique_ptr<std::mutex[]> node_locks_;
  mutable std::mutex pool_mutex_;
  mutable std::vector<Scratch*> pool_;
};

}  // namespace nk
