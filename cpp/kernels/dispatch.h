// The one run-time choice of SIMD kernels.
//
// A kernel family is a struct of function pointers (distance.h's Kernels,
// flat_scan.h's FlatKernels, ...) with one constant table per instruction set,
// named k<Family><Isa> and defined in kernels/<isa>/<family>_<isa>.cpp. The
// family's <family>_kernels_for(isa) is IsaTables::get over its tables, and
// <family>_kernels() is that for the active ISA (cpu.h). Fetch a table once per
// call, not per distance. See cpu.h for what the per-ISA files may contain.
#pragma once
#include "kernels/cpu.h"

namespace nk {

template <class Table>
struct IsaTables {
  const Table* scalar;
  const Table* avx2;    // nullptr: none in this build or family
  const Table* avx512;  // nullptr: none in this build or family
  const Table* neon;    // nullptr: none in this build or family

  // The table of `isa`; a family without one for it runs the scalar table
  // (its portable loops vectorise with the baseline SSE2 / NEON).
  const Table& get(Isa isa) const {
    const Table* t = nullptr;
    switch (isa) {
      case Isa::AVX512: t = avx512; break;
      case Isa::AVX2: t = avx2; break;
      case Isa::NEON: t = neon; break;
      case Isa::Scalar: break;
    }
    return t ? *t : *scalar;
  }
};

}  // namespace nk

// A table that exists only when building for x86-64 / arm64, else nullptr.
#if defined(NEARKIT_X86)
#define NK_X86_TABLE(t) (&(t))
#else
#define NK_X86_TABLE(t) nullptr
#endif
#if defined(NEARKIT_ARM)
#define NK_ARM_TABLE(t) (&(t))
#else
#define NK_ARM_TABLE(t) nullptr
#endif
