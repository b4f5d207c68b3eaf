// Instruction-set detection and the run-time choice of SIMD kernels.
//
// The core is compiled for the architecture's baseline; the files under
// kernels/avx2, kernels/avx512 and kernels/neon are compiled with their ISA's
// flags and only called after the CPU has been checked here (through the
// tables of kernels/dispatch.h). NEARKIT_ISA=scalar|avx2|avx512
// in the environment (or nearkit._core.set_isa) forces a lower level, which is
// how the tests check every kernel variant against numpy on one machine.
//
// Rule for the files under kernels/avx2, avx512, neon: keep them to plain kernels over raw
// pointers, everything in an anonymous namespace, reached through a function
// table. No STL containers or shared inline helpers there: the linker may keep
// an ISA-flagged copy of an inline function for the whole module and crash
// older CPUs with an illegal instruction.
#pragma once
#include <string>
#include <vector>

namespace nk {

enum class Isa : int { Scalar = 0, AVX2 = 1, AVX512 = 2, NEON = 3 };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws std::invalid_argument
bool isa_supported(Isa isa);                 // by this CPU and this build
std::vector<Isa> supported_isas();
Isa best_isa();
Isa active_isa();
void set_active_isa(Isa isa);  // throws std::invalid_argument if unsupported

}  // namespace nk
