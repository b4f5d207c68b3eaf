// Self-registration of binding code, so each concept keeps its Python bindings
// in its own file (bind_<concept>.cpp) and no central file lists them all.
//
//   NEARKIT_BIND(bind_flat) { m.def("flat_search", ...); }
#pragma once
#include <nanobind/nanobind.h>

#include <vector>

namespace nk {

using Binder = void (*)(nanobind::module_&);
std::vector<Binder>& binders();

struct BindRegistrar {
  explicit BindRegistrar(Binder b) { binders().push_back(b); }
};

}  // namespace nk

#define NEARKIT_BIND(name)                                   \
  static void name(nanobind::module_& m);                    \
  static ::nk::BindRegistrar name##_registrar_instance(name); \
  static void name(nanobind::module_& m)
