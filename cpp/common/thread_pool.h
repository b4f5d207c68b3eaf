// The one way the core runs work on several threads, and the one way a long
// native call notices Ctrl-C.
//
// run_workers(threads, fn) calls fn(w) for w in [0, threads), the calling
// thread being worker 0, and waits for all of them. An exception thrown by any
// worker (bad_alloc, invalid_argument, Interrupted...) is caught on that
// worker, the other workers are asked to stop (their StopToken reports it),
// and the first exception is rethrown on the calling thread once every worker
// has finished, so nanobind turns it into a Python exception instead of
// std::terminate killing the process. If the system refuses to start a
// thread, the caller runs that worker's share itself.
//
// StopToken: long loops poll stop_requested() (an atomic load; on the thread
// that came from Python, a clock read and, at most every
// kSignalPollMs, a brief GIL acquisition to run PyErr_CheckSignals). When a
// signal handler raised (KeyboardInterrupt for SIGINT), the token stops every
// worker and the call throws nk::Interrupted, which the bindings translate back
// into the handler's exception. Callers poll only at points where stopping
// leaves their data consistent.
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace nk {

// A long call stopped by a pending signal (see StopToken).
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted by a signal") {}
};

constexpr int kSignalPollMs = 50;

// True when a Python signal handler raised on this thread (main thread only);
// the raised exception is kept for the binding layer to re-raise. Takes the
// GIL briefly: call only with the GIL released.
bool python_signal_pending();
// Sets the Python error the pending signal raised (KeyboardInterrupt if none
// was kept); the binding layer's translation of Interrupted. Needs the GIL.
void raise_pending_signal();

class StopToken {
 public:
  StopToken() : owner_(std::this_thread::get_id()), next_(clock::now() + period()) {}
  StopToken(const StopToken&) = delete;
  StopToken& operator=(const StopToken&) = delete;

  // Cheap enough for a loop whose steps take a microsecond or more: a clock
  // read per poll on the calling thread (a tick counter instead would make the
  // poll interval depend on how long a step takes: 64 slow steps were seconds).
  bool stop_requested() {
    if (stop_.load(std::memory_order_relaxed)) return true;
    if (std::this_thread::get_id() != owner_) return false;
    auto now = clock::now();
    if (now < next_) return false;
    next_ = now + period();
    if (python_signal_pending()) {
      interrupted_.store(true);
      stop_.store(true);
      return true;
    }
    return false;
  }
  void request_stop() { stop_.store(true); }
  // True when stopping was caused by a signal (not by a failing worker).
  bool interrupted() const { return interrupted_.load(); }
  // Throws Interrupted if a signal stopped the call.
  void throw_if_interrupted() const {
    if (interrupted()) throw Interrupted();
  }

 private:
  using clock = std::chrono::steady_clock;
  static clock::duration period() { return std::chrono::milliseconds(kSignalPollMs); }
  std::atomic<bool> stop_{false}, interrupted_{false};
  std::thread::id owner_;
  clock::time_point next_;
};

// See the file comment. `stop` (optional) is told to stop when a worker throws.
template <class Fn>
void run_workers(int threads, Fn&& fn, StopToken* stop = nullptr) {
  if (threads <= 1) {
    fn(0);
    if (stop) stop->throw_if_interrupted();
    return;
  }
  std::exception_ptr first;
  std::mutex first_mutex;
  auto guarded = [&](int w) {
    try {
      fn(w);
    } catch (...) {
      if (stop) stop->request_stop();
      std::lock_guard<std::mutex> g(first_mutex);
      if (!first) first = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads - 1));
  int started = 1;
  try {
    for (; started < threads; ++started) pool.emplace_back(guarded, started);
  } catch (const std::system_error&) {
    // No more threads available: the caller runs the remaining workers below.
  }
  guarded(0);
  for (int w = started; w < threads; ++w) guarded(w);
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
  if (stop) stop->throw_if_interrupted();
}

// fn(begin, end) over [0, n) cut into at most `threads` contiguous ranges whose
// sizes are multiples of `grain` (the last may be shorter).
template <class Fn>
void parallel_ranges(size_t n, int threads, size_t grain, Fn&& fn, StopToken* stop = nullptr) {
  const size_t t = size_t(threads > 1 ? threads : 1);
  grain = grain ? grain : 1;
  size_t per = (n + t - 1) / t;
  per = (per + grain - 1) / grain * grain;
  const size_t parts = per ? (n + per - 1) / per : 0;
  if (parts <= 1) {
    fn(size_t(0), n);
    if (stop) stop->throw_if_interrupted();
    return;
  }
  run_workers(
      int(parts), [&](int p) { fn(size_t(p) * per, std::min(n, (size_t(p) + 1) * per)); }, stop);
}

}  // namespace nk
