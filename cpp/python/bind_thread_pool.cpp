// The thread pool's Python side: nk::Interrupted becomes the exception the
// signal handler raised (KeyboardInterrupt for SIGINT), and a self-test entry
// point for the pool's tests.
#include <nanobind/nanobind.h>

#include <atomic>
#include <chrono>
#include <new>

#include "common/thread_pool.h"
#include "python/bindings.h"

namespace nb = nanobind;

NEARKIT_BIND(bind_thread_pool) {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const nk::Interrupted&) {
      nk::raise_pending_signal();
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
