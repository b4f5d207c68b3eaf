// Drivers for exact search: split the queries over threads, the base into
// cache-sized blocks, run the fused scan kernels of the active ISA, and turn
// the surviving candidates into sorted results by their double-precision distances.
#include "index/flat.h"

#include "common/buffers.h"
#include "common/thread_pool.h"
#include "common/topk.h"
#include "kernels/distance.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <cmath>
#include <exception>
#include <system_error>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

namespace nk {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr size_t kChunkQueries = 1024;   // queries sharing one pass over the base
constexpr size_t kBlockBytes = 192 << 10;  // a block of base rows stays in L2

size_t block_rows(size_t d) {
  size_t rows = kBlockBytes / (d * sizeof(float));
  rows = std::min<size_t>(std::max<size_t>(rows, 48), 8192);
  return (rows + 47) / 48 * 48;  // whole register blocks of 6 (and 8, 16) rows
}

// A block of base rows as the kernels see it: contiguous rows, their score
// offsets, and (after filtering) the slot of each row.
struct Block {
  const float* rows = nullptr;
  const float* bterm = nullptr;
  const int64_t* map = nullptr;  // row -> slot when compacted, else slot = row0 + row
  size_t row0 = 0, nrows = 0;
  int64_t slot(size_t row) const { return map ? map[row] : static_cast<int64_t>(row0 + row); }
};

// Hands out base blocks; with a filter mask it copies the allowed rows of the
// block into a buffer so the kernels never score a row that is filtered out.
class BlockSource {
 public:
  BlockSource(const KnnJob& job, const float* bterm) : job_(job), bterm_(bterm) {}

  bool get(size_t b0, size_t b1, Block& out) {
    const size_t d = job_.d;
    out = Block{job_.base + b0 * d, bterm_ ? bterm_ + b0 : nullptr, nullptr, b0, b1 - b0};
    if (!job_.mask) return true;
    map_.clear();
    for (size_t i = b0; i < b1; ++i)
      if (job_.mask[i]) map_.push_back(static_cast<int64_t>(i));
    if (map_.empty()) return false;
    if (map_.size() == b1 - b0) return true;
    rows_.resize(map_.size() * d);
    if (bterm_) bt_.resize(map_.size());
    for (size_t i = 0; i < map_.size(); ++i) {
      std::copy_n(job_.base + static_cast<size_t>(map_[i]) * d, d, rows_.data() + i * d);
      if (bterm_) bt_[i] = bterm_[map_[i]];
    }
    out = Block{rows_.data(), bterm_ ? bt_.data() : nullptr, map_.data(), 0, map_.size()};
    return true;
  }

 private:
  const KnnJob& job_;
  const float* bterm_;
  std::vector<float> rows_, bt_;
  std::vector<int64_t> map_;
};

// Distances that decide the results, in double precision from the float32
// vectors: the squared difference (L2) or 1 - dot. A product of two floats is
// exact in double and a sum of d terms errs by ~d * 2^-53 relative, so two
// candidates are ordered by their true distances unless those agree to ~15
// digits. One portable loop with eight partial sums in a fixed order, so the
// value is the same whichever scan kernel (ISA) found the candidate.
double exact_distance64(Metric metric, const float* q, const float* row, size_t d) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t j = 0;
  if (metric == Metric::L2) {
    for (; j + 8 <= d; j += 8)
      for (int t = 0; t < 8; ++t) {
        double diff = static_cast<double>(q[j + t]) - static_cast<double>(row[j + t]);
        acc[t] += diff * diff;
      }
    for (int t = 0; j < d; ++j, ++t) {
      double diff = static_cast<double>(q[j]) - static_cast<double>(row[j]);
      acc[t] += diff * diff;
    }
  } else {
    for (; j + 8 <= d; j += 8)
      for (int t = 0; t < 8; ++t) acc[t] += static_cast<double>(q[j + t]) * row[j + t];
    for (int t = 0; j < d; ++j, ++t) acc[t] += static_cast<double>(q[j]) * row[j];
  }
  double sum = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
  return metric == Metric::L2 ? sum : 1.0 - sum;
}

// The distance as reported (float32), kept in a double.
double reported(double dist) { return static_cast<double>(static_cast<float>(dist)); }

// The smallest float >= x (the kernels compare float scores with it).
float round_up(double x) {
  if (!(x < static_cast<double>(std::numeric_limits<float>::max()))) return kInf;  // also NaN
  float f = static_cast<float>(x);
  return static_cast<double>(f) < x ? std::nextafter(f, kInf) : f;
}

// How far a kernel's float32 score (see kernels/flat_scan.h) may lie from the true score:
// the dot product and ||row||^2 are sums of d float32 products, each off by at
// most d * 2^-24 of the sum of the magnitudes (the classic gamma_d bound),
// which is at most ||row||^2 + 2 |row| |q| <= 2 (max_sqnorm + ||q||^2); the
// final multiply-add and the reverse selection's re-offsetting add a few
// roundings of the same size. qn = ||q||^2 in double.
double score_slack(size_t d, double qn, double max_sqnorm) {
  return 2.2 * (static_cast<double>(d) + 8.0) * 0x1p-24 * (max_sqnorm + qn) + 1e-30;
}

double max_sqnorm_of(const KnnJob& job) {
  float m = 0.0f;
  for (size_t i = 0; i < job.n; ++i) m = std::max(m, job.sqnorms[i]);
  return m;
}

// Score a row needs, at most, to possibly lie at distance `dist` or nearer:
// the true score is the distance minus ||q||^2 (L2) or minus 1 (ip), and the
// kernel's score is within the slack of it. Stored per query as offset =
// slack - ||q||^2 (or slack - 1), so the threshold is round_up(dist + offset).
double score_offset(const KnnJob& job, const float* q, double max_sqnorm) {
  double qn = 0.0;
  for (size_t j = 0; j < job.d; ++j) qn += static_cast<double>(q[j]) * q[j];
  return score_slack(job.d, qn, max_sqnorm) - (job.metric == Metric::L2 ? qn : 1.0);
}

// Top-k state for a run of queries: one max-heap per query of the k smallest
// (distance, slot) pairs among the candidates seen, the distance being the
// double-precision one rounded to float32 (the value reported). Ordering by
// the reported value, equal values by slot, is the order any merge of results
// (shards, threads) can reproduce. The kernels select by rounded score, so a
// candidate is offered whenever its score is within the slack of what the
// current k-th could have, and its distance decides: the result is the exact
// k nearest, for any kernel or thread count.
struct KnnState {
  size_t k = 0;
  int64_t self0 = -1;  // >= 0: query i of this run must not return slot self0 + i
  const KnnJob* job = nullptr;
  const float* queries = nullptr;  // vector of local query i: queries + i * d
  std::vector<double> hd;
  std::vector<int64_t> hi;
  std::vector<uint32_t> cnt;
  std::vector<float> thr;      // per query (padded lanes: -inf, never pushed)
  std::vector<double> offset;  // per query, see score_offset

  // Queries [0, nq) of this run start at `queries`.
  void reset(const KnnJob& j, const float* qs, size_t nq, size_t padded, double max_sqnorm) {
    job = &j;
    queries = qs;
    hd.assign(nq * k, 0.0);
    hi.assign(nq * k, 0);
    cnt.assign(nq, 0);
    thr.assign(padded, -kInf);
    std::fill_n(thr.begin(), nq, kInf);
    offset.resize(nq);
    for (size_t i = 0; i < nq; ++i) offset[i] = score_offset(j, qs + i * j.d, max_sqnorm);
  }
};

// What a kernel's push callback receives: the caller's state, the first
// query of the tile (or the query, for scan_one) and the current block.
struct ScanCtx {
  void* state;
  size_t q0;
  const Block* blk;
};

// Offers (dist, id) to the top-k of query q and updates its threshold. The
// heap (common/topk.h) keeps the k smallest (dist, id) pairs, so equal
// distances are settled by id and the result does not depend on the order of
// arrival (threads).
void heap_insert(KnnState& st, size_t q, double dist, int64_t id) {
  const size_t k = st.k;
  uint32_t& n = st.cnt[q];
  if (!heap_push_by_id(st.hd.data() + q * k, st.hi.data() + q * k, n, k, dist, id)) return;
  // Rows rounding to the k-th's float32 value may tie with it: their distance
  // is below the next float up.
  if (n == k)
    st.thr[q] = round_up(static_cast<double>(std::nextafter(static_cast<float>(st.hd[q * k]), kInf)) +
                         st.offset[q]);
}

void knn_push(void* vctx, size_t lane, float score, size_t row) {
  auto* c = static_cast<ScanCtx*>(vctx);
  KnnState& st = *static_cast<KnnState*>(c->state);
  const size_t q = c->q0 + lane;
  if (!(score <= st.thr[q])) return;  // the threshold dropped since the kernel compared
  const int64_t slot = c->blk->slot(row);
  if (st.self0 >= 0 && slot == st.self0 + static_cast<int64_t>(q)) return;
  const size_t d = st.job->d;
  heap_insert(st, q, reported(exact_distance64(st.job->metric, st.queries + q * d,
                                                c->blk->rows + row * d, d)), slot);
}

// Reverse push of the symmetric all-pairs scan: row (a base row) gains the
// query vector (lane) as a candidate. Heaps are indexed by row number there.
void knn_push_reverse(void* vctx, size_t lane, float score, size_t row) {
  auto* c = static_cast<ScanCtx*>(vctx);
  KnnState& st = *static_cast<KnnState*>(c->state);
  const size_t r = static_cast<size_t>(c->blk->slot(row)), q = c->q0 + lane;
  if (!(score <= st.thr[r])) return;
  const size_t d = st.job->d;
  heap_insert(st, r, reported(exact_distance64(st.job->metric, st.queries + q * d,
                                                c->blk->rows + row * d, d)),
              static_cast<int64_t>(q));
}

// Row i's results from its heaps in one or more states (one per thread of a
// split scan): the k smallest (distance, slot) of all, which is the same set
// for any split; sorted, labels applied, padded.
void finish_merged(const KnnJob& job, const KnnState* states, size_t nstates, size_t local,
                   size_t global, std::vector<std::pair<double, int64_t>>& tmp) {
  const size_t k = job.k;
  tmp.clear();
  for (size_t s = 0; s < nstates; ++s) {
    const KnnState& st = states[s];
    for (size_t c = 0; c < st.cnt[local]; ++c)
      tmp.emplace_back(st.hd[local * st.k + c], st.hi[local * st.k + c]);
  }
  std::sort(tmp.begin(), tmp.end());
  int64_t* ids = job.out_ids + global * k;
  float* dist = job.out_dist + global * k;
  const size_t m = std::min(k, tmp.size());
  for (size_t c = 0; c < m; ++c) {
    dist[c] = static_cast<float>(tmp[c].first);
    ids[c] = job.labels ? job.labels[tmp[c].second] : tmp[c].second;
  }
  for (size_t c = m; c < k; ++c) {
    dist[c] = kInf;
    ids[c] = -1;
  }
}

// Score offsets and scale for the metric (see kernels/flat_scan.h).
const float* bterm_for(const KnnJob& job) { return job.metric == Metric::L2 ? job.sqnorms : nullptr; }
float scale_for(const KnnJob& job) { return job.metric == Metric::L2 ? -2.0f : -1.0f; }

// Packs queries [c0, c1) into tiles of T lanes, dimension-major within a
// tile (see FlatKernels::scan_tiles); padding lanes are zero.
void pack_queries(const float* queries, size_t c0, size_t c1, size_t d, size_t T,
                  AlignedFloats& qp) {
  const size_t tiles = (c1 - c0 + T - 1) / T;
  qp.assign(tiles * T * d, true);
  for (size_t q = 0; q < c1 - c0; ++q) {
    float* dst = qp.data() + (q / T) * T * d + (q % T);
    const float* src = queries + (c0 + q) * d;
    for (size_t j = 0; j < d; ++j) dst[j * T] = src[j];
  }
}

// Queries [qa, qb) against the whole base, one pass over the base per chunk
// of queries. setup(c0, nc, padded) prepares the state of a chunk and returns
// its thresholds; finish(c0, nc) collects the chunk's results.
template <class Setup, class Finish>
void scan_queries(const KnnJob& job, const FlatKernels& F, size_t qa, size_t qb, void* state,
                  PushFn push, Setup setup, Finish finish, StopToken& stop, size_t ba = 0,
                  size_t bb = SIZE_MAX) {
  bb = std::min(bb, job.n);
  const size_t d = job.d, T = F.tile;
  const float* bterm = bterm_for(job);
  const float scale = scale_for(job);
  // Below ~3/8 of a tile, idle lanes cost more than scanning query by query
  // (measured: AVX-512 breaks even at ~24 queries of 64 lanes).
  const bool tiled = (qb - qa) * 8 >= 3 * T;
  const size_t brows = block_rows(d);
  BlockSource source(job, bterm);
  AlignedFloats qp;
  for (size_t c0 = qa; c0 < qb; c0 += kChunkQueries) {
    const size_t c1 = std::min(qb, c0 + kChunkQueries), nc = c1 - c0;
    const size_t tiles = (nc + T - 1) / T;
    float* thr = setup(c0, nc, tiles * T);
    if (tiled) pack_queries(job.queries, c0, c1, d, T, qp);
    Block blk;
    ScanCtx ctx{state, 0, &blk};
    for (size_t b0 = ba; b0 < bb; b0 += brows) {
      if (stop.stop_requested()) return;
      if (!source.get(b0, std::min(bb, b0 + brows), blk)) continue;
      if (tiled) {
        ctx.q0 = 0;
        F.scan_tiles(qp.data(), tiles, blk.rows, blk.nrows, d, blk.bterm, scale, thr, push, &ctx,
                     nullptr);
      } else {
        for (size_t q = 0; q < nc; ++q) {
          ctx.q0 = q;
          F.scan_one(job.queries + (c0 + q) * d, blk.rows, blk.nrows, d, blk.bterm, scale,
                     thr + q, push, &ctx);
        }
      }
    }
    finish(c0, nc);
  }
}

// Range search state: every row whose score passes the query's fixed
// threshold, kept as (slot, score) candidates.
struct RangeState {
  std::vector<std::vector<int64_t>> cand;  // per query of the chunk
  std::vector<float> thr;
};

void range_push(void* vctx, size_t lane, float, size_t row) {
  auto* c = static_cast<ScanCtx*>(vctx);
  static_cast<RangeState*>(c->state)->cand[c->q0 + lane].push_back(c->blk->slot(row));
}

// Threads split the queries in whole tiles when there are enough of them,
// else one by one (each thread then scans its few queries separately).
size_t query_grain(const KnnJob& job, const FlatKernels& F) {
  return job.nq >= 2 * F.tile ? F.tile : 1;
}

// The all-pairs graph (queries are the base, self excluded) computes each
// pair once: chunk c of queries meets only rows from its own start onwards,
// and every score against a row beyond the chunk also goes to that row's own
// top-k (the reverse selection), which halves the multiply-adds. Work items
// (chunk, block of rows) are dealt to threads in turn; each thread keeps
// private top-k state for all n rows (memory O(threads * n * k)), merged at
// the end, so no locks are needed.
void knn_self_symmetric(const KnnJob& job) {
  const FlatKernels& F = flat_kernels();
  const size_t n = job.n, d = job.d, T = F.tile;
  const float* bterm = bterm_for(job);
  const float scale = scale_for(job);
  const size_t C = kChunkQueries, brows = block_rows(d);
  // Work items (chunk, block) are numbered in order and dealt round-robin;
  // they are enumerated on the fly rather than stored (there are ~n^2 / 10^6).
  size_t n_items = 0;
  for (size_t c0 = 0; c0 < n; c0 += C) n_items += (n - c0 + brows - 1) / brows;
  // Each worker holds top-k state for all n rows: no more workers than cores.
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t workers = std::min({static_cast<size_t>(std::max(job.threads, 1)), cores,
                                   n_items});
  // Lane offsets of the reverse scores: ||q||^2 (L2) or 0; +inf on padding lanes.
  std::vector<float> qbterm(n + C, kInf);
  if (bterm)
    std::copy_n(bterm, n, qbterm.begin());
  else
    std::fill_n(qbterm.begin(), n, 0.0f);
  const double max_sqnorm = max_sqnorm_of(job);
  std::vector<KnnState> states(workers);
  StopToken stop;
  parallel_ranges(workers, static_cast<int>(workers), 1, [&](size_t wa, size_t wb) {
    for (size_t w = wa; w < wb; ++w) {
      KnnState& st = states[w];
      st.k = std::min(job.k, n);  // a heap never holds more than n
      st.self0 = 0;
      st.reset(job, job.queries, n, n + C, max_sqnorm);
      AlignedFloats qp;
      size_t packed = SIZE_MAX;
      Block blk;
      ScanCtx ctx{&st, 0, &blk};
      size_t it = 0;
      for (size_t c0 = 0; c0 < n; c0 += C) {
        const size_t c1 = std::min(n, c0 + C), tiles = (c1 - c0 + T - 1) / T;
        ctx.q0 = c0;
        for (size_t b0 = c0; b0 < n; b0 += brows, ++it) {
          if (it % workers != w) continue;
          if (stop.stop_requested()) return;
          if (packed != c0) {
            pack_queries(job.queries, c0, c1, d, T, qp);
            packed = c0;
          }
          const size_t b1 = std::min(n, b0 + brows);
          // Rows inside the chunk meet all its queries anyway: forward only.
          // Rows beyond it: forward and reverse.
          for (int part = 0; part < 2; ++part) {
            const size_t r0 = part == 0 ? b0 : std::max(b0, c1);
            const size_t r1 = part == 0 ? std::min(b1, c1) : b1;
            if (r0 >= r1) continue;
            blk = Block{job.base + r0 * d, bterm ? bterm + r0 : nullptr, nullptr, r0, r1 - r0};
            Reverse rev{qbterm.data() + c0, st.thr.data() + r0, knn_push_reverse};
            F.scan_tiles(qp.data(), tiles, blk.rows, blk.nrows, d, blk.bterm, scale,
                         st.thr.data() + c0, knn_push, &ctx, part == 0 ? nullptr : &rev);
          }
        }
      }
    }
  }, &stop);
  parallel_ranges(n, job.threads, 1, [&](size_t a, size_t b) {
    std::vector<std::pair<double, int64_t>> tmp;
    for (size_t i = a; i < b; ++i) finish_merged(job, states.data(), states.size(), i, i, tmp);
  });
}

// Few queries, several threads: split the base instead of the queries. Each
// thread scans its share of the rows for every query with its own top-k; the
// states are merged like those of the symmetric scan, which keeps the exact k
// smallest (distance, slot), so the result equals the one-thread result.
bool knn_base_split(const KnnJob& job, const FlatKernels& F) {
  const size_t brows = block_rows(job.d);
  // Each worker gets at least ~4 MB of rows, or starting it costs more than it saves.
  const size_t min_rows = std::max(brows, (size_t(1) << 20) / job.d);
  const size_t workers = std::min<size_t>(std::max(job.threads, 1), job.n / min_rows);
  if (workers < 2 || job.exclude_self || job.nq * 8 >= 3 * F.tile * workers ||
      job.nq > kChunkQueries)
    return false;
  const size_t share = (job.n / workers + brows - 1) / brows * brows;
  const double max_sqnorm = max_sqnorm_of(job);
  std::vector<KnnState> states(workers);
  StopToken stop;
  parallel_ranges(workers, static_cast<int>(workers), 1, [&](size_t wa, size_t wb) {
    for (size_t w = wa; w < wb; ++w) {
      KnnState& st = states[w];
      st.k = std::max<size_t>(std::min(job.k, job.n), 1);
      auto setup = [&](size_t c0, size_t nc, size_t padded) {
        st.reset(job, job.queries + c0 * job.d, nc, padded, max_sqnorm);
        return st.thr.data();
      };
      scan_queries(job, F, 0, job.nq, &st, knn_push, setup, [](size_t, size_t) {}, stop,
                   w * share, w + 1 == workers ? job.n : (w + 1) * share);
    }
  }, &stop);
  std::vector<std::pair<double, int64_t>> tmp;
  for (size_t i = 0; i < job.nq; ++i) finish_merged(job, states.data(), states.size(), i, i, tmp);
  return true;
}

}  // namespace

void knn_search(const KnnJob& job) {
  const FlatKernels& F = flat_kernels();
  if (job.exclude_self && !job.mask && job.n >= F.tile) {
    knn_self_symmetric(job);
    return;
  }
  if (knn_base_split(job, F)) return;
  const double max_sqnorm = max_sqnorm_of(job);
  StopToken stop;
  parallel_ranges(job.nq, job.threads, query_grain(job, F), [&](size_t qa, size_t qb) {
    KnnState st;
    st.k = std::max<size_t>(std::min(job.k, job.n), 1);  // a heap never holds more than n
    std::vector<std::pair<double, int64_t>> tmp;
    auto setup = [&](size_t c0, size_t nc, size_t padded) {
      st.self0 = job.exclude_self ? static_cast<int64_t>(c0) : -1;
      st.reset(job, job.queries + c0 * job.d, nc, padded, max_sqnorm);
      return st.thr.data();
    };
    auto finish = [&](size_t c0, size_t nc) {
      for (size_t q = 0; q < nc; ++q) finish_merged(job, &st, 1, q, c0 + q, tmp);
    };
    scan_queries(job, F, qa, qb, &st, knn_push, setup, finish, stop);
  }, &stop);
}

void range_search(const KnnJob& job, float radius, RangeResult& out) {
  const FlatKernels& F = flat_kernels();
  const size_t d = job.d;
  // The kernels' scores are rounded, so the prefilter keeps every row whose
  // score is within the slack of the radius and the exact distance decides:
  // a row is returned iff its distance, rounded to float32, is < radius (the
  // same value search() reports).
  const double max_sqnorm = max_sqnorm_of(job);
  std::vector<std::vector<std::pair<double, int64_t>>> found(job.nq);
  StopToken stop;
  parallel_ranges(job.nq, job.threads, query_grain(job, F), [&](size_t qa, size_t qb) {
    RangeState st;
    auto setup = [&](size_t c0, size_t nc, size_t padded) {
      st.cand.assign(nc, {});
      st.thr.assign(padded, -kInf);
      for (size_t q = 0; q < nc; ++q)
        st.thr[q] = round_up(radius + score_offset(job, job.queries + (c0 + q) * d, max_sqnorm));
      return st.thr.data();
    };
    auto finish = [&](size_t c0, size_t nc) {
      for (size_t q = 0; q < nc; ++q) {
        const float* qv = job.queries + (c0 + q) * d;
        auto& res = found[c0 + q];
        for (int64_t slot : st.cand[q]) {
          double dist = reported(exact_distance64(job.metric, qv, job.base + slot * d, d));
          if (dist < radius) res.emplace_back(dist, slot);
        }
        std::sort(res.begin(), res.end());
      }
    };
    scan_queries(job, F, qa, qb, &st, range_push, setup, finish, stop);
  }, &stop);
  size_t total = 0;
  out.lims[0] = 0;
  for (size_t q = 0; q < job.nq; ++q) {
    total += found[q].size();
    out.lims[q + 1] = static_cast<int64_t>(total);
  }
  out.total = total;
  out.ids = new int64_t[total ? total : 1];
  out.dist = new float[total ? total : 1];
  for (size_t q = 0, o = 0; q < job.nq; ++q)
    for (auto& [dist, slot] : found[q]) {
      out.ids[o] = job.labels ? job.labels[slot] : slot;
      out.dist[o++] = static_cast<float>(dist);
    }
}

}  // namespace nk
