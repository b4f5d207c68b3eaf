#include "kernels/cpu.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "kernels/distance.h"

namespace nk {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
    case Isa::NEON: return "neon";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  if (name == "scalar") return Isa::Scalar;
  if (name == "avx2") return Isa::AVX2;
  if (name == "avx512") return Isa::AVX512;
  if (name == "neon") return Isa::NEON;
  throw std::invalid_argument("unknown instruction set '" + name +
                              "' (expected scalar, avx2, avx512 or neon)");
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#if defined(NEARKIT_X86)
    case Isa::AVX2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::AVX512:
      // The AVX-512 files also use BW/DQ/VL and VPOPCNTDQ; demand them all.
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
#endif
#if defined(NEARKIT_ARM)
    case Isa::NEON: return true;  // mandatory on arm64
#endif
    default: return false;
  }
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::AVX2, Isa::AVX512, Isa::NEON})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() {
  for (Isa isa : {Isa::AVX512, Isa::AVX2, Isa::NEON})
    if (isa_supported(isa)) return isa;
  return Isa::Scalar;
}

namespace {
Isa initial_isa() {
  Isa isa = best_isa();
  if (const char* forced = std::getenv("NEARKIT_ISA")) {
    try {
      Isa want = isa_from_name(forced);
      if (isa_supported(want)) isa = want;
    } catch (const std::invalid_argument&) {
      // An unknown name in the environment keeps the best ISA rather than
      // failing the import; set_isa() from Python reports the error.
    }
  }
  return isa;
}
std::atomic<int> g_active{static_cast<int>(initial_isa())};
}  // namespace

Isa active_isa() { return static_cast<Isa>(g_active.load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("instruction set '") + isa_name(isa) +
                                "' is not supported by this CPU or build");
  g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace nk
