// Every kernel family's tables in one place, so adding an ISA or a family is
// one line here.
#include "kernels/dispatch.h"

#include "kernels/distance.h"
#include "kernels/flat_scan.h"
#include "kernels/hnsw_codes.h"
#include "kernels/ivfscan.h"
#include "kernels/kmeans_kernels.h"
#include "kernels/pq4.h"
#include "kernels/tree_kernels.h"

namespace nk {

namespace {
constexpr IsaTables<Kernels> kDistanceTables = {
    &kDistanceScalar, NK_X86_TABLE(kDistanceAvx2), NK_X86_TABLE(kDistanceAvx512),
    NK_ARM_TABLE(kDistanceNeon)};
constexpr IsaTables<FlatKernels> kFlatTables = {
    &kFlatScalar, NK_X86_TABLE(kFlatAvx2), NK_X86_TABLE(kFlatAvx512), nullptr};
constexpr IsaTables<BlockKernels> kBlockTables = {
    &kBlockScalar, NK_X86_TABLE(kBlockAvx2), NK_X86_TABLE(kBlockAvx512), nullptr};
constexpr IsaTables<KmeansKernels> kKmeansTables = {
    &kKmeansScalar, NK_X86_TABLE(kKmeansAvx2), NK_X86_TABLE(kKmeansAvx512), nullptr};
constexpr IsaTables<Pq4Kernels> kPq4Tables = {
    &kPq4Scalar, NK_X86_TABLE(kPq4Avx2), NK_X86_TABLE(kPq4Avx512), nullptr};
constexpr IsaTables<trees::TreeKernels> kTreeTables = {
    &trees::kTreeScalar, NK_X86_TABLE(trees::kTreeAvx2), NK_X86_TABLE(trees::kTreeAvx512),
    nullptr};
// HNSW's tables keep their older names (k<Isa>CodeKernels): the per-ISA files
// are being tuned on another branch, so they are left untouched here.
constexpr IsaTables<CodeKernels> kHnswCodeTables = {
    &kScalarCodeKernels, NK_X86_TABLE(kAvx2CodeKernels), NK_X86_TABLE(kAvx512CodeKernels),
    nullptr};
}  // namespace

const Kernels& kernels_for(Isa isa) { return kDistanceTables.get(isa); }
const Kernels& kernels() { return kernels_for(active_isa()); }

const FlatKernels& flat_kernels_for(Isa isa) { return kFlatTables.get(isa); }
const FlatKernels& flat_kernels() { return flat_kernels_for(active_isa()); }

const BlockKernels& block_kernels_for(Isa isa) { return kBlockTables.get(isa); }
const BlockKernels& block_kernels() { return block_kernels_for(active_isa()); }

const KmeansKernels& kmeans_kernels_for(Isa isa) { return kKmeansTables.get(isa); }
const KmeansKernels& kmeans_kernels() { return kmeans_kernels_for(active_isa()); }

const Pq4Kernels& pq4_kernels_for(Isa isa) { return kPq4Tables.get(isa); }
const Pq4Kernels& pq4_kernels() { return pq4_kernels_for(active_isa()); }

const CodeKernels& code_kernels_for(Isa isa) { return kHnswCodeTables.get(isa); }
const CodeKernels& code_kernels() { return code_kernels_for(active_isa()); }

namespace trees {
const TreeKernels& tree_kernels_for(Isa isa) { return kTreeTables.get(isa); }
const TreeKernels& tree_kernels() { return tree_kernels_for(active_isa()); }
}  // namespace trees

}  // namespace nk
