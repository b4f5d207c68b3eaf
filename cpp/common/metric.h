// The metric codes of every index, as Python passes them: 0-2 are
// nearkit.metrics.METRIC_CODES (flat, HNSW, IVF take those), the trees also
// take 3 and 4 (hamming rows are packed uint64 words).
// The annoy-file reader keeps Annoy's own on-disk codes (index/annoy_nodes.h).
#pragma once

namespace nk {

enum class Metric : int { L2 = 0, IP = 1, Cosine = 2, Manhattan = 3, Hamming = 4 };

}  // namespace nk
