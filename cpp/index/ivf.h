// Inverted-file search: coarse assignment to the nearest lists, a scan of each
// probed list's codes, optional exact re-ranking ("refine").
//
// All arrays are owned by Python (numpy arrays or read-only memory maps) and
// are described here by raw pointers. Lists are stored CSR-style: list l owns
// slots offsets[l] .. offsets[l+1]; ids[slot] is the user id (-1 = padding or
// hole). For the 4-bit fast-scan codec, list starts and lengths are multiples
// of 32 and codes are packed per block (pq4.h); for the flat codec they are
// multiples of 16 and vectors are stored blocked (ivfscan.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/metric.h"

namespace nk {

enum class Codec : int { Flat = 0, SQ8 = 1, FP16 = 2, PQ8 = 3, PQ4FS = 4 };

// "flat", "sq8", "fp16", "pq8", "pq4fs"; throws std::invalid_argument.
Codec codec_from_name(const std::string& name);

struct IvfView {
  size_t dim = 0;      // dimension of coded vectors (after any pre-transform)
  size_t nlist = 0;
  Metric metric = Metric::L2;  // L2 (squared) or IP (reported as 1 - dot)
  Codec codec = Codec::Flat;
  const float* centroids = nullptr;  // (nlist, dim)
  const float* centroid_blocks = nullptr;  // the same, blocked by 16 (ivfscan.h), zero padded
  const int64_t* offsets = nullptr;  // (nlist + 1)
  const int64_t* ids = nullptr;      // (nslots)
  // Live slots per list when every list is "prefix dense" (live slots first,
  // then only padding), which lets scans skip per-slot id checks; else nullptr.
  const uint32_t* list_valid = nullptr;
  size_t nslots = 0;
  const uint8_t* codes = nullptr;    // per slot code_size bytes; for PQ4FS per block
  size_t code_size = 0;
  // SQ8: x[j] = vmin[j] + code * step[j]
  const float* sq_vmin = nullptr;
  const float* sq_step = nullptr;
  // PQ: codebooks (M, ksub, dsub)
  const float* pq_codebooks = nullptr;
  size_t pq_m = 0, pq_ksub = 0, pq_dsub = 0, pq_mpad = 0;
  bool by_residual = false;
  // Refine: exact vectors in the original space, one per slot (nullptr = none).
  const float* refine = nullptr;
  size_t refine_dim = 0;
};

// One index state as Python hands it over: pointers into its arrays with the
// sizes they have, before any check; has_* says an optional array was given.
struct IvfArrays {
  Codec codec = Codec::Flat;
  int metric = 0;  // 0: L2; any other code: inner product
  const float* centroids = nullptr;
  size_t nlist = 0, dim = 0;
  const int64_t* offsets = nullptr;
  size_t n_offsets = 0;
  const int64_t* ids = nullptr;
  size_t nslots = 0;
  const uint8_t* codes = nullptr;
  size_t codes_bytes = 0, code_size = 0;
  bool has_sq = false;  // both sq_vmin and sq_step were given (even if empty)
  const float* sq_vmin = nullptr;
  const float* sq_step = nullptr;
  size_t sq_vmin_len = 0, sq_step_len = 0;
  bool has_codebooks = false;
  const float* codebooks = nullptr;  // (pq_m, pq_ksub, pq_dsub)
  size_t pq_m = 0, pq_ksub = 0, pq_dsub = 0, mpad = 0;
  bool by_residual = false;
  bool has_refine = false;
  const float* refine = nullptr;  // (refine_rows, refine_dim)
  size_t refine_rows = 0, refine_dim = 0;
};

// The checked view of one index state plus what search derives from it once:
// the centroids blocked by 16 and, when every list is prefix dense, the live
// count per list. The arrays must outlive it (the binding keeps them).
class IvfLists {
 public:
  explicit IvfLists(const IvfArrays& a);  // throws std::invalid_argument
  IvfLists(const IvfLists&) = delete;     // the view points into the members
  IvfLists& operator=(const IvfLists&) = delete;
  const IvfView& view() const { return view_; }

 private:
  IvfView view_;
  std::vector<float> centroid_blocks_;
  std::vector<uint32_t> list_valid_;
};

// Search nq queries. q: (nq, dim) coded-space queries; q_orig: (nq, refine_dim)
// original-space queries (only read when refining). Results (nq, k) hold user
// ids (-1 padding) and distances (+inf padding) in nearkit's convention.
// mask: optional per-slot allow mask. k_factor >= 1: candidates kept for refine.
void ivf_search(const IvfView& v, const float* q, const float* q_orig, size_t nq, size_t k,
                size_t nprobe, size_t k_factor, const uint8_t* mask, size_t threads,
                int64_t* out_ids, float* out_dist);

// Half-precision helpers (scalar, exact round-to-nearest-even).
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);

}  // namespace nk
