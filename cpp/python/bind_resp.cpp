// RESP2 replies of the server's plainest KNN request (``RETURN 1 <score>``), for a
// whole batch of graph search results at once: the server's hottest reply, and
// in Python its per-row formatting cost more than the graph search itself.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <charconv>
#include <cmath>
#include <string>

#include "python/bindings.h"
#include "python/ndarray.h"

namespace nb = nanobind;

namespace {

template <class T>
using In2 = nk::py::In<T, 2>;

void append_int(std::string& out, char tag, long long v) {
  char buf[24];
  buf[0] = tag;
  char* end = std::to_chars(buf + 1, buf + sizeof buf - 2, v).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buf, size_t(end - buf));
}

// Like Python's b"%.12g" % d, which is what Redis prints (C's %.12g of the float);
// std::to_chars with a precision is specified as printf's %.*g, and is much faster.
size_t format_score(char* buf, size_t cap, double d) {
  if (std::isnan(d)) {
    buf[0] = 'n', buf[1] = 'a', buf[2] = 'n';
    return 3;
  }
  return size_t(std::to_chars(buf, buf + cap, d, std::chars_format::general, 12).ptr - buf);
}

}  // namespace

NEARKIT_BIND(bind_resp) {
  m.def(
      "resp2_knn_replies",
      [](In2<int64_t> ids, In2<float> dist, size_t lo, size_t hi, nb::list slot_key, nb::dict live,
         nb::bytes row_tail) {
        if (ids.shape(0) != dist.shape(0) || ids.shape(1) != dist.shape(1))
          throw std::invalid_argument("ids and dist must have the same shape");
        const size_t rows = ids.shape(0), k = ids.shape(1);
        const size_t n_keys = nb::len(slot_key);
        const char* tail = row_tail.c_str();
        const size_t tail_len = row_tail.size();
        nb::list replies;
        std::string body, out;
        for (size_t r = 0; r < rows; ++r) {
          const int64_t* id = ids.data() + r * k;
          const float* dd = dist.data() + r * k;
          size_t total = 0;  // results found (the graph pads with id -1)
          while (total < k && id[total] >= 0) ++total;
          body.clear();
          long long n = 0;
          for (size_t j = lo; j < hi && j < total; ++j) {
            if (size_t(id[j]) >= n_keys) continue;
            PyObject* key = PyList_GET_ITEM(slot_key.ptr(), Py_ssize_t(id[j]));
            if (key == Py_None || !PyBytes_Check(key)) continue;
            int has = PyDict_Contains(live.ptr(), key);
            if (has < 0) throw nb::python_error();
            if (!has) continue;  // deleted or expired, not yet out of the graph
            ++n;
            const Py_ssize_t key_len = PyBytes_GET_SIZE(key);
            append_int(body, '$', key_len);
            body.append(PyBytes_AS_STRING(key), size_t(key_len));
            body.append("\r\n", 2);
            body.append(tail, tail_len);
            char num[48];
            size_t len = format_score(num, sizeof num, double(dd[j]));
            append_int(body, '$', (long long)len);
            body.append(num, len);
            body.append("\r\n", 2);
          }
          out.clear();
          append_int(out, '*', 1 + 2 * n);
          append_int(out, ':', (long long)total);
          out += body;
          replies.append(nb::bytes(out.data(), out.size()));
        }
        return replies;
      },
      nb::arg("ids"), nb::arg("dist"), nb::arg("lo"), nb::arg("hi"), nb::arg("slot_key"),
      nb::arg("live"), nb::arg("row_tail"),
      "RESP2 replies [total, key, [label, score], ...] of KNN results (one per row of ids/dist;\n"
      "id -1 ends a row), keeping rows lo..hi whose slot_key entry is a key present in live.");
}
