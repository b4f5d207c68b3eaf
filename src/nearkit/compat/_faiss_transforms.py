"""Faiss's stand-alone vector transforms and data diagnostics, in numpy.

``LinearTransform`` (y = A x + b), ``PCAMatrix`` (with faiss's ``eigen_power``
whitening and ``epsilon``), ``HadamardRotation`` (random signs, then the
orthonormal Walsh-Hadamard transform of the input zero-padded to a power of 2),
and ``MatrixStats`` (what is odd about a data matrix, as readable comments).
Faiss keeps ``A`` / ``b`` in SWIG vectors; here they are ``Vector`` objects that
``copy_array_to_vector`` / ``vector_to_array`` fill and read.
"""

from __future__ import annotations

import hashlib

import numpy as np


class Vector:
    """A growable 1-D array standing in for faiss's SWIG std::vector."""

    def __init__(self, dtype=np.float32):
        self.array = np.empty(0, dtype)

    def size(self) -> int:
        return int(self.array.size)

    def at(self, i):
        return self.array[int(i)]

    def resize(self, n):
        a = np.zeros(int(n), self.array.dtype)
        a[: min(n, self.array.size)] = self.array[: min(n, self.array.size)]
        self.array = a

    def __len__(self):
        return self.size()

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.array, dtype=dtype)


def copy_array_to_vector(a, v: Vector) -> None:
    v.array = np.array(a, dtype=v.array.dtype).ravel()


class VectorTransform:
    def __init__(self, d_in: int, d_out: int):
        self.d_in, self.d_out = int(d_in), int(d_out)
        self.is_trained = True

    def _check(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise AssertionError(f"vectors have dimension {x.shape[-1]}, transform expects {self.d_in}")
        return x

    def train(self, x) -> None:
        self._check(x)

    def apply_py(self, x):
        return self.apply(x)

    def reverse_transform(self, y):
        raise RuntimeError("Error: reverse transform not implemented")


class LinearTransform(VectorTransform):
    """y = A x + b; A is (d_out, d_in), stored row-major in the Vector ``A``."""

    def __init__(self, d_in=0, d_out=0, have_bias=False):
        super().__init__(d_in, d_out)
        self.have_bias = bool(have_bias)
        self.A, self.b = Vector(), Vector()
        self.is_orthonormal = False
        self.is_trained = False

    def matrix(self) -> np.ndarray:
        return self.A.array.reshape(self.d_out, self.d_in)

    def apply(self, x):
        if not self.is_trained:
            raise RuntimeError("Error: 'is_trained' failed: the transform must be trained first")
        y = self._check(x) @ self.matrix().T
        if self.have_bias and self.b.size():
            y = y + self.b.array
        return np.ascontiguousarray(y, dtype=np.float32)

    def set_is_orthonormal(self) -> None:
        A = self.matrix().astype(np.float64)
        self.is_orthonormal = (self.d_out <= self.d_in
                               and np.allclose(A @ A.T, np.eye(self.d_out), atol=2e-5))

    def reverse_transform(self, y):
        """x with A x + b = y, for orthonormal A (A^T (y - b))."""
        if not self.is_orthonormal:
            raise RuntimeError("Error: reverse transform not implemented for non-orthonormal matrices")
        y = np.ascontiguousarray(y, dtype=np.float32)
        if self.have_bias and self.b.size():
            y = y - self.b.array
        return np.ascontiguousarray(y @ self.matrix(), dtype=np.float32)


class PCAMatrix(LinearTransform):
    """Projection on the top d_out principal axes, scaled by eigenvalue**eigen_power."""

    def __init__(self, d_in=0, d_out=0, eigen_power=0.0, random_rotation=False):
        super().__init__(d_in, d_out, have_bias=True)
        self.eigen_power, self.random_rotation = float(eigen_power), bool(random_rotation)
        self.epsilon = 0.0
        self.eigenvalues = Vector()
        self.mean = Vector()

    def train(self, x) -> None:
        x = self._check(x).astype(np.float64)
        mean = x.mean(axis=0)
        xc = x - mean
        cov = xc.T @ xc / x.shape[0]
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1][: self.d_out]
        vals, vecs = np.maximum(vals[order], 0.0), vecs[:, order].T
        if self.eigen_power != 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                vecs = vecs * ((vals + self.epsilon) ** self.eigen_power)[:, None]
        if self.random_rotation:
            q, _ = np.linalg.qr(np.random.default_rng(1234).standard_normal((self.d_out, self.d_out)))
            vecs = q @ vecs
        copy_array_to_vector(vecs.astype(np.float32), self.A)
        copy_array_to_vector((-(vecs @ mean)).astype(np.float32), self.b)
        copy_array_to_vector(vals.astype(np.float32), self.eigenvalues)
        copy_array_to_vector(mean.astype(np.float32), self.mean)
        self.is_orthonormal = self.eigen_power == 0  # as faiss: whitening breaks it
        self.is_trained = True


class HadamardRotation(VectorTransform):
    """Random signs (from ``seed``), then the orthonormal Hadamard transform of x
    zero-padded to the next power of 2 (``d_out``): norms are preserved."""

    def __init__(self, d, seed=12345):
        d = int(d)
        super().__init__(d, 1 << max(0, (d - 1).bit_length()))
        self.seed = int(seed)
        self._signs = np.random.default_rng(self.seed).choice(np.array([-1.0, 1.0], np.float32),
                                                              self.d_out)

    def apply(self, x):
        x = self._check(x)
        y = np.zeros((x.shape[0], self.d_out), np.float32)
        y[:, : self.d_in] = x
        y *= self._signs
        h = 1
        while h < self.d_out:  # in-place fast Walsh-Hadamard transform
            y = y.reshape(x.shape[0], -1, 2, h)
            a, b = y[:, :, 0, :].copy(), y[:, :, 1, :].copy()
            y[:, :, 0, :], y[:, :, 1, :] = a + b, a - b
            y = y.reshape(x.shape[0], self.d_out)
            h *= 2
        return np.ascontiguousarray(y / np.sqrt(self.d_out), dtype=np.float32)

    def reverse_transform(self, y):
        """The transform is orthonormal and its own inverse up to the signs: H (H s x) = s x."""
        if self.d_in != self.d_out:  # as faiss: the padding dimensions cannot be undone
            raise RuntimeError("Error: '!(d_in == d_out)' failed: HadamardRotation inverse requires "
                               "equal input/output dimensions")
        y = np.ascontiguousarray(y, np.float32)
        back = HadamardRotation.__new__(HadamardRotation)
        back.d_in, back.d_out, back._signs = self.d_out, self.d_out, np.ones(self.d_out, np.float32)
        x = back.apply(y) * self._signs
        return np.ascontiguousarray(x[:, : self.d_in], dtype=np.float32)


class MatrixStats:
    """Comments on a data matrix: null and duplicate vectors, constant dimensions,
    dimensions whose mean dwarfs their spread, normalisation; ``hash_value``."""

    def __init__(self, m):
        m = np.ascontiguousarray(m, dtype=np.float32)
        n, d = m.shape
        lines = [f"analyzing {n} vectors of size {d}"]
        norms = np.linalg.norm(m.astype(np.float64), axis=1)
        nnull = int((norms == 0).sum())
        if nnull:
            lines.append(f"{nnull} null vectors")
        uniq, first, counts = np.unique(m, axis=0, return_index=True, return_counts=True)
        if uniq.shape[0] < n:
            lines.append(f"{uniq.shape[0]} vectors are distinct ({100.0 * uniq.shape[0] / n:.2f}%)")
            top = int(np.argmax(counts))
            lines.append(f"vector {int(first[top])} has {int(counts[top])} copies")
        if n and nnull < n and np.allclose(norms[norms > 0], 1.0, atol=1e-4):
            lines.append("vectors are normalized")
        mean, std = m.astype(np.float64).mean(0), m.astype(np.float64).std(0)
        const = int((std == 0).sum())
        if const:
            lines.append(f"{const} dimensions are constant: they can be removed")
        rogue = int(((std > 0) & (np.abs(mean) > 1e3 * std)).sum())
        if rogue:
            lines.append(f"{rogue} dimensions are too large wrt. their variance, may lose precision "
                         "in IndexFlatL2 (use CenteringTransform)")
        self.comments = "\n".join(lines) + "\n"
        self.n, self.d = n, d
        self.hash_value = int.from_bytes(hashlib.sha1(m.tobytes()).digest()[:8], "little")


def downcast_VectorTransform(vt):
    return vt


class NormalizationTransform(VectorTransform):
    """Rows divided by their L2 norm (faiss's "L2norm"); zero rows stay zero."""

    def __init__(self, d, norm=2.0):
        super().__init__(d, d)
        self.norm = float(norm)

    def apply(self, x):
        x = self._check(x)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        n[n == 0] = 1
        return np.ascontiguousarray(x / n, dtype=np.float32)

    def reverse_transform(self, y):
        """faiss copies the vector back unchanged (the norm is lost)."""
        return np.array(y, dtype=np.float32)


class RandomRotationMatrix(LinearTransform):
    """A random orthonormal (d_out, d_in) matrix (faiss's "RR<d>")."""

    def __init__(self, d_in, d_out, seed=12345):
        super().__init__(d_in, d_out, have_bias=False)
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((max(d_in, d_out),) * 2))
        copy_array_to_vector(q[:d_out, :d_in].astype(np.float32), self.A)
        self.is_trained = True
        self.is_orthonormal = d_out <= d_in
