"""``index_factory``: build an index from a Faiss-style description string.

Supported grammar (comma separated, no spaces, case-sensitive as in Faiss)::

    [IDMap|IDMap2 ,] [PCA<d> | OPQ<m> ,] main [,RFlat] [,IDMap|IDMap2]

    main:  Flat                       exact search (nearkit.Flat)
           HNSW[<M>] | HNSW<M>,Flat   nearkit.HNSW (M default 32)
           IVF<n>,<codec>             nearkit.IVF; n may end in k (x1024) or M (x1024^2)
           <codec>                    a single-list quantised index (IVF with nlist=1)
    codec: Flat | SQ8 | SQfp16 | PQ<m> | PQ<m>x8 | PQ<m>x4fs

``IDMap``/``IDMap2`` are accepted and change nothing: every nearkit index
takes user ids natively. A description that does not parse raises ValueError
naming the component at fault.
"""

from __future__ import annotations

import re

from .. import _validate
from ..metrics import normalize_metric

_IVF_RE = re.compile(r"^IVF(\d+)([kM]?)$")
_PQ_RE = re.compile(r"^PQ(\d+)(x8|x4fs)?$")
_HNSW_RE = re.compile(r"^HNSW(\d*)$")
_PCA_RE = re.compile(r"^PCA(\d+)$")
_OPQ_RE = re.compile(r"^OPQ(\d+)$")


def _codec(part: str) -> str | None:
    """Faiss codec name -> nearkit codec name, None if not a codec."""
    if part == "Flat":
        return "flat"
    if part == "SQ8":
        return "sq8"
    if part == "SQfp16":
        return "fp16"
    m = _PQ_RE.match(part)
    if m:
        if int(m.group(1)) <= 0:
            return None
        return f"pq{int(m.group(1))}" + ("x4fs" if m.group(2) == "x4fs" else "")
    return None


def _bad(part: str, desc: str, why: str) -> ValueError:
    return ValueError(f"index_factory: could not parse {part!r} in {desc!r}: {why}")


def parse(desc: str) -> dict:
    """Parse a description into a plain dict (kind, options); raises ValueError."""
    if not isinstance(desc, str):
        raise TypeError(f"index description must be a string, got {type(desc).__name__}")
    if not desc:
        raise ValueError("index_factory: empty description")
    parts = desc.split(",")
    for p in parts:
        if p != p.strip() or not p:
            raise _bad(p, desc, "empty component or stray whitespace")
    spec: dict = {"transform": None, "refine": False, "idmap": None}
    # IDMap prefix / suffix
    if parts[0] in ("IDMap", "IDMap2"):
        spec["idmap"] = parts.pop(0)
    if parts and parts[-1] in ("IDMap", "IDMap2"):
        if spec["idmap"]:
            raise _bad(parts[-1], desc, "IDMap given twice")
        spec["idmap"] = parts.pop()
    if parts and parts[-1] == "RFlat":
        spec["refine"] = True
        parts.pop()
    # pre-transforms
    while parts and (_PCA_RE.match(parts[0]) or _OPQ_RE.match(parts[0])):
        if spec["transform"]:
            raise _bad(parts[0], desc, "only one pre-transform (PCA or OPQ) is supported")
        p = parts.pop(0)
        mt = _PCA_RE.match(p) or _OPQ_RE.match(p)
        n = int(mt.group(1))
        if n <= 0:
            raise _bad(p, desc, "the number must be positive")
        spec["transform"] = ("pca" if p.startswith("PCA") else "opq") + str(n)
    if not parts:
        raise _bad(desc, desc, "no index type after the prefixes")
    head = parts[0]
    mt = _IVF_RE.match(head)
    if mt:
        nlist = int(mt.group(1)) * {"": 1, "k": 1024, "M": 1024 * 1024}[mt.group(2)]
        if nlist <= 0:
            raise _bad(head, desc, "nlist must be positive")
        if len(parts) < 2:
            raise _bad(head, desc, "IVF needs a codec after it, e.g. 'IVF1024,Flat'")
        if len(parts) > 2:
            raise _bad(parts[2], desc, "unexpected component after the IVF codec")
        codec = _codec(parts[1])
        if codec is None:
            raise _bad(parts[1], desc, "expected Flat, SQ8, SQfp16, PQ<m>, PQ<m>x8 or PQ<m>x4fs")
        spec.update(kind="ivf", nlist=nlist, codec=codec)
        return spec
    mt = _HNSW_RE.match(head)
    if mt:
        if len(parts) > 2 or (len(parts) == 2 and parts[1] != "Flat"):
            raise _bad(parts[1], desc, "only HNSW<M> or HNSW<M>,Flat are supported")
        if spec["transform"] or spec["refine"]:
            raise _bad(desc, desc, "pre-transforms and RFlat are not supported with HNSW")
        m_ = int(mt.group(1)) if mt.group(1) else 32
        if m_ < 2:
            raise _bad(head, desc, "HNSW M must be at least 2")
        spec.update(kind="hnsw", M=m_)
        return spec
    if len(parts) > 1:
        raise _bad(parts[1], desc, "unexpected component after the index type")
    if head == "Flat" and not spec["transform"]:
        if spec["refine"]:
            raise _bad("RFlat", desc, "refining an exact index does nothing")
        spec.update(kind="flat")
        return spec
    codec = _codec(head)
    if codec is None:
        raise _bad(head, desc, "unknown index type; expected Flat, HNSW<M>, IVF<n>,<codec>, "
                               "PQ<m>[x4fs], SQ8 or SQfp16")
    spec.update(kind="ivf", nlist=1, codec=codec)
    return spec


def index_factory(dim: int, description: str, metric: str = "l2", **options):
    """Build an untrained (for IVF/PQ/SQ) nearkit index from a Faiss factory string.

    ``options`` go to the index constructor (e.g. ``nprobe=``, ``k_factor=``,
    ``seed=`` for IVF; ``ef_search=`` for HNSW).
    """
    dim = _validate.check_positive_int(dim, "dim")
    metric = normalize_metric(metric)
    spec = parse(description)
    if spec["transform"] and spec["transform"].startswith("pca"):
        d_out = int(spec["transform"][3:])
        if d_out > dim:
            raise _bad(f"PCA{d_out}", description, f"output dimension larger than the input ({dim})")
    if spec["kind"] == "flat":
        from .flat import Flat

        return Flat(dim, metric, **options)
    if spec["kind"] == "hnsw":
        from .hnsw import HNSW

        return HNSW(dim, metric, M=spec["M"], **options)
    from .ivf import IVF

    inner = int(spec["transform"][3:]) if spec["transform"] and spec["transform"].startswith("pca") else dim
    codec = spec["codec"]
    if codec.startswith("pq"):
        m = int(re.match(r"pq(\d+)", codec).group(1))
        if inner % m:
            bad = [p for p in description.split(",") if p.startswith("PQ")][0]
            raise _bad(bad, description,
                       f"the dimension ({inner}) must be a multiple of the number of sub-quantizers ({m})")
    if spec["transform"] and spec["transform"].startswith("opq"):
        m = int(spec["transform"][3:])
        if dim % m:
            raise _bad(f"OPQ{m}", description, f"the dimension ({dim}) must be a multiple of {m}")
    return IVF(dim, metric, nlist=spec["nlist"], codec=codec, transform=spec["transform"],
               refine=spec["refine"], **options)
