// HNSW deletes: remove() unlinks the dead nodes, repairs the link lists that
// pointed to them and relinks nodes left unreachable.
#include "index/hnsw_impl.h"

#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/thread_pool.h"

namespace nk {

// ---------------------------------------------------------------- remove / repair

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
      ScratchLease sc(*this);
      sc->q.ck = &code_kernels();
      for (size_t b; (b = next.fetch_add(chunk)) < n_slots_;) {
        size_t e = std::min(n_slots_, b + chunk);
        for (size_t p = b; p < e; ++p) {
          if (dead[p] || labels()[p] < 0) continue;
          for (int l = 0; l <= levels()[p]; ++l) repair_node(uint32_t(p), l, dead.data(), *sc);
        }
      }
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
  ScratchLease sc(*this);
  for (int round = 0; round < 8; ++round) {
    auto stranded = find_stranded_locked();
    if (stranded.empty()) break;
    for (auto [s, l] : stranded) relink(s, l, round > 0, *sc);
  }
}

}  // namespace nk
