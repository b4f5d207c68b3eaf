// Signal polling for StopToken and the translation of nk::Interrupted back into
// the exception the Python signal handler raised (KeyboardInterrupt for SIGINT).
#include "common/thread_pool.h"

#include <nanobind/nanobind.h>

#include <atomic>
#include <chrono>
#include <new>
#include <thread>

#include "python/registry.h"

namespace nb = nanobind;

namespace nk {

namespace {
// The exception a signal handler raised while a native call ran on this thread,
// kept until the call unwinds to the binding layer.
thread_local PyObject* pending_type = nullptr;
thread_local PyObject* pending_value = nullptr;
thread_local PyObject* pending_tb = nullptr;
}  // namespace

bool python_signal_pending() {
  if (!Py_IsInitialized()) return false;
  PyGILState_STATE g = PyGILState_Ensure();
  bool raised = PyErr_CheckSignals() != 0;
  if (raised) {
    Py_XDECREF(pending_type);
    Py_XDECREF(pending_value);
    Py_XDECREF(pending_tb);
    PyErr_Fetch(&pending_type, &pending_value, &pending_tb);
  }
  PyGILState_Release(g);
  return raised;
}

}  // namespace nk

NEARKIT_BIND(bind_thread_pool) {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const nk::Interrupted&) {
      if (nk::pending_type) {
        PyErr_Restore(nk::pending_type, nk::pending_value, nk::pending_tb);
        nk::pending_type = nk::pending_value = nk::pending_tb = nullptr;
      } else {
        PyErr_SetNone(PyExc_KeyboardInterrupt);
      }
    }
  });

  // For the tests of the pool itself: `threads` workers spin for `seconds`,
  // polling one StopToken; worker `fail_worker` (if >= 0) throws bad_alloc
  // after `fail_after` seconds. Returns the number of polls made.
  m.def(
      "_pool_selftest",
      [](int threads, double seconds, int fail_worker, double fail_after) {
        std::atomic<long long> polls{0};
        {
          nb::gil_scoped_release release;
          nk::StopToken stop;
          auto t0 = std::chrono::steady_clock::now();
          auto elapsed = [&] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          };
          nk::run_workers(
              threads,
              [&](int w) {
                while (elapsed() < seconds) {
                  if (stop.stop_requested()) return;
                  polls.fetch_add(1, std::memory_order_relaxed);
                  if (w == fail_worker && elapsed() >= fail_after) throw std::bad_alloc();
                }
              },
              &stop);
        }
        return polls.load();
      },
      nb::arg("threads"), nb::arg("seconds"), nb::arg("fail_worker") = -1,
      nb::arg("fail_after") = 0.0);
}
