// HNSW's per-vector SQ8 codes (see hnsw.h): centres, encoding and decoding,
// the guard that checks them on a sample, and the query form of a vector.
#include "index/hnsw_impl.h"

#include <random>
#include <stdexcept>

#include "kernels/distance.h"
#include "kernels/hnsw_codes.h"

namespace nk {

// ---------------------------------------------------------------- codes

// Unit length for cosine (zero vectors stay zero), as metrics.normalize_rows.
void Hnsw::normalize(float* v) const {
  double n2 = 0;
  for (size_t j = 0; j < dim_; ++j) n2 += double(v[j]) * v[j];
  if (n2 <= 0) return;
  float inv = float(1.0 / std::sqrt(n2));
  for (size_t j = 0; j < dim_; ++j) v[j] *= inv;
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

// Replaces the walk's code distances of a node's candidates with float ones
// when neighbours are selected on floats (the heuristic compares them with
// float distances between candidates).
void Hnsw::rescore_on_floats(const float* x, std::vector<std::pair<float, uint32_t>>& pool) const {
  if (float_walk_ || !select_on_floats()) return;
  const Kernels& K = kernels();
  for (auto& r : pool) r.first = exact_dist(x, r.second, K);
}

}  // namespace nk
