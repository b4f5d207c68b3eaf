// 4-bit product-quantisation "fast scan": distances from uint8 look-up tables
// over codes packed so that one SIMD shuffle looks up 16 or 32 codes at once.
//
// Packed layout (shared by every ISA): vectors come in blocks of 32. A block
// holds, for each sub-quantiser m (padded to an even count mpad), 16 bytes in
// which byte j carries the code of vector j in its low nibble and the code of
// vector j + 16 in its high nibble. Sub-quantisers m and m+1 are adjacent, so
// one 32-byte load feeds both 128-bit lanes of an AVX2 shuffle (four
// sub-quantisers per AVX-512 load).
//
// The LUT is mpad * 16 uint8 entries (padding entries are 0). Sums are exact
// uint16 (callers keep mpad * 255 <= 65535).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu.h"

namespace nk {

// out[b * 32 + i] = sum_m lut[m * 16 + code(b, i, m)] for nblocks blocks.
using Pq4ScanFn = void (*)(const uint8_t* codes, size_t nblocks, size_t mpad, const uint8_t* lut,
                           uint16_t* out);

struct Pq4Kernels {
  const char* name;
  Pq4ScanFn scan;
};

const Pq4Kernels& pq4_kernels();             // active ISA
const Pq4Kernels& pq4_kernels_for(Isa isa);  // a given ISA (must be supported)

extern const Pq4Kernels kPq4Scalar;
#if defined(NEARKIT_X86)
extern const Pq4Kernels kPq4Avx2;
extern const Pq4Kernels kPq4Avx512;
#endif

constexpr size_t kPq4Block = 32;

}  // namespace nk
