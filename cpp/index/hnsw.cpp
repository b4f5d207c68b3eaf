// HNSW graph: storage, scratch and locks, insert and the layered walk, add and
// search. The codes, deletes and persistence are in hnsw_codec.cpp,
// hnsw_repair.cpp and hnsw_io.cpp (see hnsw_impl.h).
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
#include "index/hnsw_impl.h"

namespace nk {

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
// (Query and Scratch are defined in hnsw_impl.h)

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
  s->todo.resize(kMaxWidth * M0_ + 1);
  s->dbuf.resize(kMaxWidth * M0_ + 1);
  s->fresh.resize(kMaxWidth * M0_ + 1);
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

// Starts fetching what dist(q, t) reads: every line of t's code (at 128-d it
// spans two, and fetching only the first left the second as a full miss inside
// the distance) and its per-vector scalars, or its float vector on the float walk.
// Always inlined: GCC found this function free of side effects (a prefetch
// does not count as one) and deleted the calls to it, so the walk waited on
// every code in turn and ran at half speed (caught by the GloVe benchmark).
__attribute__((always_inline)) inline void Hnsw::prefetch_code(uint32_t t) const {
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
__attribute__((always_inline)) inline void Hnsw::prefetch_links(uint32_t s) const {  // see prefetch_code
  const uint8_t* b = block(s);
  for (size_t off = dcode_ & ~size_t(63); off < bsize_; off += 64) __builtin_prefetch(b + off);
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
// Each step's new entries are merged in at once instead of sift loops with
// unpredictable branches (the heaps were a fifth of a build). Leaves the result
// in sc.res, unordered for the callers' purposes.
//
// width > 1 (level 0 only; search_layer clamps it): each step expands the
// `width` best unexpanded nodes together, so their neighbours' codes are fetched
// in one burst and the misses of two expansions overlap instead of queueing one
// after the other. With width 1 it visits the nodes in the order of the
// textbook walk.
void Hnsw::search_layer_sorted(const Query& q, uint32_t ep, int level, size_t ef, Scratch& sc,
                               size_t width) const {
  using Entry = std::pair<float, uint32_t>;
  constexpr uint32_t kDone = 1u << 31;  // expanded; slots stay below 2^31 on this path
  sc.begin(n_slots_);
  auto& pool = sc.res;
  const size_t maxl = max_links(level);
  pool.resize(ef);
  Entry* P = pool.data();
  uint32_t* todo = sc.todo.data();
  auto next_unexpanded = [&](size_t i, size_t size) {
    while (i < size && (P[i].second & kDone)) ++i;
    return i;
  };

  sc.test_and_set(ep);
  P[0] = {dist(q, ep), ep};
  size_t size = 1, cur = 0;
  while (cur < size) {
    size_t nt = 0, nx = cur;
    for (size_t w = 0; w < width && nx < size; ++w) {
      const uint32_t c = P[nx].second;
      P[nx].second = c | kDone;
      nt += unvisited_neighbours(c, level, maxl, sc, todo + nt);
      nx = next_unexpanded(nx + 1, size);
    }
    // Fetch the likely next nodes' links now (see search_layer).
    const size_t next = nx;
    if (level == 0)
      for (size_t w = 0; w < width && nx < size; ++w, nx = next_unexpanded(nx + 1, size))
        prefetch_links(P[nx].second);
    // All distances first: independent loads that the core can overlap,
    // where deciding on each before the next serialised the cache misses.
    float* dj = sc.dbuf.data();
    for (size_t j = 0; j < nt; ++j) dj[j] = dist(q, todo[j]);
    // The neighbours that can enter (strictly closer than the worst of a full
    // list), sorted, then merged in from the back in one pass: one move of the
    // list's tail per step, where a binary search and a move per entry were a
    // fifth of the walk on cached data. Whether a neighbour enters is a coin
    // flip to the branch predictor, so each is written and kept by the count.
    size_t lowest = size;  // first position that received a new entry
    Entry* F = sc.fresh.data();
    size_t m = 0;
    const float worst = size == ef ? P[size - 1].first : kInf;
    for (size_t j = 0; j < nt; ++j) {
      F[m] = {dj[j], todo[j]};
      m += dj[j] < worst;
    }
    if (m) {
      for (size_t a = 1; a < m; ++a) {  // stable insertion sort: m is small
        const Entry x = F[a];
        size_t b = a;
        for (; b > 0 && F[b - 1].first > x.first; --b) F[b] = F[b - 1];
        F[b] = x;
      }
      // The best newcomer is expanded next when it beats the guess fetched
      // above: fetch its links while the merge runs.
      if (level == 0 && (next >= size || F[0].first < P[next].first)) prefetch_links(F[0].second);
      // Largest first into P[k]. On equal distances the listed entry stays
      // first, as an upper-bound insertion would; positions from ef on drop.
      size_t i = size, k = size + m;
      for (size_t j = m; j > 0;) {
        --k;
        if (i > 0 && P[i - 1].first > F[j - 1].first) {
          --i;
          if (k < ef) P[k] = P[i];
        } else {
          --j;
          if (k < ef) P[k] = F[j];
        }
      }
      size = std::min(size + m, ef);
      if (k < ef) lowest = k;
    }
    // Everything before cur is expanded, and so is cur itself unless something
    // landed at or before it: continue from the first unexpanded entry.
    cur = lowest <= cur ? lowest : next_unexpanded(cur + 1, size);
  }
  pool.resize(size);
  for (auto& e : pool) e.second &= ~kDone;
}

void Hnsw::search_layer(const Query& q, uint32_t ep, int level, size_t ef, Scratch& sc,
                        const uint8_t* mask, size_t mask_len, size_t width) const {
  ef = std::min(ef, std::max<size_t>(n_slots_, 1));  // never more candidates than nodes
  width = level == 0 ? std::min(std::max<size_t>(width, 1), kMaxWidth) : 1;
  if (!mask && free_.empty() && n_slots_ < (size_t(1) << 31)) {
    search_layer_sorted(q, ep, level, ef, sc, width);
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
    size_t nt = unvisited_neighbours(c, level, maxl, sc, todo);
    // With width > 1, the next best candidates too, as long as they could still
    // enter the results (the loop would stop there): the nodes search_layer_sorted
    // expands together, so that both walks visit the same nodes in the same order.
    for (size_t w = 1; w < width && !cand.empty(); ++w) {
      if (res.size() >= ef && -cand.front().first > res.front().first) break;
      const uint32_t cw = cand.front().second;
      std::pop_heap(cand.begin(), cand.end());
      cand.pop_back();
      nt += unvisited_neighbours(cw, level, maxl, sc, todo + nt);
    }
    // The likely next node to expand: fetch its links now, while this node's
    // neighbours are processed (fetching them just before use would not hide
    // the latency). A better neighbour found below may take its turn instead.
    if (level == 0 && !cand.empty()) prefetch_links(cand.front().second);
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

// Adds s to n's list on `level` when it has room (true), or finds s there
// already (true); false when the list is full without s. Caller holds n's lock;
// buf has room for a list.
bool Hnsw::append_link(uint32_t n, int level, uint32_t s, uint32_t* buf) {
  const size_t cnt = read_links(n, level, buf);
  if (std::find(buf, buf + cnt, s) != buf + cnt) return true;
  if (cnt >= max_links(level)) return false;
  uint32_t* p = level == 0 ? hdr(n) : upper(n, level);
  store_relaxed(p + 1 + cnt, s);
  const uint32_t flags = level == 0 ? (load_relaxed(p) & ~kCountMask) : 0;
  store_release(p, uint32_t(cnt + 1) | flags);
  return true;
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
    if (append_link(n, level, s, links)) continue;
    // n's list is full (append_link left it in links): prune it with s among it.
    // n's code was just read by the walk and is likely cached; its float vector
    // (4x the bytes) never is. The heuristic already measures kept neighbours
    // on codes, so the pruning stays on one scale.
    prepare_slot(n, sc.qn, *sc.q.ck);
    auto& pool = sc.pool2;
    pool.clear();
    pool.emplace_back(dist(sc.qn, s), s);
    for (size_t i = 0; i < maxl; ++i) pool.emplace_back(dist(sc.qn, links[i]), links[i]);
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

// More level-0 neighbours for s, once its whole batch is linked. Insert keeps
// M links per node, as hnswlib does, and level 0 holds up to 2·M: the rest of
// a list is filled only by later nodes' reverse links, so many stay short
// (GloVe: 24 of 32 on average). This pass walks from s itself (its
// neighbourhood is in place, no descent needed) with ef_construction / 2,
// lets the heuristic choose up to 2·M from what it finds and s's current
// links, and adds the chosen ones s lacks while its list has room; the
// reverse link is added where the other list has room. Nothing is removed, so
// the graph only gains edges: re-choosing whole lists instead measured as
// fast on GloVe but lost recall on duplicates, near-duplicates and sparse
// data (a group of identical vectors chose only each other). GloVe: mean 30
// links, and recall 0.95 at ef ~78 instead of ~100 (+14% queries/s). After
// the inserts, because denser lists during the build slow every later
// insert's walk (choosing 2·M at insert doubled the build time).
void Hnsw::fill_links(uint32_t s, Scratch& sc) {
  if (load_relaxed(hdr(s)) & kFree) return;
  uint32_t* links = sc.links.data();
  const size_t cnt = read_links(s, 0, links);
  if (cnt >= M0_) return;
  prepare(vec(s), sc.q, code_kernels());
  search_layer(sc.q, s, 0, std::max(efc_ / 2, M0_), sc, nullptr, 0);
  auto& pool = sc.pool;
  pool.clear();
  for (auto& r : sc.res)
    if (r.second != s) pool.push_back(r);
  // s's current neighbours count for the heuristic also when beyond the walk's
  // ef best: a far one can be the only link in its direction.
  const size_t walked = pool.size();
  for (size_t i = 0; i < cnt; ++i) {
    bool listed = false;
    for (size_t j = 0; j < walked && !listed; ++j) listed = pool[j].second == links[i];
    if (!listed) pool.emplace_back(dist(sc.q, links[i]), links[i]);
  }
  if (pool.empty()) return;
  rescore_on_floats(vec(s), pool);
  sort_closest_first(pool);
  select_neighbours(pool, M0_, sc.sel, sc);
  auto& added = sc.sel2;
  added.clear();
  {
    std::lock_guard<std::mutex> g(node_lock(s));
    size_t n = read_links(s, 0, links);  // again: reverse links may have come meanwhile
    const size_t before = n;
    for (uint32_t t : sc.sel) {
      if (n >= M0_) break;
      if (std::find(links, links + n, t) == links + n) links[n++] = t;
    }
    if (n == before) return;
    write_links(s, 0, links, n);
    added.assign(links + before, links + n);
  }
  for (uint32_t t : added) {
    std::lock_guard<std::mutex> g(node_lock(t));
    append_link(t, 0, s, links);  // never pruned for it: a full list stays as it is
  }
}

// ---------------------------------------------------------------- add

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
    // Each pass hands the batch's nodes out one at a time to nt workers.
    const int nt = std::max(1, std::min<int>(threads, int((n + 63) / 64)));
    auto over_batch = [&](auto&& step) {
      std::atomic<size_t> next{0};
      run_workers(nt, [&](int) {
        ScratchLease sc(*this);
        for (size_t i; !stop.stop_requested() && (i = next.fetch_add(1)) < n;) step(i, *sc);
      }, &stop);
    };
    over_batch([&](size_t i, Scratch& sc) {
      insert(slots[i], sc);
      linked[i] = 1;
    });
    // Every node of the batch is linked and findable; a stop from here on
    // leaves some lists unfilled, which costs speed, never an answer.
    if (fills_level0()) over_batch([&](size_t i, Scratch& sc) { fill_links(slots[i], sc); });
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
  search_layer(sc.q, cur, 0, std::max(ef, k), sc, mask, mask_len, kMaxWidth);

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
  // The first k candidates are always re-ranked and few more are (GloVe, k=10:
  // 11.2 on average): fetch k + 2 at once (at most 32 in flight), then stay that
  // far ahead. Fetching 2k left nearly half of the fetched vectors unread.
  const size_t kAhead = std::min<size_t>(32, k + 2);
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
    ScratchLease sc(*this);
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
  });
}

void Hnsw::scan(const float* q, size_t nq, size_t k, const uint8_t* mask, size_t mask_len,
                int64_t* out_ids, float* out_dist) const {
  ScratchLease sc(*this);
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
}

}  // namespace nk
