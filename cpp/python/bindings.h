// The binding functions of nearkit._core, one per concept, each defined in its
// own python/bind_<concept>.cpp as NEARKIT_BIND(bind_<concept>) { m.def(...); }
// and called in this order by module.cpp (the order of the module's names).
#pragma once
#include <nanobind/nanobind.h>

#define NEARKIT_BIND(name) void name(nanobind::module_& m)

NEARKIT_BIND(bind_annoy);
NEARKIT_BIND(bind_flat);
NEARKIT_BIND(bind_hnsw);
NEARKIT_BIND(bind_ivf);
NEARKIT_BIND(bind_kmeans);
NEARKIT_BIND(bind_resp);
NEARKIT_BIND(bind_trees);
NEARKIT_BIND(bind_thread_pool);
