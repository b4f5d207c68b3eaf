// nearkit._core: the module entry point. It binds the ISA controls and the
// plain distance kernels that the tests compare against numpy, then calls each
// concept's binding function (python/bindings.h) in a fixed order.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <stdexcept>

#include "kernels/cpu.h"
#include "kernels/distance.h"
#include "python/bindings.h"
#include "python/ndarray.h"

namespace nb = nanobind;

using CFloat2D = nk::py::In<float, 2>;

NB_MODULE(_core, m) {
  m.doc() = "nearkit's C++ kernels";

  m.def("isa", [] { return std::string(nk::isa_name(nk::active_isa())); },
        "Instruction set whose kernels are in use.");
  m.def("best_isa", [] { return std::string(nk::isa_name(nk::best_isa())); });
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (auto isa : nk::supported_isas()) out.emplace_back(nk::isa_name(isa));
    return out;
  });
  m.def("set_isa", [](const std::string& name) { nk::set_active_isa(nk::isa_from_name(name)); },
        nb::arg("name"), "Force the kernels of one instruction set (tests, benchmarks).");

  // Plain pairwise kernel matrix, through the active ISA's single-pair kernels.
  // kind: "l2sq" or "dot". For tests and small jobs; indexes use their own paths.
  m.def(
      "pairwise",
      [](CFloat2D a, CFloat2D b, const std::string& kind) {
        if (a.shape(1) != b.shape(1)) throw std::invalid_argument("dimension mismatch");
        bool l2 = kind == "l2sq";
        if (!l2 && kind != "dot") throw std::invalid_argument("kind must be 'l2sq' or 'dot'");
        size_t na = a.shape(0), nbr = b.shape(0), d = a.shape(1);
        float* out = new float[na * nbr > 0 ? na * nbr : 1];
        {
          nb::gil_scoped_release release;
          const nk::Kernels& K = nk::kernels();
          for (size_t i = 0; i < na; ++i)
            (l2 ? K.l2sq_many : K.dot_many)(a.data() + i * d, b.data(), nbr, d, out + i * nbr);
        }
        nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<float*>(p); });
        return nk::py::Out2<float>(out, {na, nbr}, owner);
      },
      nb::arg("a"), nb::arg("b"), nb::arg("kind"));

  bind_annoy(m);
  bind_flat(m);
  bind_hnsw(m);
  bind_ivf(m);
  bind_kmeans(m);
  bind_resp(m);
  bind_trees(m);
  bind_thread_pool(m);
}
