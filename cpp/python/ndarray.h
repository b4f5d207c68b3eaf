// The array types every binding file takes and returns, and the ways a C++
// buffer becomes a numpy array without a copy. Inputs are read-only,
// C-contiguous CPU arrays (nanobind converts other layouts where it may).
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <vector>

namespace nk::py {

namespace nb = nanobind;

// An input array of T with N dimensions; InAny: any number of dimensions.
template <class T, size_t N>
using In = nb::ndarray<const T, nb::ndim<N>, nb::c_contig, nb::device::cpu>;
template <class T>
using InAny = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;
// An input of any dtype (the binding checks it): N dimensions, or any.
template <size_t N>
using InUntyped = nb::ndarray<nb::ro, nb::ndim<N>, nb::c_contig, nb::device::cpu>;
using InUntypedAny = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;

// Results: Out has its shape at run time, Out1 / Out2 a fixed dimension count.
template <class T>
using Out = nb::ndarray<nb::numpy, T>;
template <class T>
using Out1 = nb::ndarray<nb::numpy, T, nb::ndim<1>>;
template <class T>
using Out2 = nb::ndarray<nb::numpy, T, nb::ndim<2>>;

// A new[] buffer handed to numpy, which delete[]s it with the array.
template <class T>
Out<T> owned(T* p, std::initializer_list<size_t> shape) {
  nb::capsule owner(p, [](void* x) noexcept { delete[] static_cast<T*>(x); });
  return Out<T>(p, shape.size(), shape.begin(), owner);
}

// A vector's buffer handed to numpy (the array owns the vector).
template <class T>
std::vector<T>* keep(std::vector<T>&& v, nb::capsule& owner) {
  auto* kept = new std::vector<T>(std::move(v));
  owner = nb::capsule(kept, [](void* x) noexcept { delete static_cast<std::vector<T>*>(x); });
  return kept;
}
template <class T>
Out<T> adopt(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  nb::capsule owner;
  std::vector<T>* kept = keep(std::move(v), owner);
  if (kept->empty()) kept->resize(1);  // numpy needs a valid pointer even for size 0
  return Out<T>(kept->data(), shape.size(), shape.begin(), owner);
}
template <class T>
Out1<T> to_numpy(std::vector<T>&& v) {
  nb::capsule owner;
  std::vector<T>* kept = keep(std::move(v), owner);
  return Out1<T>(kept->data(), {kept->size()}, owner);
}
template <class T>
Out2<T> to_numpy2(std::vector<T>&& v, size_t rows, size_t cols) {
  nb::capsule owner;
  std::vector<T>* kept = keep(std::move(v), owner);
  return Out2<T>(kept->data(), {rows, cols}, owner);
}

// A copy of a vector as a numpy array.
template <class T>
Out<T> copied(const std::vector<T>& v, std::initializer_list<size_t> shape) {
  T* p = new T[v.size() ? v.size() : 1];
  if (!v.empty()) std::memcpy(p, v.data(), v.size() * sizeof(T));
  return owned(p, shape);
}

}  // namespace nk::py
