// Drivers for exact search: split the queries over threads, the base into
// cache-sized blocks, run the fused scan kernels of the active ISA, and turn
// the surviving candidates into sorted results with exact float32 distances.
#include "flat.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

namespace nk {

const FlatKernels& flat_kernels() {
  switch (active_isa()) {
#if defined(NEARKIT_X86)
    case Isa::AVX512: return kAvx512Flat;
    case Isa::AVX2: return kAvx2Flat;
#endif
    default: return kScalarFlat;  // also arm64: the scalar loops vectorise with NEON
  }
}

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr size_t kChunkQueries = 1024;   // queries sharing one pass over the base
constexpr size_t kBlockBytes = 192 << 10;  // base rows per block: stays in L2

size_t block_rows(size_t d) {
  size_t rows = kBlockBytes / (d * sizeof(float));
  rows = std::max<size_t>(rows, 96);
  return (rows + 15) / 16 * 16;
}

// Runs f(begin, end) over [0, n) split into `threads` contiguous ranges whose
// sizes are multiples of `grain`; rethrows the first exception on this thread.
template <class F>
void parallel_ranges(size_t n, int threads, size_t grain, F f) {
  size_t per = (n + threads - 1) / std::max(threads, 1);
  per = (per + grain - 1) / grain * grain;
  size_t parts = per ? (n + per - 1) / per : 0;
  if (parts <= 1) {
    f(size_t(0), n);
    return;
  }
  std::vector<std::exception_ptr> errors(parts);
  std::vector<std::thread> pool;
  for (size_t p = 1; p < parts; ++p)
    pool.emplace_back([&, p] {
      try {
        f(p * per, std::min(n, (p + 1) * per));
      } catch (...) {
        errors[p] = std::current_exception();
      }
    });
  try {
    f(0, per);
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
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

// Top-k state for a run of queries: one max-heap of scores per query.
struct KnnState {
  size_t k = 0;
  int64_t self0 = -1;  // >= 0: query i of this run must not return slot self0 + i
  std::vector<float> hs;
  std::vector<int64_t> hi;
  std::vector<uint32_t> cnt;
  std::vector<float> thr;  // per query (padded lanes: -inf, never pushed)

  void reset(size_t nq, size_t padded) {
    hs.assign(nq * k, 0.0f);
    hi.assign(nq * k, 0);
    cnt.assign(nq, 0);
    thr.assign(padded, -kInf);
    std::fill_n(thr.begin(), nq, kInf);
  }
};

// What a kernel's push callback receives: the caller's state, the first
// query of the tile (or the query, for scan_one) and the current block.
struct ScanCtx {
  void* state;
  size_t q0;
  const Block* blk;
};

void knn_push(void* vctx, size_t lane, float score, size_t row) {
  auto* c = static_cast<ScanCtx*>(vctx);
  KnnState& st = *static_cast<KnnState*>(c->state);
  const size_t q = c->q0 + lane;
  const int64_t slot = c->blk->slot(row);
  if (st.self0 >= 0 && slot == st.self0 + static_cast<int64_t>(q)) return;
  const size_t k = st.k;
  float* hs = st.hs.data() + q * k;
  int64_t* hi = st.hi.data() + q * k;
  uint32_t& n = st.cnt[q];
  size_t i;
  if (n < k) {  // sift up
    i = n++;
    while (i > 0) {
      size_t parent = (i - 1) / 2;
      if (hs[parent] >= score) break;
      hs[i] = hs[parent];
      hi[i] = hi[parent];
      i = parent;
    }
  } else {  // replace the largest, sift down
    i = 0;
    for (;;) {
      size_t child = 2 * i + 1;
      if (child >= k) break;
      if (child + 1 < k && hs[child + 1] > hs[child]) ++child;
      if (hs[child] <= score) break;
      hs[i] = hs[child];
      hi[i] = hi[child];
      i = child;
    }
  }
  hs[i] = score;
  hi[i] = slot;
  st.thr[q] = n < k ? kInf : hs[0];
}

float exact_distance(const Kernels& K, Metric metric, const float* q, const float* row, size_t d) {
  return metric == Metric::L2 ? K.l2sq(q, row, d) : 1.0f - K.dot(q, row, d);
}

// Exact distances of the survivors, sorted, labels applied, padded.
void finish_query(const KnnJob& job, const Kernels& K, const KnnState& st, size_t local,
                  size_t global, std::vector<std::pair<float, int64_t>>& tmp) {
  const size_t k = job.k, d = job.d;
  const float* q = job.queries + global * d;
  tmp.clear();
  for (size_t i = 0; i < st.cnt[local]; ++i) {
    int64_t slot = st.hi[local * k + i];
    tmp.emplace_back(exact_distance(K, job.metric, q, job.base + slot * d, d), slot);
  }
  std::sort(tmp.begin(), tmp.end());
  int64_t* ids = job.out_ids + global * k;
  float* dist = job.out_dist + global * k;
  size_t i = 0;
  for (; i < tmp.size(); ++i) {
    dist[i] = tmp[i].first;
    ids[i] = job.labels ? job.labels[tmp[i].second] : tmp[i].second;
  }
  for (; i < k; ++i) {
    dist[i] = kInf;
    ids[i] = -1;
  }
}

// Score offsets and scale for the metric (see flat.h).
const float* bterm_for(const KnnJob& job) { return job.metric == Metric::L2 ? job.sqnorms : nullptr; }
float scale_for(const KnnJob& job) { return job.metric == Metric::L2 ? -2.0f : -1.0f; }

// Queries [qa, qb) against the whole base, one pass over the base per chunk
// of queries. setup(c0, nc, padded) prepares the state of a chunk and returns
// its thresholds; finish(c0, nc) collects the chunk's results.
template <class Setup, class Finish>
void scan_queries(const KnnJob& job, const FlatKernels& F, size_t qa, size_t qb, void* state,
                  PushFn push, Setup setup, Finish finish) {
  const size_t d = job.d, T = F.tile;
  const float* bterm = bterm_for(job);
  const float scale = scale_for(job);
  const size_t brows = block_rows(d);
  const bool tiled = (qb - qa) * 4 >= T;  // below that, the lanes would mostly idle
  BlockSource source(job, bterm);
  std::vector<float> qp;
  for (size_t c0 = qa; c0 < qb; c0 += kChunkQueries) {
    const size_t c1 = std::min(qb, c0 + kChunkQueries), nc = c1 - c0;
    const size_t tiles = (nc + T - 1) / T;
    float* thr = setup(c0, nc, tiles * T);
    if (tiled) {
      qp.assign(tiles * T * d, 0.0f);
      for (size_t q = 0; q < nc; ++q) {
        float* dst = qp.data() + (q / T) * T * d + (q % T);
        const float* src = job.queries + (c0 + q) * d;
        for (size_t j = 0; j < d; ++j) dst[j * T] = src[j];
      }
    }
    Block blk;
    ScanCtx ctx{state, 0, &blk};
    for (size_t b0 = 0; b0 < job.n; b0 += brows) {
      if (!source.get(b0, std::min(job.n, b0 + brows), blk)) continue;
      if (tiled) {
        for (size_t t = 0; t < tiles; ++t) {
          ctx.q0 = t * T;
          F.scan_tile(qp.data() + t * T * d, blk.rows, blk.nrows, d, blk.bterm, scale,
                      thr + t * T, push, &ctx);
        }
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

}  // namespace

void knn_search(const KnnJob& job) {
  const FlatKernels& F = flat_kernels();
  const Kernels& K = kernels();
  parallel_ranges(job.nq, job.threads, F.tile, [&](size_t qa, size_t qb) {
    KnnState st;
    st.k = job.k;
    std::vector<std::pair<float, int64_t>> tmp;
    auto setup = [&](size_t c0, size_t nc, size_t padded) {
      st.self0 = job.exclude_self ? static_cast<int64_t>(c0) : -1;
      st.reset(nc, padded);
      return st.thr.data();
    };
    auto finish = [&](size_t c0, size_t nc) {
      for (size_t q = 0; q < nc; ++q) finish_query(job, K, st, q, c0 + q, tmp);
    };
    scan_queries(job, F, qa, qb, &st, knn_push, setup, finish);
  });
}

void range_search(const KnnJob& job, float radius, RangeResult& out) {
  const FlatKernels& F = flat_kernels();
  const Kernels& K = kernels();
  const size_t d = job.d;
  // The kernels' scores come from a different summation order than the exact
  // distances, so the prefilter keeps a relative slack and the exact float32
  // distance decides: a row is returned iff distance < radius.
  float max_sqnorm = 0.0f;
  for (size_t i = 0; i < job.n; ++i) max_sqnorm = std::max(max_sqnorm, job.sqnorms[i]);
  std::vector<std::vector<std::pair<float, int64_t>>> found(job.nq);
  parallel_ranges(job.nq, job.threads, F.tile, [&](size_t qa, size_t qb) {
    RangeState st;
    auto setup = [&](size_t c0, size_t nc, size_t padded) {
      st.cand.assign(nc, {});
      st.thr.assign(padded, -kInf);
      for (size_t q = 0; q < nc; ++q) {
        const float* qv = job.queries + (c0 + q) * d;
        float qn = K.dot(qv, qv, d);
        float slack = 1e-4f * (qn + max_sqnorm) + 1e-6f;
        st.thr[q] = (job.metric == Metric::L2 ? radius - qn : radius - 1.0f) + slack;
      }
      return st.thr.data();
    };
    auto finish = [&](size_t c0, size_t nc) {
      for (size_t q = 0; q < nc; ++q) {
        const float* qv = job.queries + (c0 + q) * d;
        auto& res = found[c0 + q];
        for (int64_t slot : st.cand[q]) {
          float dist = exact_distance(K, job.metric, qv, job.base + slot * d, d);
          if (dist < radius) res.emplace_back(dist, slot);
        }
        std::sort(res.begin(), res.end());
      }
    };
    scan_queries(job, F, qa, qb, &st, range_push, setup, finish);
  });
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
      out.dist[o++] = dist;
    }
}

}  // namespace nk
