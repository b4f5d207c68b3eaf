"""RESP2/RESP3 wire format: request framing (hiredis) and reply encoding.

Handlers return plain Python values plus a few marker types; ``encode``
turns them into bytes for the connection's protocol version, so a handler
never has to know whether it is talking RESP2 or RESP3:

=================  ===================  ====================================
Python value       RESP2                RESP3
=================  ===================  ====================================
``Simple("OK")``   ``+OK``              ``+OK``
``Error("ERR x")`` ``-ERR x``           ``-ERR x``
``int``            ``:n``               ``:n``
``bytes``/``str``  bulk string          bulk string
``None``           ``$-1``              ``_``
``NULL_ARRAY``     ``*-1``              ``_``
``list``/``tuple`` array                array
``Map``            flat array k,v,...   ``%`` map
``Set``            array                ``~`` set
``Double``         bulk string          ``,`` double
``Verbatim``       bulk string          ``=`` verbatim ``txt:``
``bool``           ``:1``/``:0``        ``#t``/``#f``
=================  ===================  ====================================
"""

from __future__ import annotations

import itertools
import math
import re

import hiredis


class Simple(str):
    """A simple string reply (``+OK``)."""

    __slots__ = ()


class Error(str):
    """An error reply; the text starts with its code (``ERR``, ``WRONGTYPE``...) when it has one."""

    __slots__ = ()


class Double(float):
    """A floating-point reply: a double in RESP3, a bulk string in RESP2."""

    __slots__ = ()


class Verbatim(str):
    """A text blob (INFO): a verbatim string in RESP3, a bulk string in RESP2."""

    __slots__ = ()


class Map(list):
    """An ordered list of (key, value) pairs: a map in RESP3, a flat array in RESP2."""

    __slots__ = ()


class Set(list):
    """An unordered collection: a set in RESP3, an array in RESP2."""

    __slots__ = ()


class Raw(bytes):
    """A reply already encoded by its handler (hot paths build RESP bytes directly)."""

    __slots__ = ()


class _NullArray:
    __slots__ = ()


NULL_ARRAY = _NullArray()

OK = Simple("OK")
QUEUED = Simple("QUEUED")
PONG = Simple("PONG")

_CRLF = b"\r\n"


def format_double(x: float) -> bytes:
    """Redis's text form of a double (RESP3 ``,`` and RESP2 bulk): shortest round-trip repr."""
    if math.isnan(x):
        return b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if x == int(x) and abs(x) < 1e17:
        return b"%d" % int(x)
    return repr(float(x)).encode()


def _bulk(b: bytes, out: list) -> None:
    out.append(b"$%d\r\n" % len(b))
    out.append(b)
    out.append(_CRLF)


def _encode(v, resp3: bool, out: list) -> None:
    # Order: the commonest reply types first.
    t = type(v)
    if t is bytes:
        _bulk(v, out)
    elif t is Raw:
        out.append(v)
    elif t is list:
        out.append(b"*%d\r\n" % len(v))
        for x in v:
            _encode(x, resp3, out)
    elif t is int:
        out.append(b":%d\r\n" % v)
    elif t is str:
        _bulk(v.encode(), out)
    elif t is Simple:
        out.append(b"+" + v.encode() + _CRLF)
    elif v is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif t is Map:
        out.append((b"%%%d\r\n" if resp3 else b"*%d\r\n") % (len(v) if resp3 else 2 * len(v)))
        for k, x in v:
            _encode(k, resp3, out)
            _encode(x, resp3, out)
    elif t is Error:
        # An error line cannot hold a line break; keep the stream in sync.
        out.append(b"-" + v.replace("\r", " ").replace("\n", " ").encode() + _CRLF)
    elif t is Double:
        if resp3:
            out.append(b"," + format_double(v) + _CRLF)
        else:
            _bulk(format_double(v), out)
    elif t is Set:
        out.append((b"~%d\r\n" if resp3 else b"*%d\r\n") % len(v))
        for x in v:
            _encode(x, resp3, out)
    elif t is bool:
        if resp3:
            out.append(b"#t\r\n" if v else b"#f\r\n")
        else:
            out.append(b":1\r\n" if v else b":0\r\n")
    elif t is tuple:
        out.append(b"*%d\r\n" % len(v))
        for x in v:
            _encode(x, resp3, out)
    elif t is Verbatim:
        if resp3:
            b = b"txt:" + v.encode()
            out.append(b"=%d\r\n" % len(b))
            out.append(b)
            out.append(_CRLF)
        else:
            _bulk(v.encode(), out)
    elif v is NULL_ARRAY:
        out.append(b"_\r\n" if resp3 else b"*-1\r\n")
    elif t is float:
        _bulk(format_double(v), out)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        _bulk(bytes(v), out)
    else:
        raise TypeError(f"cannot encode reply of type {t.__name__}")


def encode(value, resp3: bool = False) -> bytes:
    """Encode one reply for RESP2 (``resp3=False``) or RESP3."""
    out: list = []
    _encode(value, resp3, out)
    return b"".join(out)


def encode_into(value, resp3: bool, out: list) -> None:
    """Append the encoded pieces of one reply to ``out`` (join later: fewer copies)."""
    _encode(value, resp3, out)


class ProtocolError(Exception):
    """The request stream is malformed; the connection cannot be resynchronised."""


def _wire_length(requests) -> int:
    """Exact bytes of these requests (non-empty lists of bulk strings) on the wire:
    "*<n>\r\n" per request, "$<len>\r\n<bytes>\r\n" per argument. hiredis accepts only
    the canonical form, so this is also what was read. The repr of a list of k
    numbers spends 2k characters beyond the digits (brackets and ", ")."""
    counts = list(map(len, requests))
    lens = list(map(len, itertools.chain.from_iterable(requests)))
    return (len(counts) + len(repr(counts))
            + sum(lens) + 3 * len(lens) + len(repr(lens)))


_COUNT_LINE = re.compile(rb"\*(-?\d{1,19})\r\n")
_BULK_LINE = re.compile(rb"\$(-?\d{1,19})\r\n")
_HEAD_BYTES = 64  # holds "*<count>\r\n$<length>\r\n" with 19-digit numbers


class RequestReader:
    """Split an incoming byte stream into requests (lists of bytes arguments).

    Framing is hiredis's; this class adds what a server needs on top: requests
    must be arrays of bulk strings, the bytes buffered for one unfinished request
    are capped, and a connection whose first byte is not ``*`` speaks inline
    commands (``PING\r\n``, as telnet sends them) instead.

    Each request's argument count (and its first argument's length) is checked
    before hiredis sees it: hiredis allocates the argument list as soon as it reads
    the count, so ``*4294967295`` would otherwise raise MemoryError and a count of
    2**31 reserve (and later walk) gigabytes. hiredis accepts only the canonical
    encoding, so the wire length of every request is known exactly and with it
    where the next one starts.
    """

    def __init__(self, max_request_bytes: int = 64 << 20, max_inline_bytes: int = 64 << 10):
        self._reader = hiredis.Reader()
        self._max_inline = max_inline_bytes
        self.set_limits(max_request_bytes)
        self._fed = 0  # bytes given to hiredis
        self._consumed = 0  # wire bytes of the requests it returned (exact)
        self._head = b""  # the first bytes of the unfinished request, while unchecked
        self._head_ok = False  # the unfinished request's header passed the checks
        self._inline = None  # None: not decided yet; True/False once the first byte arrived
        self._line = b""  # an unfinished inline command line
        self._broken = False

    def set_limits(self, max_request_bytes: int, max_args: int | None = None,
                   max_bulk: int | None = None) -> None:
        """Bytes one unfinished request may buffer, and its argument count and length
        limits (by default whatever fits in ``max_request_bytes``)."""
        self._max_request = max_request_bytes
        # Each argument takes at least 6 bytes on the wire ("$0\r\n\r\n").
        self._max_args = max_args if max_args is not None else max(1024, max_request_bytes // 6)
        self._max_bulk = max_bulk if max_bulk is not None else max_request_bytes
        # A count or length past a limit has at least as many digits as the limit. Input
        # without "*" or "$" followed by that many digits holds no such header, and needs
        # no per-request checks (regexes with a literal first byte search at C speed).
        digits = len(str(min(self._max_args, self._max_bulk)))
        self._long_count = re.compile(rb"\*\d{%d}" % digits).search
        self._long_length = re.compile(rb"\$\d{%d}" % digits).search
        self._edge = digits + 1  # bytes a "*"/"$" and its digits span
        self._tail = b""  # the stream's last bytes, for a number split between feeds
        self._unsure = False  # a long number was seen and its request's header is unchecked

    def feed(self, data: bytes) -> list:
        """Feed bytes; return the complete requests they finish (may be empty).

        Input that cannot be framed ends the list with a ProtocolError instance
        (after the good requests that came before it); nothing is read after it.
        """
        if not data or self._broken:
            return []
        if self._inline is None:
            self._inline = data[:1] != b"*"
        if self._inline:
            return self._feed_inline(data)
        base = self._fed  # stream offset of data[0]
        self._fed += len(data)
        self._reader.feed(data)
        n = self._edge
        edge = self._tail + data[:n]
        suspect = (self._unsure or self._long_count(data) is not None
                   or self._long_length(data) is not None
                   or self._long_count(edge) is not None or self._long_length(edge) is not None)
        self._tail = (edge if len(data) < n else data)[-(n - 1):]
        if suspect:
            requests = self._parse_checked(data, base)
        else:
            requests = self._parse(data, base)
        # A header still incomplete after a long number stays under check until it is read.
        self._unsure = suspect and not self._head_ok and self._fed > self._consumed
        if requests and type(requests[-1]) is ProtocolError:
            return requests
        if self._fed - self._consumed > self._max_request:
            return self._fail(requests, "Protocol error: request too large")
        self._head = self._head_bytes(data, base) if not self._head_ok else b""
        return requests

    def _parse(self, data: bytes, base: int) -> list:
        """The requests hiredis completes, with no header checks (no long number in
        ``data``); their exact wire length is added up once for the whole batch."""
        requests = []
        reader = self._reader
        while True:
            try:
                req = reader.gets()
            except hiredis.ProtocolError as exc:
                return self._fail(requests, f"Protocol error: {exc}")
            except MemoryError:  # cannot happen without a long number; kept as a backstop
                return self._fail(requests, "Protocol error: invalid multibulk length")
            if req is False:
                break
            self._head_ok = False
            if type(req) is not list:
                return self._fail(requests, "Protocol error: expected '*', got a non-array request")
            if not req:
                self._consumed += 4  # "*0\r\n"
                continue
            if len(set(map(type, req))) != 1 or type(req[0]) is not bytes:
                return self._fail(requests, "Protocol error: expected '$', got a non-bulk argument")
            requests.append(req)
        if requests:
            self._consumed += _wire_length(requests)
        return requests

    def _parse_checked(self, data: bytes, base: int) -> list:
        """``_parse`` with each request's header checked before hiredis reads it."""
        requests = []
        while True:
            if not self._head_ok:
                problem = self._check_head(self._head_bytes(data, base))
                if problem is not None:
                    return self._fail(requests, problem)
            try:
                req = self._reader.gets()
            except hiredis.ProtocolError as exc:
                return self._fail(requests, f"Protocol error: {exc}")
            except MemoryError:  # a count the checks let through but memory cannot hold
                return self._fail(requests, "Protocol error: invalid multibulk length")
            if req is False:
                break
            self._head_ok = False
            if type(req) is not list:
                return self._fail(requests, "Protocol error: expected '*', got a non-array request")
            if not req:
                self._consumed += 4  # "*0\r\n"
                continue
            if len(set(map(type, req))) != 1 or type(req[0]) is not bytes:
                return self._fail(requests, "Protocol error: expected '$', got a non-bulk argument")
            self._consumed += _wire_length((req,))
            requests.append(req)
        return requests

    def _head_bytes(self, data: bytes, base: int) -> bytes:
        """The first bytes of the request starting at stream offset ``_consumed``."""
        off = self._consumed - base
        if off >= 0:
            return data[off:off + _HEAD_BYTES]
        return (self._head + data[:_HEAD_BYTES])[:_HEAD_BYTES]

    def _check_head(self, head: bytes) -> str | None:
        """The protocol error in a request's header, or None (also while it is incomplete:
        hiredis allocates nothing for a count line it has not read in full)."""
        if head[:1] != b"*":
            self._head_ok = bool(head)  # not an array: hiredis's own checks answer it
            return None
        m = _COUNT_LINE.match(head)
        if m is None:
            self._head_ok = b"\n" in head or len(head) >= _HEAD_BYTES  # malformed: hiredis says so
            return None
        count = int(m.group(1))
        if count > self._max_args:
            return "Protocol error: invalid multibulk length"
        rest = head[m.end():]
        if count <= 0 or rest[:1] not in (b"", b"$"):
            self._head_ok = True
            return None
        b = _BULK_LINE.match(rest)
        if b is None:
            self._head_ok = b"\n" in rest or len(head) >= _HEAD_BYTES
            return None
        if int(b.group(1)) > self._max_bulk:
            return "Protocol error: invalid bulk length"
        self._head_ok = True
        return None

    def _fail(self, requests: list, message: str) -> list:
        """The stream cannot be resynchronised: the requests before the damage still
        count; a ProtocolError marks where the connection must close."""
        self._broken = True
        requests.append(ProtocolError(message))
        return requests

    def _feed_inline(self, data: bytes) -> list:
        data = self._line + data
        requests = []
        while True:
            nl = data.find(b"\n")
            if nl < 0:
                break
            line = data[:nl].rstrip(b"\r")
            data = data[nl + 1:]
            args = _split_inline(line)
            if args:
                requests.append(args)
        if len(data) > self._max_inline:
            return self._fail(requests, "Protocol error: too big inline request")
        self._line = data
        return requests


def _split_inline(line: bytes) -> list:
    """Split an inline command line on whitespace, honouring simple double/single quotes."""
    args, cur, quote, i, have = [], bytearray(), None, 0, False
    while i < len(line):
        c = line[i:i + 1]
        if quote:
            if c == b"\\" and quote == b'"' and i + 1 < len(line):
                cur += line[i + 1:i + 2]
                i += 2
                continue
            if c == quote:
                quote = None
            else:
                cur += c
        elif c in (b'"', b"'"):
            quote, have = c, True
        elif c in (b" ", b"\t"):
            if cur or have:
                args.append(bytes(cur))
                cur, have = bytearray(), False
        else:
            cur += c
        i += 1
    if quote:
        return [b"\x00unbalanced"]  # no such command: answered with an error reply
    if cur or have:
        args.append(bytes(cur))
    return args
