// Signal polling for StopToken: the only place the pool talks to Python.
#include <Python.h>  // first, as Python asks

#include "common/thread_pool.h"

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

void raise_pending_signal() {
  if (pending_type) {
    PyErr_Restore(pending_type, pending_value, pending_tb);
    pending_type = pending_value = pending_tb = nullptr;
  } else {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
  }
}

}  // namespace nk
