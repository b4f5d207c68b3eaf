"""FT.CREATE / FT.ALTER: the SCHEMA arguments, as ``FieldSpec``s."""

from __future__ import annotations

from ..search import FieldSpec
from ..vectors import DTYPES, METRICS
from ..commands import as_str
from .args import fail


_TEXT_FLAGS = {"NOSTEM", "NOINDEX", "WITHSUFFIXTRIE", "INDEXEMPTY", "INDEXMISSING", "SORTABLE", "UNF"}
_TAG_FLAGS = {"CASESENSITIVE", "NOINDEX", "WITHSUFFIXTRIE", "INDEXEMPTY", "INDEXMISSING",
              "SORTABLE", "UNF"}
_NUM_FLAGS = {"NOINDEX", "INDEXMISSING", "SORTABLE", "UNF"}
_GEO_FLAGS = {"NOINDEX", "INDEXMISSING", "SORTABLE"}
_GEOSHAPE_FLAGS = {"NOINDEX", "INDEXMISSING", "FLAT", "SPHERICAL"}
# Widest vector a field may declare: a FLOAT64 vector of it is 512 KiB, well inside a
# request; Redis itself accepts any DIM and fails later, when memory runs out.
MAX_DIM = 65536
# Most links per graph node nearkit.HNSW builds (Redis accepts more).
MAX_M = 2048

_FLAT_PARAMS = {"TYPE", "DIM", "DISTANCE_METRIC", "INITIAL_CAP", "BLOCK_SIZE"}
_HNSW_PARAMS = {"TYPE", "DIM", "DISTANCE_METRIC", "INITIAL_CAP", "M", "EF_CONSTRUCTION",
                "EF_RUNTIME", "EPSILON"}


def _parse_vector(args, i, name):
    """VECTOR <ALGO> <nargs> k v ... at args[i] (just after VECTOR); returns (options, next i)."""
    if i >= len(args):
        fail("Bad arguments for vector similarity algorithm: Unknown argument")
    algo = as_str(args[i]).upper()
    if algo not in ("FLAT", "HNSW"):
        fail("Bad arguments for vector similarity algorithm: Unknown argument")
    if i + 1 >= len(args):
        fail("Bad arguments for vector similarity number of parameters: Expected an argument, "
             "but none provided")
    try:
        nargs = int(args[i + 1])
    except ValueError:
        fail("Bad arguments for vector similarity number of parameters: Could not convert "
             "argument to expected type")
    if nargs % 2:
        fail(f"Bad number of arguments for vector similarity index: got {nargs} but expected "
             "even number as algorithm parameters (should be submitted as named arguments)")
    j = i + 2
    end = j + nargs
    if end > len(args):
        fail(f"Bad arguments for vector similarity {algo} index: Expected an argument, "
             "but none provided")
    allowed = _FLAT_PARAMS if algo == "FLAT" else _HNSW_PARAMS
    opts = {"algorithm": algo}
    while j < end:
        key = as_str(args[j]).upper()
        val = as_str(args[j + 1])
        if key not in allowed:
            fail(f"Bad arguments for algorithm {algo}: {as_str(args[j])}")
        if key == "TYPE":
            if val.upper() not in DTYPES:
                fail(f"Bad arguments for vector similarity {algo} index type: Unknown argument")
            opts["TYPE"] = val.upper()
        elif key == "DISTANCE_METRIC":
            if val.upper() not in METRICS:
                fail(f"Bad arguments for vector similarity {algo} index metric: Unknown argument")
            opts["DISTANCE_METRIC"] = val.upper()
        elif key == "EPSILON":
            try:
                opts[key] = float(val)
            except ValueError:
                fail(f"Bad arguments for vector similarity {algo} index epsilon: Could not "
                     "convert argument to expected type")
        else:
            try:
                n = int(val)
            except ValueError:
                fail(f"Bad arguments for vector similarity {algo} index {key.lower()}: Could not "
                     "convert argument to expected type")
            if n < (1 if key in ("DIM", "M", "EF_CONSTRUCTION", "EF_RUNTIME") else 0) or n > 1 << 31 \
                    or (key == "DIM" and n > MAX_DIM) or (key == "M" and n > MAX_M):
                fail(f"Bad arguments for vector similarity {algo} index {key.lower()}: Value is "
                     "outside acceptable bounds")
            opts[key] = n
        j += 2
    for req in ("TYPE", "DIM", "DISTANCE_METRIC"):
        if req not in opts:
            fail(f"Missing mandatory parameter: cannot create {algo} index without specifying "
                 f"{req} argument")
    return opts, end


def parse_schema(args, i, on_json: bool, existing=()):
    """Parse field definitions from args[i:]; returns a list of FieldSpec."""
    fields = []
    names = {f.alias for f in existing}
    while i < len(args):
        ident = as_str(args[i])
        i += 1
        alias = ident
        if i + 1 < len(args) and args[i].upper() == b"AS":
            alias = as_str(args[i + 1])
            i += 2
        elif on_json and ident.startswith("$"):
            alias = ident
        if i >= len(args):
            fail(f"Field `{ident}` does not have a type")
        ftype = as_str(args[i]).upper()
        i += 1
        options, flags = {}, []
        if ftype == "VECTOR":
            options, i = _parse_vector(args, i, alias)
        elif ftype in ("TEXT", "TAG", "NUMERIC", "GEO", "GEOSHAPE"):
            allowed = {"TEXT": _TEXT_FLAGS, "TAG": _TAG_FLAGS, "NUMERIC": _NUM_FLAGS,
                       "GEO": _GEO_FLAGS, "GEOSHAPE": _GEOSHAPE_FLAGS}[ftype]
            if ftype == "TEXT":
                options["WEIGHT"] = 1.0
            if ftype == "TAG":
                options["SEPARATOR"] = ","
            while i < len(args):
                opt = as_str(args[i]).upper()
                if ftype == "TEXT" and opt in ("WEIGHT", "PHONETIC"):
                    if i + 1 >= len(args):
                        fail(f"{opt} requires an argument")
                    if opt == "WEIGHT":
                        try:
                            options["WEIGHT"] = float(args[i + 1])
                        except ValueError:
                            fail("Could not parse field spec")
                    else:  # dm:en, dm:fr, dm:pt, dm:es: Double Metaphone
                        matcher = as_str(args[i + 1])
                        if matcher.lower() not in ("dm:en", "dm:fr", "dm:pt", "dm:es"):
                            fail("Matcher Format: <2 chars algorithm>:<2 chars language>. "
                                 "Support algorithms: double metaphone (dm). Supported "
                                 "languages: English (en), French (fr), Portuguese (pt) and "
                                 "Spanish (es)")
                        options["PHONETIC"] = matcher
                    i += 2
                elif ftype == "TAG" and opt == "SEPARATOR":
                    if i + 1 >= len(args):
                        fail("SEPARATOR requires an argument")
                    sep = as_str(args[i + 1])
                    if len(sep) != 1:
                        fail(f"Tag separator must be a single character. Got `{sep}`")
                    options["SEPARATOR"] = sep
                    i += 2
                elif opt in allowed:
                    if opt not in flags:
                        flags.append(opt)
                    i += 1
                else:
                    break
        else:
            fail(f"Invalid field type for field `{ident}`")
        if "NOINDEX" in flags and "INDEXMISSING" in flags:
            fail(f"'Field `{ident}` cannot be defined with both `NOINDEX` and `INDEXMISSING`'")
        if alias in names:
            fail(f"Duplicate field in schema - {alias}")
        names.add(alias)
        fields.append(FieldSpec(ident, alias, ftype, options, flags))
    return fields
