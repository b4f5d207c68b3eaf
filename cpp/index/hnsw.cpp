#include "index/hnsw.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <thread>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common/thread_pool.h"
#include "common/topk.h"

namespace nk {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Closest first; among equal distances the most recently inserted node (the
// highest slot) first, as hnswlib's heuristic orders them. Exact ties are
// common on sparse, binary or duplicated data, and taking the oldest nodes
// first sent every later node's links to the same few early nodes: their
// lists filled with copies of each other and were pruned to them, and the
// walk lost its way out (l2 on sparse vectors, 20k x 32: recall@1 0.925 with
// the oldest first, 0.97 with the newest; hnswlib 0.98-0.99).
void sort_closest_first(std::vector<std::pair<float, uint32_t>>& pool) {
  std::sort(pool.begin(), pool.end(), [](const auto& a, const auto& b) {
    return a.first < b.first || (a.first == b.first && a.second > b.second);
  });
}

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

inline uint32_t load_relaxed(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline uint32_t load_acquire(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void store_relaxed(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
inline void store_release(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

inline uint64_t pack_top(uint32_t entry, int level) {
  return (uint64_t(uint32_t(level + 1)) << 32) | entry;
}
inline uint32_t top_entry(uint64_t t) { return uint32_t(t & 0xFFFFFFFFu); }
inline int top_level(uint64_t t) { return int(uint32_t(t >> 32)) - 1; }

}  // namespace

// ---------------------------------------------------------------- Buffer

void Buffer::grow(size_t bytes) {
  if (!owned_) throw std::runtime_error("cannot grow a memory-mapped index");
  if (bytes <= bytes_) return;
  // Large arrays go on 2 MiB-aligned memory advised for transparent huge
  // pages: a query touches a few thousand random cache lines, and with 4 KiB
  // pages nearly every one of them is also a TLB miss.
  constexpr size_t kHuge = size_t(2) << 20;
  const bool huge = bytes >= 2 * kHuge;
  size_t align = huge ? kHuge : 64;
  size_t alloc = round_up(bytes, align);
  uint8_t* p = nullptr;
  size_t mapped = 0;
  if (huge) {
    // A fresh anonymous mapping is zero already and takes memory only where it is
    // written: the capacity doubling reserves ahead of use without filling it.
    // Over-map by one huge page to align the start.
    size_t span = alloc + kHuge;
    void* m = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    uintptr_t start = (reinterpret_cast<uintptr_t>(m) + kHuge - 1) & ~uintptr_t(kHuge - 1);
    size_t head = start - reinterpret_cast<uintptr_t>(m);
    if (head) munmap(m, head);
    if (span - head > alloc) munmap(reinterpret_cast<uint8_t*>(start) + alloc, span - head - alloc);
    p = reinterpret_cast<uint8_t*>(start);
    mapped = alloc;
#if defined(MADV_HUGEPAGE)
    madvise(p, alloc, MADV_HUGEPAGE);
#endif
  } else {
    p = static_cast<uint8_t*>(std::aligned_alloc(align, alloc));
    if (!p) throw std::bad_alloc();
  }
  if (bytes_) std::memcpy(p, data_, bytes_);
  if (!mapped) std::memset(p + bytes_, 0, alloc - bytes_);
  release();
  data_ = p;
  bytes_ = bytes;
  mapped_ = mapped;
}

void Buffer::release() {
  if (owned_ && mapped_) {
    munmap(data_, mapped_);
  } else if (owned_) {
    std::free(data_);
  }
  data_ = nullptr;
  bytes_ = 0;
  mapped_ = 0;
  owned_ = true;
}

// ---------------------------------------------------------------- scratch

struct Hnsw::Query {
  std::vector<int16_t> qi;   // q (ip) or q - mu (l2) ~= qscale * qi, zero in the padding
  std::vector<float> xbuf;   // prepare_slot: the decoded vector
  mutable float cs[kMaxCentres];  // per centre: l2 |q - c_a|^2, ip 1 - q.c_a
  mutable uint32_t ready = 0;     // bit a: cs[a] computed (on first use)
  float qscale = 0.f, sum = 0.f;
  float err = 0.f;           // error scale of q's side (see code_error)
  const float* xf = nullptr;  // the float query (exact distances)
  bool exact = false, l2 = true;
  const CodeKernels* ck = nullptr;
  const Kernels* K = nullptr;
};

// Per-thread working memory, pooled so that searches allocate nothing.
struct Hnsw::Scratch {
  std::vector<uint64_t> visited;  // one bit per slot, cleared per layer search
  std::vector<std::pair<float, uint32_t>> cand, res;  // heaps
  std::vector<std::pair<float, uint32_t>> pool, pool2;
  std::vector<uint32_t> todo, sel, sel2, links;
  std::vector<std::vector<uint32_t>> per_level;  // insert: chosen neighbours per layer
  std::vector<float> qnorm, dbuf;
  Query q, qn;
  std::vector<Query> kept;  // select_neighbours: prepared form of each kept neighbour

  // A bitset (n/8 bytes) stays in cache far better than a byte or epoch per
  // slot; clearing it costs a memset of n/8 bytes per layer search.
  void begin(size_t n_slots) {
    size_t words = (n_slots + 63) / 64;
    if (visited.size() < words) visited.resize(words + words / 4);
    std::memset(visited.data(), 0, words * sizeof(uint64_t));
  }
  bool test_and_set(uint32_t s) {
    uint64_t& w = visited[s >> 6];
    uint64_t bit = uint64_t(1) << (s & 63);
    bool seen = (w & bit) != 0;
    w |= bit;
    return seen;
  }
};

Hnsw::Scratch* Hnsw::acquire() const {
  {
    std::lock_guard<std::mutex> g(pool_mutex_);
    if (!pool_.empty()) {
      Scratch* s = pool_.back();
      pool_.pop_back();
      return s;
    }
  }
  auto* s = new Scratch();
  s->kept.resize(M0_ + 1);
  for (Query* q : {&s->q, &s->qn}) {
    q->qi.assign(dpad_, 0);
    q->xbuf.assign(dpad_, 0.f);
  }
  for (Query& q : s->kept) {
    q.qi.assign(dpad_, 0);
    q.xbuf.assign(dpad_, 0.f);
  }
  s->qnorm.assign(dim_, 0.f);
  s->todo.resize(M0_ + 1);
  s->dbuf.resize(M0_ + 1);
  s->links.resize(M0_ + 1);
  return s;
}

void Hnsw::release(Scratch* s) const {
  std::lock_guard<std::mutex> g(pool_mutex_);
  pool_.push_back(s);
}

// Writers announce themselves so that a steady stream of searches cannot
// starve add()/remove() (the default rwlock prefers readers).
void Hnsw::write_lock() {
  writers_waiting_.fetch_add(1);
  shape_.lock();
  writers_waiting_.fetch_sub(1);
}

void Hnsw::read_lock() const {
  while (writers_waiting_.load(std::memory_order_relaxed) > 0) std::this_thread::yield();
  shape_.lock_shared();
}

// ---------------------------------------------------------------- setup

Hnsw::Hnsw(size_t dim, Metric metric, size_t M, size_t ef_construction, uint64_t seed)
    : dim_(dim), M_(M), efc_(std::max(ef_construction, M)), metric_(metric), rng_(seed),
      guard_rng_(seed ^ 0x9E3779B97F4A7C15ull) {
  if (dim == 0) throw std::invalid_argument("dim must be positive");
  if (M < 2 || M > 2048) throw std::invalid_argument("M must be between 2 and 2048");
  M0_ = 2 * M;
  dpad_ = round_up(dim, 16);
  caux_ = round_up(dim, 4);
  naux_ = metric == Metric::L2 ? 3 : 2;
  dcode_ = caux_ + 4 * naux_;
  bsize_ = round_up(dcode_ + 4 + 4 * M0_, 64);
  // Does reading the floats and the centre (in the header word) take a cache line
  // more than the code alone? Then keep them apart (see code_aux).
  aux_apart_ = round_up(dcode_ + 4, 64) > round_up(dpad_, 64);
  level_mult_ = 1.0 / std::log(double(M));
  centres_.assign(kMaxCentres * dpad_, 0.f);
  node_locks_.reset(new std::mutex[kStripes]);
}

Hnsw::~Hnsw() {
  if (upper_owned_)
    for (uint32_t* p : upper_) delete[] p;
  for (Scratch* s : pool_) delete s;
}

int Hnsw::random_level() {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double r = 1.0 - u(rng_);  // (0, 1]
  int level = int(-std::log(r) * level_mult_);
  return std::min(level, 60);
}

void Hnsw::reserve_locked(size_t slots) {
  if (slots <= capacity_) return;
  // Memory grows with use: doubling, from a first allocation of at most ~1 MiB
  // (a large dim must not reserve 1024 slots of it up front).
  const size_t first = std::max<size_t>(
      1, std::min<size_t>(1024, (size_t(1) << 20) / (bsize_ + dim_ * sizeof(float) + 9)));
  size_t cap = std::max({slots, capacity_ * 2, first});
  blocks_.grow(cap * bsize_);
  vectors_.grow(cap * dim_ * sizeof(float));
  labels_.grow(cap * sizeof(int64_t));
  levels_.grow(cap);
  if (aux_apart_) code_aux_.grow(cap * sizeof(CodeAux));
  for (size_t s = capacity_; s < cap; ++s) labels()[s] = -1;
  upper_.resize(cap, nullptr);
  capacity_ = cap;
}

// ---------------------------------------------------------------- codes

// Unit length for cosine (zero vectors stay zero), as metrics.normalize_rows.
void Hnsw::normalize(float* v) const {
  double n2 = 0;
  for (size_t j = 0; j < dim_; ++j) n2 += double(v[j]) * v[j];
  if (n2 <= 0) return;
  float inv = float(1.0 / std::sqrt(n2));
  for (size_t j = 0; j < dim_; ++j) v[j] *= inv;
}

inline uint32_t Hnsw::centre_of(size_t s) const {
  return load_relaxed(hdr(s)) >> kCentreShift;
}

// Encodes slot s from its float vector: the centre that leaves the narrowest
// residual (among near ties the closest one: distances are sums of terms of
// the size of |x - c|^2, whose float rounding must stay below the code error),
// then the residual's own offset and step.
void Hnsw::encode_slot(size_t s) {
  const float* x = vec(s);
  std::vector<float> lo(n_centres_), range(n_centres_);
  std::vector<double> far(n_centres_);
  float narrowest = kInf;
  for (size_t a = 0; a < n_centres_; ++a) {
    const float* c = centre(a);
    float mn = kInf, mx = -kInf;
    double n2 = 0;
    for (size_t j = 0; j < dim_; ++j) {
      float r = x[j] - c[j];
      mn = std::min(mn, r);
      mx = std::max(mx, r);
      n2 += double(r) * r;
    }
    lo[a] = mn;
    range[a] = mx - mn;
    far[a] = n2;
    narrowest = std::min(narrowest, range[a]);
  }
  uint32_t best = 0;
  for (size_t a = 1; a < n_centres_; ++a)
    if (range[a] <= 1.25f * narrowest && (range[best] > 1.25f * narrowest || far[a] < far[best]))
      best = uint32_t(a);
  const float best_range = range[best], best_lo = lo[best];
  const float* c = centre(best);
  const float m = best_lo;
  const float delta = best_range > 0.f && std::isfinite(best_range) ? best_range / 255.f : 0.f;
  const float inv = delta > 0.f ? 1.f / delta : 0.f;
  uint8_t* code = block(s);
  const float* mu = centre(1);
  double n2 = 0, cross = 0;
  for (size_t j = 0; j < dim_; ++j) {
    float q = std::nearbyint((x[j] - c[j] - m) * inv);
    code[j] = uint8_t(std::min(255.f, std::max(0.f, q)));
    double r = double(m) + double(delta) * code[j];  // the decoded residual
    n2 += r * r;
    cross += (double(mu[j]) - c[j]) * r;
  }
  for (size_t j = dim_; j < caux_; ++j) code[j] = 0;
  float ax[3] = {m, delta, float(n2 - 2.0 * cross)};
  std::memcpy(code + caux_, ax, naux_ * sizeof(float));
  uint32_t* h = hdr(s);
  store_relaxed(h, (load_relaxed(h) & ((1u << kCentreShift) - 1)) | (best << kCentreShift));
  sync_code_aux(s);
}

void Hnsw::sync_code_aux(size_t s) {
  if (!aux_apart_) return;
  CodeAux& out = reinterpret_cast<CodeAux*>(code_aux_.data())[s];
  const float* ax = aux(s);
  out.offset = ax[0];
  out.step = ax[1];
  out.norm = naux_ > 2 ? ax[2] : 0.f;
  out.centre = centre_of(s);
}

void Hnsw::decode_slot(size_t s, float* out) const {
  const uint8_t* code = block(s);
  const float* ax = aux(s);
  const float* c = centre(centre_of(s));
  for (size_t j = 0; j < dim_; ++j) out[j] = c[j] + ax[0] + ax[1] * float(code[j]);
}

// Encodes new slots. The first batch sets the centres (origin and mean). A
// later batch whose own mean would leave its vectors much narrower residuals
// than the centres so far (it drifted away from them) adds that mean as a
// centre, so that it is served as finely as the first batch.
void Hnsw::update_codes_locked(const std::vector<uint32_t>& slots) {
  if (slots.empty()) return;
  auto mean_of = [&](const std::vector<uint32_t>& ss, float* out) {
    std::vector<double> acc(dim_, 0.0);
    for (uint32_t s : ss)
      for (size_t j = 0; j < dim_; ++j) acc[j] += vec(s)[j];
    for (size_t j = 0; j < dim_; ++j) out[j] = float(acc[j] / double(ss.size()));
  };
  auto median = [](std::vector<float> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  const bool first = n_centres_ == 0;
  if (first) {
    mean_of(slots, centres_.data() + dpad_);
    n_centres_ = 2;
    add_cluster_centres_locked(slots);
  }
  for (uint32_t s : slots) encode_slot(s);
  std::vector<float> steps, own;
  steps.reserve(slots.size());
  for (uint32_t s : slots) steps.push_back(aux(s)[1]);
  if (first || ref_delta_ <= 0.f) ref_delta_ = median(steps);
  if (first || n_centres_ >= kMaxCentres) return;
  float* cand = centres_.data() + n_centres_ * dpad_;
  mean_of(slots, cand);
  own.reserve(slots.size());
  for (uint32_t s : slots) {
    float lo = kInf, hi = -kInf;
    for (size_t j = 0; j < dim_; ++j) {
      float r = vec(s)[j] - cand[j];
      lo = std::min(lo, r);
      hi = std::max(hi, r);
    }
    own.push_back((hi - lo) / 255.f);
  }
  if (median(own) < 0.5f * median(steps)) {
    ++n_centres_;
    for (uint32_t s : slots) encode_slot(s);
  } else {
    std::fill(cand, cand + dpad_, 0.f);
  }
}

// Clustered data (embeddings usually are) leaves far narrower residuals around
// its own cluster than around the global mean: a few rounds of k-means on a
// sample of the first batch add up to kClusters centres.
void Hnsw::add_cluster_centres_locked(const std::vector<uint32_t>& slots) {
  constexpr size_t kClusters = 8, kSample = 4096, kRounds = 5;
  if (slots.size() < 50 * kClusters) return;
  std::vector<uint32_t> sample(slots);
  std::shuffle(sample.begin(), sample.end(), guard_rng_);
  if (sample.size() > kSample) sample.resize(kSample);
  const Kernels& K = kernels();
  float* cent = centres_.data() + n_centres_ * dpad_;
  for (size_t c = 0; c < kClusters; ++c)
    std::copy(vec(sample[c]), vec(sample[c]) + dim_, cent + c * dpad_);
  std::vector<uint32_t> assign(sample.size());
  std::vector<double> acc(kClusters * dim_);
  std::vector<size_t> count(kClusters);
  for (size_t round = 0; round < kRounds; ++round) {
    for (size_t i = 0; i < sample.size(); ++i) {
      float best = kInf;
      for (size_t c = 0; c < kClusters; ++c) {
        float d = K.l2sq(vec(sample[i]), cent + c * dpad_, dim_);
        if (d < best) {
          best = d;
          assign[i] = uint32_t(c);
        }
      }
    }
    std::fill(acc.begin(), acc.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (size_t i = 0; i < sample.size(); ++i) {
      ++count[assign[i]];
      for (size_t j = 0; j < dim_; ++j) acc[assign[i] * dim_ + j] += vec(sample[i])[j];
    }
    for (size_t c = 0; c < kClusters; ++c)
      if (count[c])
        for (size_t j = 0; j < dim_; ++j) cent[c * dpad_ + j] = float(acc[c * dim_ + j] / double(count[c]));
  }
  n_centres_ += kClusters;
}

// The guard: do code distances keep the float order on this data? On a sample
// (up to 48 of the new vectors as queries against up to 2048 stored ones) it
// measures each code distance's error in units of its modelled scale
// (code_error), which sets the re-rank's multiplier, and counts how many
// stored vectors the error-bounded codes cannot tell from each query's true
// nearest neighbour (scaled to the whole index). When the model fails (errors
// far beyond their scale) or too many vectors are confusable for a walk of
// ordinary ef to sort out, the walk switches to float vectors for good.
void Hnsw::check_codes_locked(const std::vector<uint32_t>& slots) {
  if (float_walk_ || n_centres_ == 0 || n_live_ < 2) return;
  unchecked_ += slots.size();
  if (guard_.queries > 0 && unchecked_ < 256 && slots.size() < 32) return;
  unchecked_ = 0;

  constexpr size_t kQueries = 48, kRefs = 2048;
  std::vector<uint32_t> queries(slots);
  std::shuffle(queries.begin(), queries.end(), guard_rng_);
  if (queries.size() > kQueries) queries.resize(kQueries);
  std::vector<uint32_t> refs;
  const int64_t* lab = labels();
  if (n_live_ <= kRefs) {
    for (size_t s = 0; s < n_slots_; ++s)
      if (lab[s] >= 0) refs.push_back(uint32_t(s));
  } else {
    std::vector<uint8_t> taken(n_slots_, 0);
    std::uniform_int_distribution<size_t> pick(0, n_slots_ - 1);
    while (refs.size() < kRefs) {
      size_t s = pick(guard_rng_);
      if (lab[s] >= 0 && !taken[s]) {
        taken[s] = 1;
        refs.push_back(uint32_t(s));
      }
    }
  }

  Query q;
  q.qi.assign(dpad_, 0);
  const CodeKernels& ck = code_kernels();
  const Kernels& K = kernels();
  struct Pair { float exact, code, sigma; };
  std::vector<std::vector<Pair>> rows(queries.size());
  float worst = 0.f;
  for (size_t i = 0; i < queries.size(); ++i) {
    prepare(vec(queries[i]), q, ck, true);
    for (uint32_t r : refs) {
      if (r == queries[i]) continue;
      const float d = exact_dist(q.xf, r, K);
      const float delta = aux(r)[1];
      const float dc = dist(q, r) - 0.25f * float(dim_) * delta * delta;
      const float sigma = code_error(q, r, dc);
      const float over = dc - d;  // > 0: the code distance would hide r
      const float slack = 1e-5f * (std::fabs(d) + std::fabs(dc)) + 1e-30f;
      if (over > slack) worst = std::max(worst, sigma > 0.f ? over / sigma : 1e30f);
      rows[i].push_back({d, dc, sigma});
    }
  }
  const float z = std::max(4.f, 1.25f * worst);
  std::vector<float> confusable;
  const double scale = double(n_live_) / double(std::max<size_t>(refs.size(), 1));
  for (auto& row : rows) {
    if (row.empty()) continue;
    float d1 = kInf;
    for (auto& p : row) d1 = std::min(d1, p.exact);
    size_t count = 0;  // vectors truly farther than the nearest that codes may put first
    for (auto& p : row)
      if (p.exact > d1 + 1e-6f * std::fabs(d1) && p.code - z * p.sigma <= d1) ++count;
    confusable.push_back(float(double(count) * scale));
  }
  float median = 0.f;
  if (!confusable.empty()) {
    std::nth_element(confusable.begin(), confusable.begin() + confusable.size() / 2, confusable.end());
    median = confusable[confusable.size() / 2];
  }
  guard_.queries = queries.size();
  guard_.references = refs.size();
  guard_.max_error = worst;
  guard_.confusable = median;
  guard_.codes_ok = worst <= 12.f && median <= 16.f;
  if (guard_.codes_ok) {
    z_ = std::max(z_, z);
  } else {
    float_walk_ = true;
  }
}

void Hnsw::use_float_walk() {
  write_lock();
  float_walk_ = true;
  write_unlock();
}

void Hnsw::prepare(const float* x, Query& q, const CodeKernels& ck, bool codes) const {
  q.ck = &ck;
  q.K = &kernels();
  q.xf = x;
  q.l2 = metric_ == Metric::L2;
  q.exact = !codes || float_walk_ || n_centres_ == 0;
  if (q.exact) return;
  const float* mu = centre(1);
  float amax = 0.f;
  // Four partial sums each: one double chain over dim was a visible part of a
  // short query (an add's latency per dimension).
  double sums[4] = {0, 0, 0, 0}, n2s[4] = {0, 0, 0, 0};
  for (size_t j = 0; j < dim_; ++j) {
    const float v = q.l2 ? x[j] - mu[j] : x[j];
    amax = std::max(amax, std::fabs(v));
    sums[j & 3] += v;
    n2s[j & 3] += double(x[j]) * x[j];
  }
  const double sum = (sums[0] + sums[1]) + (sums[2] + sums[3]);
  const double n2 = (n2s[0] + n2s[1]) + (n2s[2] + n2s[3]);
  // int16 query: each int32 lane sums dpad/16 products of at most 255 * limit.
  const double limit = std::min(32767.0, 2147483647.0 / (255.0 * double(dpad_ / 16 + 1)));
  q.qscale = amax > 0.f ? float(amax / limit) : 1.f;
  const float inv = amax > 0.f ? float(limit / amax) : 0.f;
  for (size_t j = 0; j < dim_; ++j)
    q.qi[j] = int16_t(std::nearbyint((q.l2 ? x[j] - mu[j] : x[j]) * inv));
  for (size_t j = dim_; j < dpad_; ++j) q.qi[j] = 0;
  q.sum = float(sum);
  q.cs[0] = q.l2 ? float(n2) : 1.f;
  q.ready = 1;
  // Rounding the query: error per dimension uniform within qscale/2, times a
  // code of at most 255, over dim dimensions (as a standard deviation).
  const float qround = q.qscale * 255.f * std::sqrt(float(dim_) / 12.f);
  q.err = q.l2 ? 2.f * qround : float(std::sqrt(n2) / std::sqrt(12.0)) + qround;
}

// The query form of a stored vector, from its code (in cache) rather than its
// float vector (which is not); on the float walk, and where neighbours are
// selected on floats (select_on_floats), the float vector.
void Hnsw::prepare_slot(size_t s, Query& q, const CodeKernels& ck) const {
  if (select_on_floats()) {
    prepare(vec(s), q, ck, false);
    return;
  }
  decode_slot(s, q.xbuf.data());
  prepare(q.xbuf.data(), q, ck);
}

inline float Hnsw::dist(const Query& q, size_t s) const {
  if (q.exact) return exact_dist(q.xf, s, *q.K);
  const CodeAux ax = code_aux(s);
  const float dot = q.qscale * float(q.ck->dot_i16(q.qi.data(), block(s), dpad_));
  const float r = ax.offset * q.sum + ax.step * dot;
  const uint32_t a = ax.centre;
  if (!(q.ready >> a & 1u)) {  // a query meets few centres: each is measured on first use
    q.cs[a] = q.l2 ? q.K->l2sq(q.xf, centre(a), dim_) : 1.f - q.K->dot(q.xf, centre(a), dim_);
    q.ready |= 1u << a;
  }
  const float c = q.cs[a];
  return q.l2 ? c - 2.f * r + ax.norm : c - r;
}

// Standard deviation of a code distance's error for stored slot s, modelling
// each dimension's rounding error as uniform within +-delta/2 and independent
// of the query: l2 |q - x|^2 moves by 2 (q - x).e, ip by q.e. Plus the float
// rounding of the sum of terms as large as |q - c_a|^2 (l2) or q.c_a (ip). The
// guard checks the model on the data (and falls back to floats when it fails);
// the bias |e|^2 <= dim * delta^2 / 4 is handled by the callers. Called after
// dist(q, s), which measured q against s's centre.
inline float Hnsw::code_error(const Query& q, size_t s, float d) const {
  const CodeAux ax = code_aux(s);
  const float delta = ax.step;
  const float c = q.cs[ax.centre];
  if (q.l2)
    return delta * (0.57735027f * std::sqrt(std::max(d, 0.f)) + q.err) +
           1e-6f * (std::fabs(c) + std::fabs(ax.norm));
  return delta * q.err + 1e-6f * (std::fabs(c) + std::fabs(c - d) + 1.f);
}

float Hnsw::exact_dist(const float* q, size_t s, const Kernels& K) const {
  return metric_ == Metric::L2 ? K.l2sq(q, vec(s), dim_) : 1.f - K.dot(q, vec(s), dim_);
}

// Replaces the walk's code distances of a node's candidates with float ones
// when neighbours are selected on floats (the heuristic compares them with
// float distances between candidates).
void Hnsw::rescore_on_floats(const float* x, std::vector<std::pair<float, uint32_t>>& pool) const {
  if (float_walk_ || !select_on_floats()) return;
  const Kernels& K = kernels();
  for (auto& r : pool) r.first = exact_dist(x, r.second, K);
}

// ---------------------------------------------------------------- links

size_t Hnsw::read_links(size_t s, int level, uint32_t* out) const {
  const uint32_t* p = level == 0 ? hdr(s) : upper(s, level);
  size_t n = std::min<size_t>(load_acquire(p) & kCountMask, max_links(level));
  for (size_t i = 0; i < n; ++i) out[i] = load_relaxed(p + 1 + i);
  return n;
}

// Ids first, count last (release), so a concurrent reader sees valid ids.
void Hnsw::write_links(size_t s, int level, const uint32_t* ids, size_t n) {
  uint32_t* p = level == 0 ? hdr(s) : upper(s, level);
  for (size_t i = 0; i < n; ++i) store_relaxed(p + 1 + i, ids[i]);
  uint32_t flags = level == 0 ? (load_relaxed(p) & ~kCountMask) : 0;
  store_release(p, uint32_t(n) | flags);
}

uint32_t Hnsw::greedy(const Query& q, uint32_t ep, int from_level, int to_level) const {
  uint32_t cur = ep;
  float best = dist(q, cur);
  for (int level = from_level; level >= to_level; --level) {
    bool moved = true;
    while (moved) {
      moved = false;
      const uint32_t* p = upper(cur, level);
      size_t n = std::min<size_t>(load_acquire(p) & kCountMask, M_);
      // All neighbours' codes at once: these misses overlap instead of one per step.
      for (size_t i = 0; i < n; ++i) prefetch_code(load_relaxed(p + 1 + i));
      for (size_t i = 0; i < n; ++i) {
        uint32_t t = load_relaxed(p + 1 + i);
        float d = dist(q, t);
        if (d < best) {
          best = d;
          cur = t;
          moved = true;
        }
      }
    }
  }
  return cur;
}

// Best-first search of one layer. Leaves the ef best eligible nodes in sc.res
// (a max-heap on distance). Eligible: a live slot that passes the mask.
// A node's header and links (not its code, which the walk has already measured).
inline void Hnsw::prefetch_links(uint32_t s) const {
  const uint8_t* b = block(s);
  for (size_t off = dcode_ & ~size_t(63); off < bsize_; off += 64) __builtin_prefetch(b + off);
}

// Starts fetching what dist(q, t) reads: every line of t's code (at 128-d it
// spans two, and fetching only the first left the second as a full miss inside
// the distance) and its per-vector scalars, or its float vector on the float walk.
inline void Hnsw::prefetch_code(uint32_t t) const {
  if (float_walk_) {
    const uint8_t* vt = reinterpret_cast<const uint8_t*>(vec(t));
    for (size_t off = 0; off < dim_ * sizeof(float); off += 64) __builtin_prefetch(vt + off);
  } else {
    const uint8_t* ct = code(t);
    if (aux_apart_) {
      for (size_t off = 0; off < dim_; off += 64) __builtin_prefetch(ct + off);
      __builtin_prefetch(code_aux_.data() + t * sizeof(CodeAux));
    } else {
      for (size_t off = 0; off < dcode_ + 4; off += 64) __builtin_prefetch(ct + off);
    }
  }
}

// Collects c's neighbours on `level` not yet visited (marking them) into todo and
// starts fetching their codes (prefetch_code); returns how many.
inline size_t Hnsw::unvisited_neighbours(uint32_t c, int level, size_t maxl, Scratch& sc,
                                         uint32_t* todo) const {
  const uint32_t* lp = level == 0 ? hdr(c) : upper(c, level);
  const size_t cnt = std::min<size_t>(load_acquire(lp) & kCountMask, maxl);
  size_t nt = 0;
  for (size_t j = 0; j < cnt; ++j) {
    const uint32_t t = load_relaxed(lp + 1 + j);
    if (!sc.test_and_set(t)) {
      todo[nt++] = t;
      prefetch_code(t);
    }
  }
  return nt;
}

// Best-first walk of one layer when every reachable node is eligible (no filter,
// no free slots): one array of the ef best nodes seen so far, sorted by distance,
// each marked once expanded, stands in for the two heaps of the general walk.
// It visits the same nodes in the same order, but an insertion is a binary
// search and a short memmove instead of sift loops with unpredictable branches
// (the heaps were a fifth of a build). Leaves the result in sc.res, unordered
// for the callers' purposes.
void Hnsw::search_layer_sorted(const Query& q, uint32_t ep, int level, size_t ef,
                               Scratch& sc) const {
  using Entry = std::pair<float, uint32_t>;
  constexpr uint32_t kDone = 1u << 31;  // expanded; slots stay below 2^31 on this path
  sc.begin(n_slots_);
  auto& pool = sc.res;
  pool.resize(ef);
  Entry* P = pool.data();
  uint32_t* todo = sc.todo.data();
  const size_t maxl = max_links(level);

  sc.test_and_set(ep);
  P[0] = {dist(q, ep), ep};
  size_t size = 1, cur = 0;
  while (cur < size) {
    const uint32_t c = P[cur].second;
    P[cur].second = c | kDone;
    // Fetch the likely next node's links now (see search_layer).
    if (level == 0) {
      size_t nx = cur + 1;
      while (nx < size && (P[nx].second & kDone)) ++nx;
      if (nx < size) prefetch_links(P[nx].second);
    }
    const size_t nt = unvisited_neighbours(c, level, maxl, sc, todo);
    // All distances first: independent loads that the core can overlap,
    // where deciding on each before the next serialised the cache misses.
    float* dj = sc.dbuf.data();
    for (size_t j = 0; j < nt; ++j) dj[j] = dist(q, todo[j]);
    size_t lowest = size;  // first position that received a new entry
    for (size_t j = 0; j < nt; ++j) {
      const uint32_t t = todo[j];
      const float d = dj[j];
      if (size == ef && !(d < P[size - 1].first)) continue;
      // Branch-free upper bound: the compare result picks the half by a
      // conditional move, as std::upper_bound's mispredicted branches cost
      // more than the search itself on a list this short.
      const Entry* base = P;
      for (size_t len = size; len > 1;) {
        const size_t half = len / 2;
        base = base[half].first <= d ? base + half : base;
        len -= half;
      }
      const size_t pos = size_t(base - P) + (base->first <= d);
      const size_t tail = (size == ef ? ef - 1 : size) - pos;
      std::memmove(static_cast<void*>(P + pos + 1), P + pos, tail * sizeof(Entry));
      P[pos] = {d, t};
      if (size < ef) ++size;
      lowest = std::min(lowest, pos);
    }
    // Everything before cur is expanded, and so is cur itself unless something
    // landed at or before it: continue from the first unexpanded entry.
    if (lowest <= cur) {
      cur = lowest;
    } else {
      ++cur;
      while (cur < size && (P[cur].second & kDone)) ++cur;
    }
  }
  pool.resize(size);
  for (auto& e : pool) e.second &= ~kDone;
}

void Hnsw::search_layer(const Query& q, uint32_t ep, int level, size_t ef, Scratch& sc,
                        const uint8_t* mask, size_t mask_len) const {
  ef = std::min(ef, std::max<size_t>(n_slots_, 1));  // never more candidates than nodes
  if (!mask && free_.empty() && n_slots_ < (size_t(1) << 31)) {
    search_layer_sorted(q, ep, level, ef, sc);
    return;
  }
  sc.begin(n_slots_);
  auto& cand = sc.cand;  // max-heap on -distance, i.e. closest first
  auto& res = sc.res;    // max-heap on distance, worst first
  cand.clear();
  res.clear();
  // Slots are freed and reused only under the write lock, and callers hold the
  // shape lock, so without free slots now there are none during this walk. The
  // flag lives on a cache line of its own that the walk otherwise never touches
  // (a miss per admitted candidate, ~12% of a build), so skip it when it cannot be set.
  const bool any_free = !free_.empty();
  auto eligible = [&](uint32_t s) {
    return !(any_free && (load_relaxed(hdr(s)) & kFree)) && (!mask || (s < mask_len && mask[s]));
  };
  uint32_t* todo = sc.todo.data();
  const size_t maxl = max_links(level);

  float d0 = dist(q, ep);
  sc.test_and_set(ep);
  cand.emplace_back(-d0, ep);
  if (eligible(ep)) res.emplace_back(d0, ep);

  while (!cand.empty()) {
    float dc = -cand.front().first;
    uint32_t c = cand.front().second;
    if (res.size() >= ef && dc > res.front().first) break;
    std::pop_heap(cand.begin(), cand.end());
    cand.pop_back();
    // The likely next node to expand: fetch its links now, while this node's
    // neighbours are processed (fetching them just before use would not hide
    // the latency). A better neighbour found below may take its turn instead.
    if (level == 0 && !cand.empty()) prefetch_links(cand.front().second);
    const size_t nt = unvisited_neighbours(c, level, maxl, sc, todo);
    for (size_t j = 0; j < nt; ++j) {
      uint32_t t = todo[j];
      float d = dist(q, t);
      if (res.size() < ef || d < res.front().first) {
        cand.emplace_back(-d, t);
        std::push_heap(cand.begin(), cand.end());
        if (eligible(t)) {
          res.emplace_back(d, t);
          std::push_heap(res.begin(), res.end());
          if (res.size() > ef) {
            std::pop_heap(res.begin(), res.end());
            res.pop_back();
          }
        }
      }
    }
  }
}

// The HNSW neighbour heuristic: walk candidates from the closest; keep one only
// if it is closer to the base than to every neighbour kept so far. cands must
// be sorted by distance to the base. Each kept neighbour is prepared as a query
// once (at most m of them) and every later candidate is measured against those,
// instead of preparing every candidate: at 128-d the prepare cost as much as
// several distances and was paid for up to ef_construction candidates.
void Hnsw::select_neighbours(std::vector<std::pair<float, uint32_t>>& cands, size_t m,
                             std::vector<uint32_t>& out, Scratch& sc) const {
  out.clear();
  if (cands.size() <= m) {
    for (auto& c : cands) out.push_back(c.second);
    return;
  }
  const CodeKernels& ck = *sc.q.ck;
  const size_t last = cands.size() - 1;
  for (size_t i = 0; i <= last && out.size() < m; ++i) {
    const float dc = cands[i].first;
    const uint32_t c = cands[i].second;
    bool good = true;
    for (size_t j = 0; j < out.size(); ++j)
      if (dist(sc.kept[j], c) < dc) {
        good = false;
        break;
      }
    if (!good) continue;
    // Prepared only if a later candidate will be measured against it.
    if (out.size() + 1 < m && i < last) prepare_slot(c, sc.kept[out.size()], ck);
    out.push_back(c);
  }
}

// Links s to `selected` at `level` and adds the reverse links, pruning a
// neighbour's list with the heuristic when it is full.
void Hnsw::connect(uint32_t s, int level, const std::vector<uint32_t>& selected, Scratch& sc) {
  {
    std::lock_guard<std::mutex> g(node_lock(s));
    write_links(s, level, selected.data(), selected.size());
  }
  const size_t maxl = max_links(level);
  uint32_t* links = sc.links.data();
  for (uint32_t n : selected) {
    std::lock_guard<std::mutex> g(node_lock(n));
    size_t cnt = read_links(n, level, links);
    if (std::find(links, links + cnt, s) != links + cnt) continue;
    if (cnt < maxl) {
      uint32_t* p = level == 0 ? hdr(n) : upper(n, level);
      store_relaxed(p + 1 + cnt, s);
      uint32_t flags = level == 0 ? (load_relaxed(p) & ~kCountMask) : 0;
      store_release(p, uint32_t(cnt + 1) | flags);
      continue;
    }
    // n's code was just read by the walk and is likely cached; its float vector
    // (4x the bytes) never is. The heuristic already measures kept neighbours
    // on codes, so the pruning stays on one scale.
    prepare_slot(n, sc.qn, *sc.q.ck);
    auto& pool = sc.pool2;
    pool.clear();
    pool.emplace_back(dist(sc.qn, s), s);
    for (size_t i = 0; i < cnt; ++i) pool.emplace_back(dist(sc.qn, links[i]), links[i]);
    sort_closest_first(pool);
    select_neighbours(pool, maxl, sc.sel2, sc);
    write_links(n, level, sc.sel2.data(), sc.sel2.size());
  }
}

void Hnsw::insert(uint32_t s, Scratch& sc) {
  if (load_relaxed(hdr(s)) & kFree) return;
  const int level = levels()[s];
  const CodeKernels& ck = code_kernels();
  prepare(vec(s), sc.q, ck);

  std::unique_lock<std::mutex> top_lock(entry_mutex_, std::defer_lock);
  uint64_t top = top_.load(std::memory_order_acquire);
  if (top_entry(top) == kNone || level > top_level(top)) {
    top_lock.lock();
    top = top_.load(std::memory_order_acquire);
    if (top_entry(top) == kNone) {
      top_.store(pack_top(s, level), std::memory_order_release);
      return;
    }
    if (level <= top_level(top)) top_lock.unlock();
  }
  const int max_level = top_level(top);
  uint32_t cur = top_entry(top);
  if (level < max_level) cur = greedy(sc.q, cur, max_level, level + 1);

  // Choose neighbours top-down (each layer's search starts from the layer
  // above), but link bottom-up: once s is reachable on a layer, its links on
  // every layer below already exist, so a concurrent search never lands on a
  // node it cannot leave.
  const int top_l = std::min(level, max_level);
  if (sc.per_level.size() < size_t(top_l + 1)) sc.per_level.resize(top_l + 1);
  for (int l = top_l; l >= 0; --l) {
    search_layer(sc.q, cur, l, efc_, sc, nullptr, 0);
    auto& pool = sc.pool;
    pool.clear();
    for (auto& r : sc.res)
      if (r.second != s) pool.push_back(r);
    rescore_on_floats(vec(s), pool);
    sc.per_level[l].clear();
    if (pool.empty()) continue;
    sort_closest_first(pool);
    cur = pool.front().second;
    select_neighbours(pool, M_, sc.per_level[l], sc);
  }
  for (int l = 0; l <= top_l; ++l) connect(s, l, sc.per_level[l], sc);
  if (level > max_level) top_.store(pack_top(s, level), std::memory_order_release);
}

// ---------------------------------------------------------------- add / remove

void Hnsw::add(const float* x, const int64_t* ids, size_t n, int threads) {
  if (readonly_) throw std::runtime_error("this index is memory-mapped (read-only); load it with mmap=False to modify it");
  if (n == 0) return;
  std::lock_guard<std::mutex> mutate(mutate_mutex_);
  std::vector<uint32_t> slots(n);
  write_lock();
  try {
    // Re-added ids: delete the old node (repairing its neighbours) and insert anew.
    std::vector<uint32_t> replaced;
    for (size_t i = 0; i < n; ++i) {
      auto it = slot_of_.find(ids[i]);
      if (it != slot_of_.end()) replaced.push_back(it->second);
    }
    if (!replaced.empty()) remove_slots_locked(replaced);
    size_t fresh = n > free_.size() ? n - free_.size() : 0;
    reserve_locked(n_slots_ + fresh);
    for (size_t i = 0; i < n; ++i) {
      uint32_t s;
      if (!free_.empty()) {
        s = free_.back();
        free_.pop_back();
      } else {
        s = uint32_t(n_slots_++);
      }
      slots[i] = s;
      float* v = const_cast<float*>(vec(s));
      std::memcpy(v, x + i * dim_, dim_ * sizeof(float));
      if (metric_ == Metric::Cosine) normalize(v);
      store_relaxed(hdr(s), 0);
      labels()[s] = ids[i];
      slot_of_[ids[i]] = s;
      int level = random_level();
      levels()[s] = uint8_t(level);
      if (upper_owned_) delete[] upper_[s];
      upper_[s] = level > 0 ? new uint32_t[size_t(level) * (M_ + 1)]() : nullptr;
    }
    n_live_ += n;
    // Codes last (they follow the float vectors), then the guard, which
    // decides before any link is built whether this batch walks on codes.
    update_codes_locked(slots);
    check_codes_locked(slots);
  } catch (...) {
    write_unlock();
    throw;
  }
  write_unlock();

  // Link building: searches may run meanwhile; the shape cannot change.
  // Ctrl-C (or a failing worker) stops it between two inserts.
  StopToken stop;
  std::vector<uint8_t> linked(n, 0);
  read_lock();
  try {
    std::atomic<size_t> next{0};
    int nt = std::max(1, std::min<int>(threads, int((n + 63) / 64)));
    run_workers(nt, [&](int) {
      Scratch* sc = acquire();
      try {
        for (size_t i; !stop.stop_requested() && (i = next.fetch_add(1)) < n;) {
          insert(slots[i], *sc);
          linked[i] = 1;
        }
      } catch (...) {
        release(sc);
        throw;
      }
      release(sc);
    }, &stop);
  } catch (...) {
    read_unlock();
    // Nodes not (fully) linked cannot be found: take them out again, so the
    // index holds exactly the vectors whose insert completed.
    std::vector<uint32_t> unfinished;
    for (size_t i = 0; i < n; ++i)
      if (!linked[i]) unfinished.push_back(slots[i]);
    write_lock();
    try {
      remove_slots_locked(unfinished);
    } catch (...) {
    }
    write_unlock();
    throw;
  }
  read_unlock();
}

size_t Hnsw::remove(const int64_t* ids, size_t n) {
  if (readonly_) throw std::runtime_error("this index is memory-mapped (read-only); load it with mmap=False to modify it");
  std::lock_guard<std::mutex> mutate(mutate_mutex_);
  write_lock();
  std::vector<uint32_t> slots;
  try {
    for (size_t i = 0; i < n; ++i) {
      auto it = slot_of_.find(ids[i]);
      if (it != slot_of_.end() &&
          std::find(slots.begin(), slots.end(), it->second) == slots.end())
        slots.push_back(it->second);
    }
    remove_slots_locked(slots);
  } catch (...) {
    write_unlock();
    throw;
  }
  write_unlock();
  return slots.size();
}

// Replaces p's links at `level` that point to dead nodes: candidates are p's
// live neighbours plus the live neighbours of its dead ones, re-selected with
// the heuristic.
void Hnsw::repair_node(uint32_t p, int level, const uint8_t* dead, Scratch& sc) {
  const size_t maxl = max_links(level);
  std::vector<uint32_t> own(maxl), hop(maxl);
  size_t cnt = read_links(p, level, own.data());
  bool any_dead = false;
  for (size_t i = 0; i < cnt; ++i) any_dead |= dead[own[i]] != 0;
  if (!any_dead) return;

  sc.begin(n_slots_);
  sc.test_and_set(p);
  prepare(vec(p), sc.qn, *sc.q.ck, !select_on_floats());
  auto& pool = sc.pool;
  pool.clear();
  auto consider = [&](uint32_t t) {
    if (dead[t] || sc.test_and_set(t)) return;
    pool.emplace_back(dist(sc.qn, t), t);
  };
  for (size_t i = 0; i < cnt; ++i) {
    if (!dead[own[i]]) {
      consider(own[i]);
      continue;
    }
    size_t hn = read_links(own[i], level, hop.data());
    for (size_t j = 0; j < hn; ++j) consider(hop[j]);
  }
  sort_closest_first(pool);
  select_neighbours(pool, maxl, sc.sel, sc);
  write_links(p, level, sc.sel.data(), sc.sel.size());
}

void Hnsw::remove_slots_locked(const std::vector<uint32_t>& slots) {
  if (slots.empty()) return;
  std::vector<uint8_t> dead(n_slots_, 0);
  for (uint32_t s : slots) {
    dead[s] = 1;
    slot_of_.erase(labels()[s]);
    labels()[s] = -1;
  }
  n_live_ -= slots.size();

  if (n_live_ > 0) {
    const int threads = std::max(1, int(std::min<unsigned>(std::thread::hardware_concurrency(), 8)));
    std::atomic<size_t> next{0};
    const size_t chunk = 256;
    run_workers(threads, [&](int) {
      Scratch* sc = acquire();
      sc->q.ck = &code_kernels();
      for (size_t b; (b = next.fetch_add(chunk)) < n_slots_;) {
        size_t e = std::min(n_slots_, b + chunk);
        for (size_t p = b; p < e; ++p) {
          if (dead[p] || labels()[p] < 0) continue;
          for (int l = 0; l <= levels()[p]; ++l) repair_node(uint32_t(p), l, dead.data(), *sc);
        }
      }
      release(sc);
    });
  }

  for (uint32_t s : slots) {
    store_relaxed(hdr(s), kFree);
    if (upper_owned_) delete[] upper_[s];
    upper_[s] = nullptr;
    levels()[s] = 0;
    free_.push_back(s);
  }

  uint64_t top = top_.load();
  if (top_entry(top) != kNone && dead[top_entry(top)]) {
    int64_t best = -1;
    int best_level = -1;
    for (size_t s = 0; s < n_slots_; ++s)
      if (labels()[s] >= 0 && int(levels()[s]) > best_level) {
        best = int64_t(s);
        best_level = levels()[s];
      }
    top_.store(best < 0 ? uint64_t(kNone) : pack_top(uint32_t(best), best_level));
  }
  if (n_live_ > 1) fix_stranded_locked();
}

// Live nodes that a walk on some layer can no longer reach or leave: no live
// node links to them (their in-links came only from deleted nodes, or repairs
// pruned them away) or they have no links of their own. The entry point needs
// no in-link on its top layer, where every walk starts.
std::vector<std::pair<uint32_t, int>> Hnsw::find_stranded_locked() const {
  std::vector<std::pair<uint32_t, int>> out;
  const uint64_t top = top_.load();
  if (top_entry(top) == kNone) return out;
  const int64_t* lab = labels();
  std::vector<uint8_t> has_in(n_slots_);
  std::vector<uint32_t> links(M0_ + 1);
  for (int l = 0; l <= top_level(top); ++l) {
    size_t on_layer = 0;
    std::fill(has_in.begin(), has_in.end(), 0);
    for (size_t p = 0; p < n_slots_; ++p) {
      if (lab[p] < 0 || levels()[p] < l) continue;
      ++on_layer;
      size_t cnt = read_links(p, l, links.data());
      for (size_t i = 0; i < cnt; ++i) has_in[links[i]] = 1;
    }
    if (on_layer < 2) break;  // layers above hold at most this one node too
    for (size_t p = 0; p < n_slots_; ++p) {
      if (lab[p] < 0 || levels()[p] < l) continue;
      bool entry_top = p == top_entry(top) && l == top_level(top);
      if ((!has_in[p] && !entry_top) || read_links(p, l, links.data()) == 0)
        out.emplace_back(uint32_t(p), l);
    }
  }
  return out;
}

// Gives s fresh neighbours on `level` as an insert would (a walk from the
// entry point, the heuristic, reverse links). With force, s also takes the
// last place in its nearest neighbour's list when every neighbour pruned it.
void Hnsw::relink(uint32_t s, int level, bool force, Scratch& sc) {
  const CodeKernels& ck = code_kernels();
  prepare(vec(s), sc.q, ck);
  const uint64_t top = top_.load();
  uint32_t cur = top_entry(top);
  if (top_level(top) > level) cur = greedy(sc.q, cur, top_level(top), level + 1);
  search_layer(sc.q, cur, level, efc_, sc, nullptr, 0);
  auto& pool = sc.pool;
  pool.clear();
  for (auto& r : sc.res)
    if (r.second != s) pool.push_back(r);
  if (pool.empty()) {  // the walk started at s and s has no links: look at every node
    for (size_t t = 0; t < n_slots_; ++t)
      if (t != s && labels()[t] >= 0 && levels()[t] >= level)
        pool.emplace_back(dist(sc.q, t), uint32_t(t));
  }
  if (pool.empty()) return;
  rescore_on_floats(vec(s), pool);
  sort_closest_first(pool);
  std::vector<uint32_t> selected;
  select_neighbours(pool, M_, selected, sc);
  connect(s, level, selected, sc);
  if (!force) return;
  uint32_t* links = sc.links.data();
  for (uint32_t n : selected) {
    size_t cnt = read_links(n, level, links);
    if (std::find(links, links + cnt, s) != links + cnt) return;
  }
  const uint32_t n = selected.front();
  size_t cnt = read_links(n, level, links);
  if (cnt < max_links(level)) links[cnt++] = s;
  else links[cnt - 1] = s;
  write_links(n, level, links, cnt);
}

// Repairs can strand a node; relink those until none is left. A forced link
// may strand the node it displaced, hence the rounds (one nearly always does).
void Hnsw::fix_stranded_locked() {
  Scratch* sc = acquire();
  try {
    for (int round = 0; round < 8; ++round) {
      auto stranded = find_stranded_locked();
      if (stranded.empty()) break;
      for (auto [s, l] : stranded) relink(s, l, round > 0, *sc);
    }
  } catch (...) {
    release(sc);
    throw;
  }
  release(sc);
}

// ---------------------------------------------------------------- search

void Hnsw::exact_scan(const float* q, size_t k, const std::vector<int64_t>& allowed, Scratch& sc,
                      int64_t* out_ids, float* out_dist) const {
  (void)sc;
  const Kernels& K = kernels();
  TopK top(k);
  const int64_t* lab = labels();
  const size_t n = allowed.size();
  const size_t row_bytes = dim_ * sizeof(float);
  // The allowed rows are scattered: prefetch far enough ahead to keep many
  // cache misses in flight (the gather kernels look only two rows ahead).
  constexpr size_t kAhead = 12;
  auto prefetch_row = [&](size_t i) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(vec(size_t(allowed[i])));
    for (size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off);
  };
  for (size_t i = 0; i < std::min(n, kAhead); ++i) prefetch_row(i);
  const bool l2 = metric_ == Metric::L2;
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) prefetch_row(i + kAhead);
    size_t s = size_t(allowed[i]);
    int64_t id = lab[s];
    if (id < 0) continue;
    top.push(l2 ? K.l2sq(q, vec(s), dim_) : 1.f - K.dot(q, vec(s), dim_), id);
  }
  top.write_sorted(out_ids, out_dist);
}

void Hnsw::search_one(const float* q, size_t k, size_t ef, const uint8_t* mask, size_t mask_len,
                      const std::vector<int64_t>* allowed, Scratch& sc, int64_t* out_ids,
                      float* out_dist) const {
  uint64_t top = top_.load(std::memory_order_acquire);
  if (top_entry(top) == kNone || (allowed && allowed->empty())) {
    TopK(k).write_sorted(out_ids, out_dist);
    return;
  }
  if (allowed) {
    double na = double(allowed->size());
    if (allowed->size() <= exact_min_ || na * na <= exact_scale_ * double(n_live_)) {
      exact_scan(q, k, *allowed, sc, out_ids, out_dist);
      return;
    }
  }
  const CodeKernels& ck = code_kernels();
  prepare(q, sc.q, ck);
  uint32_t cur = top_entry(top);
  if (top_level(top) > 0) cur = greedy(sc.q, cur, top_level(top), 1);
  search_layer(sc.q, cur, 0, std::max(ef, k), sc, mask, mask_len);

  auto& res = sc.res;
  TopK best(k);
  const int64_t* lab = labels();
  if (sc.q.exact) {  // the float walk: distances are exact already
    for (auto& r : res) best.push(r.first, lab[r.second]);
    best.write_sorted(out_ids, out_dist);
    return;
  }
  // Exact re-rank, in order of each candidate's lower bound (code distance
  // minus its bias bound and z error scales), of every candidate whose bound
  // can still enter the top k: a close call between codes is settled by the
  // float vectors whatever k is.
  auto& order = sc.pool;
  order.clear();
  const float bias = 0.25f * float(dim_);
  for (auto& r : res) {
    const float delta = code_aux(r.second).step;
    order.emplace_back(r.first - bias * delta * delta - z_ * code_error(sc.q, r.second, r.first),
                       r.second);
  }
  std::sort(order.begin(), order.end());
  const Kernels& K = kernels();
  // Most of the first 2k candidates are re-ranked: fetch them all at once (many
  // misses in flight, at most 32), then stay that far ahead.
  const size_t kAhead = std::min<size_t>(32, std::max<size_t>(4, 2 * k));
  auto prefetch_vec = [&](size_t i) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(vec(order[i].second));
    for (size_t off = 0; off < dim_ * sizeof(float); off += 64) __builtin_prefetch(p + off);
  };
  for (size_t i = 0; i < std::min(order.size(), kAhead); ++i) prefetch_vec(i);
  const size_t at_least = rerank_ * k;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i >= at_least && order[i].first > best.threshold()) break;
    if (i + kAhead < order.size()) prefetch_vec(i + kAhead);
    best.push(exact_dist(q, order[i].second, K), lab[order[i].second]);
  }
  best.write_sorted(out_ids, out_dist);
}

void Hnsw::search(const float* q, size_t nq, size_t k, size_t ef, const uint8_t* mask,
                  size_t mask_len, int threads, int64_t* out_ids, float* out_dist) {
  // The allowed slots, listed once per call: the exact scan walks this list
  // and its length decides between the scan and the graph.
  std::vector<int64_t> allowed;
  if (mask) {
    read_lock();
    size_t end = std::min(n_slots_, mask_len);
    const int64_t* lab = labels();
    for (size_t s = 0; s < end; ++s)
      if (mask[s] && lab[s] >= 0) allowed.push_back(int64_t(s));
    read_unlock();
  }
  std::atomic<size_t> next{0};
  int nt = std::max(1, std::min<int>(threads, int(nq)));
  run_workers(nt, [&](int) {
    Scratch* sc = acquire();
    for (size_t i; (i = next.fetch_add(1)) < nq;) {
      const float* qi = q + i * dim_;
      if (metric_ == Metric::Cosine) {
        std::copy(qi, qi + dim_, sc->qnorm.begin());
        normalize(sc->qnorm.data());
        qi = sc->qnorm.data();
      }
      read_lock();
      search_one(qi, k, ef, mask, mask_len, mask ? &allowed : nullptr, *sc, out_ids + i * k,
                 out_dist + i * k);
      read_unlock();
    }
    release(sc);
  });
}

void Hnsw::scan(const float* q, size_t nq, size_t k, const uint8_t* mask, size_t mask_len,
                int64_t* out_ids, float* out_dist) const {
  Scratch* sc = acquire();
  read_lock();
  std::vector<int64_t> allowed;
  const size_t end = std::min(n_slots_, mask_len);
  const int64_t* lab = labels();
  for (size_t s = 0; s < end; ++s)
    if (mask[s] && lab[s] >= 0) allowed.push_back(int64_t(s));
  for (size_t i = 0; i < nq; ++i) {
    const float* qi = q + i * dim_;
    if (metric_ == Metric::Cosine) {
      std::copy(qi, qi + dim_, sc->qnorm.begin());
      normalize(sc->qnorm.data());
      qi = sc->qnorm.data();
    }
    exact_scan(qi, k, allowed, *sc, out_ids + i * k, out_dist + i * k);
  }
  read_unlock();
  release(sc);
}

// ---------------------------------------------------------------- persistence

void Hnsw::slot_labels(int64_t* out, size_t n) const {
  read_lock();
  std::memcpy(out, labels(), std::min(n, n_slots_) * sizeof(int64_t));
  for (size_t s = n_slots_; s < n; ++s) out[s] = -1;
  read_unlock();
}

void Hnsw::vectors_at(const int64_t* slots, size_t n, float* out) const {
  read_lock();
  for (size_t i = 0; i < n; ++i) {
    if (slots[i] < 0 || size_t(slots[i]) >= n_slots_) {
      read_unlock();
      throw std::out_of_range("slot " + std::to_string(slots[i]) + " is not in the index");
    }
    std::memcpy(out + i * dim_, vec(size_t(slots[i])), dim_ * sizeof(float));
  }
  read_unlock();
}

size_t Hnsw::memory_bytes() const {
  read_lock();
  size_t total = blocks_.bytes() + vectors_.bytes() + labels_.bytes() + levels_.bytes() +
                 upper_.capacity() * sizeof(uint32_t*) + free_.capacity() * sizeof(uint32_t);
  for (size_t s = 0; s < n_slots_; ++s) total += size_t(levels()[s]) * (M_ + 1) * sizeof(uint32_t);
  // unordered_map: a node (key, value, next pointer, hash) per id plus a bucket pointer.
  total += slot_of_.size() * 32 + slot_of_.bucket_count() * sizeof(void*);
  read_unlock();
  return total;
}

int64_t Hnsw::max_label() const {
  read_lock();
  int64_t best = -1;
  const int64_t* lab = labels();
  for (size_t s = 0; s < n_slots_; ++s) best = std::max(best, lab[s]);
  read_unlock();
  return best;
}

HnswState Hnsw::state() const {
  uint64_t top = top_.load();
  return {top_entry(top) == kNone ? -1 : int64_t(top_entry(top)), top_level(top), n_slots_};
}

void Hnsw::export_arrays(std::vector<uint8_t>& blocks, std::vector<float>& vectors,
                         std::vector<int64_t>& labels_out, std::vector<uint8_t>& levels_out,
                         std::vector<int64_t>& upper_offsets, std::vector<uint32_t>& upper_links,
                         std::vector<float>& quant, HnswState& st) const {
  read_lock();
  const size_t n = n_slots_;
  blocks.assign(block(0), block(0) + n * bsize_);
  vectors.assign(vec(0), vec(0) + n * dim_);
  labels_out.assign(labels(), labels() + n);
  levels_out.assign(levels(), levels() + n);
  upper_offsets.assign(n + 1, 0);
  for (size_t s = 0; s < n; ++s)
    upper_offsets[s + 1] = upper_offsets[s] + int64_t(levels()[s]) * int64_t(M_ + 1);
  upper_links.assign(size_t(upper_offsets[n]), 0);
  for (size_t s = 0; s < n; ++s)
    if (levels()[s] > 0)
      std::memcpy(upper_links.data() + upper_offsets[s], upper_[s],
                  size_t(levels()[s]) * (M_ + 1) * sizeof(uint32_t));
  // [header row, centres]: header = format 2, centre count, float walk, z, reference step.
  quant.assign((1 + n_centres_) * dpad_, 0.f);
  quant[0] = 2.f;
  quant[1] = float(n_centres_);
  quant[2] = float_walk_ ? 1.f : 0.f;
  quant[3] = z_;
  quant[4] = ref_delta_;
  std::copy(centres_.begin(), centres_.begin() + n_centres_ * dpad_, quant.begin() + dpad_);
  st = state();
  read_unlock();
}

void Hnsw::attach(const uint8_t* blocks, size_t blocks_bytes, const float* vectors,
                  const int64_t* labels_in, const uint8_t* levels_in, const int64_t* upper_offsets,
                  const uint32_t* upper_links, size_t upper_len, const float* quant,
                  size_t quant_rows, const HnswState& st, bool borrow, bool legacy) {
  const size_t n = st.n_slots;
  const bool want_readonly = borrow;
  std::vector<uint8_t> converted;
  if (legacy) {
    // Old layout: [per-dimension codes, padded to 4][hdr][links]. Keep the
    // header and links; the codes are rebuilt below from the float vectors.
    const size_t old_hdr = round_up(dim_, 4);
    const size_t old_bsize = round_up(old_hdr + 4 + 4 * M0_, 64);
    if (blocks_bytes != n * old_bsize)
      throw std::invalid_argument("HNSW file: link block section does not match the parameters");
    converted.assign(n * bsize_, 0);
    for (size_t s = 0; s < n; ++s) {
      std::memcpy(converted.data() + s * bsize_ + dcode_, blocks + s * old_bsize + old_hdr,
                  4 + 4 * M0_);
      uint32_t* h = reinterpret_cast<uint32_t*>(converted.data() + s * bsize_ + dcode_);
      *h &= (1u << kCentreShift) - 1;
    }
    blocks = converted.data();
    blocks_bytes = converted.size();
    borrow = false;
  } else {
    if (quant_rows < 1 || quant[0] != 2.f)
      throw std::invalid_argument("HNSW file: unknown code format (rebuild the index)");
    const float k = quant[1];
    if (!(k >= 0.f && k <= float(kMaxCentres) && k == std::floor(k)) || quant_rows != 1 + size_t(k) ||
        (n > 0 && k < 2.f) || !(quant[3] >= 4.f && quant[3] < 1e6f) || !std::isfinite(quant[4]))
      throw std::invalid_argument("HNSW file: bad code section");
  }
  if (blocks_bytes != n * bsize_)
    throw std::invalid_argument("HNSW file: link block section does not match the parameters");
  if (upper_offsets[0] != 0 || size_t(upper_offsets[n]) != upper_len)
    throw std::invalid_argument("HNSW file: upper-level offsets do not match the link section");
  for (size_t s = 0; s < n; ++s) {
    if (upper_offsets[s + 1] - upper_offsets[s] != int64_t(levels_in[s]) * int64_t(M_ + 1))
      throw std::invalid_argument("HNSW file: upper-level offsets disagree with node levels");
    const uint32_t* h = reinterpret_cast<const uint32_t*>(blocks + s * bsize_ + dcode_);
    size_t cnt = h[0] & kCountMask;
    if (cnt > M0_) throw std::invalid_argument("HNSW file: a level-0 link count exceeds 2*M");
    for (size_t i = 0; i < cnt; ++i)
      if (h[1 + i] >= n) throw std::invalid_argument("HNSW file: a link points past the last node");
    for (size_t l = 0; l < levels_in[s]; ++l) {
      const uint32_t* u = upper_links + upper_offsets[s] + l * (M_ + 1);
      if (u[0] > M_) throw std::invalid_argument("HNSW file: an upper-level link count exceeds M");
      for (size_t i = 0; i < u[0]; ++i)
        if (u[1 + i] >= n || levels_in[u[1 + i]] < l + 1)
          throw std::invalid_argument("HNSW file: an upper-level link points to a bad node");
    }
  }
  if (st.entry >= int64_t(n) || (st.entry >= 0 && st.max_level != int(levels_in[st.entry])))
    throw std::invalid_argument("HNSW file: bad entry point");

  if (!legacy) {
    n_centres_ = size_t(quant[1]);
    float_walk_ = quant[2] != 0.f;
    z_ = quant[3];
    ref_delta_ = quant[4];
    std::copy(quant + dpad_, quant + (1 + n_centres_) * dpad_, centres_.begin());
    for (size_t s = 0; s < n; ++s) {
      const uint32_t* h = reinterpret_cast<const uint32_t*>(blocks + s * bsize_ + dcode_);
      if ((h[0] >> kCentreShift) >= std::max<size_t>(n_centres_, 1))
        throw std::invalid_argument("HNSW file: a code refers to a missing centre");
    }
  }
  if (borrow) {
    readonly_ = true;
    blocks_.borrow(blocks, n * bsize_);
    vectors_.borrow(vectors, n * dim_ * sizeof(float));
    labels_.borrow(labels_in, n * sizeof(int64_t));
    levels_.borrow(levels_in, n);
    if (aux_apart_) code_aux_.grow(std::max<size_t>(n, 1) * sizeof(CodeAux));
    upper_owned_ = false;
    upper_.assign(n, nullptr);
    for (size_t s = 0; s < n; ++s)
      if (levels_in[s] > 0) upper_[s] = const_cast<uint32_t*>(upper_links + upper_offsets[s]);
    capacity_ = n;
  } else {
    reserve_locked(std::max<size_t>(n, 1));
    if (n) {
      std::memcpy(blocks_.data(), blocks, n * bsize_);
      std::memcpy(vectors_.data(), vectors, n * dim_ * sizeof(float));
      std::memcpy(labels_.data(), labels_in, n * sizeof(int64_t));
      std::memcpy(levels_.data(), levels_in, n);
    }
    for (size_t s = 0; s < n; ++s)
      if (levels_in[s] > 0) {
        size_t len = size_t(levels_in[s]) * (M_ + 1);
        upper_[s] = new uint32_t[len];
        std::memcpy(upper_[s], upper_links + upper_offsets[s], len * sizeof(uint32_t));
      }
  }
  n_slots_ = n;
  n_live_ = 0;
  for (size_t s = 0; s < n; ++s) {
    int64_t id = labels_in[s];
    if (id >= 0) {
      ++n_live_;
      if (!borrow) slot_of_[id] = uint32_t(s);
    } else if (!borrow) {
      free_.push_back(uint32_t(s));
    }
  }
  top_.store(st.entry < 0 ? uint64_t(kNone) : pack_top(uint32_t(st.entry), st.max_level));
  if (!legacy) {
    for (size_t s = 0; s < n; ++s) sync_code_aux(s);
  } else {  // codes from the float vectors, checked as a fresh build would be
    std::vector<uint32_t> live;
    for (size_t s = 0; s < n; ++s)
      if (labels_in[s] >= 0) live.push_back(uint32_t(s));
    update_codes_locked(live);
    check_codes_locked(live);
    readonly_ = want_readonly;
  }
}

}  // namespace nk
