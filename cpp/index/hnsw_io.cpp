// HNSW persistence and introspection: flat arrays out (export_arrays), in
// (attach, with structural checks and the legacy layout), labels and vectors.
#include "index/hnsw_impl.h"

#include <stdexcept>

namespace nk {

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
