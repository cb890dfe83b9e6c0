"""C-Blosc2 through ctypes: Blosc and Blosc2 decoding with the GIL released.

python-blosc2 keeps the GIL while C-Blosc2 decodes (``SChunk.decompress_chunk``,
``ndarray_from_cframe(...)[...]``), and ``blosc2.decompress2`` lets it go only
after the process-wide ``blosc2.set_releasegil(True)``, a user's setting we
must not change.  The python-blosc2 wheel ships C-Blosc2 itself as a shared
library (``blosc2/lib/libblosc2.so``, with its headers); a ctypes call
releases the GIL for as long as the C function runs.  python-blosc2 links
its own copy statically, so the library loaded here is a second, private
copy: nothing done here touches python-blosc2's global state (thread counts,
``set_releasegil``).

Only what the direct path needs is bound: decompression contexts
(``blosc2_create_dctx`` with one thread: dask's threads are the
parallelism), frames (``blosc2_schunk_from_buffer`` without a copy, then
``blosc2_schunk_decompress_chunk``), the ``b2nd`` metalayer
(``b2nd_deserialize_meta``) and the SIMD byte unshuffle
(``blosc2_unshuffle``, the same layout as HDF5's shuffle filter).

The two structs read here (``blosc2_dparams``, passed by value, and the
leading fields of ``blosc2_schunk``) were checked with ``offsetof`` against
the headers of C-Blosc2 3.3.5 (python-blosc2 4.14.1); the binding loads only
for a library of major version 3 (:data:`SUPPORTED_MAJOR`) and then decodes
a frame made by python-blosc2 as a self-test.  Anywhere it does not load,
:func:`library` returns ``None`` and :mod:`dask_tables.filters.blosc` decodes
through python-blosc2 as before.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["SUPPORTED_MAJOR", "B2nd", "Frame", "FrameError", "Library", "library"]

SUPPORTED_MAJOR = 3  # struct layouts verified against C-Blosc2 3.3.5's blosc2.h
_B2ND_MAX_DIM = 16  # b2nd.h: B2ND_MAX_DIM
_MAX_METALAYERS = 16  # blosc2.h: BLOSC2_MAX_METALAYERS
_INT32_MAX = 2**31 - 1


class FrameError(ValueError):
    """A Blosc2 frame (or chunk) that C-Blosc2 refuses: corrupt or truncated bytes."""


class _DParams(ctypes.Structure):
    """``blosc2_dparams`` (40 bytes on 64-bit platforms)."""

    _fields_ = [
        ("nthreads", ctypes.c_int16),
        ("schunk", ctypes.c_void_p),
        ("postfilter", ctypes.c_void_p),
        ("postparams", ctypes.c_void_p),
        ("typesize", ctypes.c_int32),
    ]


class _Metalayer(ctypes.Structure):
    """``blosc2_metalayer``."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("content", ctypes.POINTER(ctypes.c_uint8)),
        ("content_len", ctypes.c_int32),
    ]


class _SChunk(ctypes.Structure):
    """The leading fields of ``blosc2_schunk``, up to ``nmetalayers`` (never allocated here)."""

    _fields_ = [
        ("version", ctypes.c_uint8),
        ("compcode", ctypes.c_uint8),
        ("compcode_meta", ctypes.c_uint8),
        ("clevel", ctypes.c_uint8),
        ("splitmode", ctypes.c_uint8),
        ("typesize", ctypes.c_int32),
        ("blocksize", ctypes.c_int32),
        ("chunksize", ctypes.c_int32),
        ("flags2", ctypes.c_uint8),
        ("use_dict", ctypes.c_uint8),
        ("filters", ctypes.c_uint8 * 6),
        ("filters_meta", ctypes.c_uint8 * 6),
        ("nchunks", ctypes.c_int64),
        ("current_nchunk", ctypes.c_int64),
        ("nbytes", ctypes.c_int64),
        ("cbytes", ctypes.c_int64),
        ("data", ctypes.c_void_p),
        ("data_len", ctypes.c_size_t),
        ("storage", ctypes.c_void_p),
        ("frame", ctypes.c_void_p),
        ("cctx", ctypes.c_void_p),
        ("dctx", ctypes.c_void_p),
        ("metalayers", ctypes.POINTER(_Metalayer) * _MAX_METALAYERS),
        ("nmetalayers", ctypes.c_uint16),
    ]


# offsetof() of the fields read, from a C program compiled against blosc2.h 3.3.5 (x86_64, aarch64)
_EXPECTED_OFFSETS = {
    (_DParams, "typesize"): 32,
    (_SChunk, "typesize"): 8,
    (_SChunk, "chunksize"): 16,
    (_SChunk, "nchunks"): 40,
    (_SChunk, "nbytes"): 56,
    (_SChunk, "cbytes"): 64,
    (_SChunk, "metalayers"): 120,
    (_SChunk, "nmetalayers"): 248,
}


def _layout_matches() -> bool:
    """Whether ctypes lays the structs out as the C compiler did (64-bit platforms only)."""
    return ctypes.sizeof(ctypes.c_void_p) == 8 and all(
        getattr(struct, field).offset == offset for (struct, field), offset in _EXPECTED_OFFSETS.items()
    )


def _address(buf: object) -> tuple[int, int, np.ndarray]:
    """``(address, nbytes, keep-alive)`` of a contiguous buffer, without a copy."""
    array = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=np.uint8)  # type: ignore[call-overload]
    if not array.flags.c_contiguous:
        raise ValueError("a C-Blosc2 buffer must be contiguous")
    return array.ctypes.data, array.nbytes, array


class B2nd:
    """The ``b2nd`` metalayer of a frame: an n-dimensional array's shapes."""

    __slots__ = ("blockshape", "chunkshape", "shape")

    def __init__(self, shape: tuple[int, ...], chunkshape: tuple[int, ...], blockshape: tuple[int, ...]):
        self.shape, self.chunkshape, self.blockshape = shape, chunkshape, blockshape


class Frame:
    """A Blosc2 contiguous frame, parsed by C-Blosc2 in place (no copy of its bytes).

    Use it as a context manager: the super-chunk C-Blosc2 builds is freed on
    exit.  The frame's bytes must outlive it (a reference is kept).
    """

    def __init__(self, lib: Library, buf: object) -> None:
        address, nbytes, self._keep = _address(buf)
        self._lib = lib
        schunk = lib.c.blosc2_schunk_from_buffer(address, nbytes, False)
        if not schunk:
            raise FrameError("not a valid Blosc2 frame")
        self._schunk = schunk
        fields = schunk.contents
        self.nchunks = int(fields.nchunks)
        self.chunksize = int(fields.chunksize)
        self.nbytes = int(fields.nbytes)
        self.typesize = int(fields.typesize)
        if self.nchunks < 0 or self.nbytes < 0 or self.chunksize < 0 or self.typesize < 1:
            self.close()
            raise FrameError(f"frame header out of range (nbytes {self.nbytes}, nchunks {self.nchunks})")
        self.b2nd = self._read_b2nd(fields)

    def _read_b2nd(self, fields: _SChunk) -> B2nd | None:
        count = min(int(fields.nmetalayers), _MAX_METALAYERS)
        for i in range(count):
            layer = fields.metalayers[i]
            if layer and layer.contents.name == b"b2nd":
                meta = layer.contents
                ndim = ctypes.c_int8()
                shape = (ctypes.c_int64 * _B2ND_MAX_DIM)()
                chunks = (ctypes.c_int32 * _B2ND_MAX_DIM)()
                blocks = (ctypes.c_int32 * _B2ND_MAX_DIM)()
                rc = self._lib.c.b2nd_deserialize_meta(
                    meta.content, meta.content_len, ctypes.byref(ndim), shape, chunks, blocks, None, None
                )
                n = ndim.value
                if rc < 0 or not 0 <= n <= _B2ND_MAX_DIM:
                    self.close()
                    raise FrameError("damaged b2nd metalayer")
                return B2nd(tuple(shape[:n]), tuple(chunks[:n]), tuple(blocks[:n]))
        return None

    def chunk_nbytes(self, index: int) -> int:
        """Raw bytes of chunk ``index`` (the last one may be shorter)."""
        return min(self.chunksize, self.nbytes - index * self.chunksize)

    def decompress_chunk(self, index: int, out: np.ndarray) -> None:
        """Decompress chunk ``index`` into ``out`` (contiguous, exactly its raw size); GIL released."""
        address, nbytes, _ = _address(out)
        if nbytes != self.chunk_nbytes(index) or nbytes > _INT32_MAX:
            raise FrameError(f"chunk {index} holds {self.chunk_nbytes(index)} bytes, not {nbytes}")
        got = self._lib.c.blosc2_schunk_decompress_chunk(self._schunk, index, address, nbytes)
        if got != nbytes:
            raise FrameError(f"chunk {index} of the frame does not decode (C-Blosc2 returned {got})")

    def close(self) -> None:
        """Free the super-chunk (not the frame's bytes)."""
        if self._schunk:
            self._lib.c.blosc2_schunk_free(self._schunk)
            self._schunk = None

    def __enter__(self) -> Frame:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Context:
    """One decompression context (one thread of C-Blosc2's own); freed with this object."""

    def __init__(self, lib: Library) -> None:
        self._free = lib.c.blosc2_free_ctx
        self.pointer = lib.c.blosc2_create_dctx(_DParams(nthreads=1, typesize=8))
        if not self.pointer:
            raise MemoryError("blosc2_create_dctx failed")

    def __del__(self) -> None:
        if getattr(self, "pointer", None):
            self._free(self.pointer)


class Library:
    """The C functions of ``libblosc2`` used by the decoders, with their C signatures."""

    def __init__(self, path: Path) -> None:
        c = ctypes.CDLL(str(path))
        self.path = path
        self.c = c
        vp, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        schunk_p = ctypes.POINTER(_SChunk)
        signatures = {
            "blosc2_init": (None, []),
            "blosc2_get_version_string": (ctypes.c_char_p, []),
            "blosc2_create_dctx": (vp, [_DParams]),
            "blosc2_free_ctx": (None, [vp]),
            "blosc2_decompress_ctx": (ctypes.c_int, [vp, vp, i32, vp, i32]),
            "blosc2_schunk_from_buffer": (schunk_p, [vp, i64, ctypes.c_bool]),
            "blosc2_schunk_free": (ctypes.c_int, [schunk_p]),
            "blosc2_schunk_decompress_chunk": (ctypes.c_int, [schunk_p, i64, vp, i32]),
            "b2nd_deserialize_meta": (
                ctypes.c_int,
                [
                    ctypes.POINTER(ctypes.c_uint8),
                    i32,
                    ctypes.POINTER(ctypes.c_int8),
                    ctypes.POINTER(i64),
                    ctypes.POINTER(i32),
                    ctypes.POINTER(i32),
                    vp,
                    vp,
                ],
            ),
            "blosc2_unshuffle": (i32, [i32, i32, vp, vp]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(c, name)
            function.restype, function.argtypes = restype, argtypes
        self.version = c.blosc2_get_version_string().decode()
        # One context per thread: C-Blosc2's contexts are not thread-safe.  Each
        # thread's context lives as long as the thread (or this object).
        self._local = threading.local()

    def context(self) -> int:
        """This thread's decompression context (made on first use)."""
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = _Context(self)
        return ctx.pointer

    def decompress(self, src: object, out: np.ndarray) -> int:
        """Decompress one Blosc (1 or 2) chunk into ``out``; the bytes written, or C-Blosc2's error (< 0)."""
        src_address, src_nbytes, _keep = _address(src)
        out_address, out_nbytes, _ = _address(out)
        if src_nbytes > _INT32_MAX or out_nbytes > _INT32_MAX:
            return -1
        return int(
            self.c.blosc2_decompress_ctx(self.context(), src_address, src_nbytes, out_address, out_nbytes)
        )

    def frame(self, buf: object) -> Frame:
        """Parse the Blosc2 frame in ``buf`` (raises :class:`FrameError`)."""
        return Frame(self, buf)

    def unshuffle(self, typesize: int, src: object, out: np.ndarray) -> bool:
        """HDF5's (and Blosc's) byte unshuffle of ``src`` into ``out``; ``False`` where it cannot."""
        src_address, src_nbytes, _keep = _address(src)
        out_address, out_nbytes, _ = _address(out)
        if not 1 <= typesize <= 256 or src_nbytes != out_nbytes or src_nbytes > _INT32_MAX:
            return False
        return int(self.c.blosc2_unshuffle(typesize, src_nbytes, src_address, out_address)) == src_nbytes


def _candidates() -> list[Path]:
    """Where python-blosc2's wheel keeps the shared C-Blosc2 library, by platform."""
    try:
        import blosc2
    except ImportError:
        return []
    root = Path(blosc2.__file__).parent
    if sys.platform == "win32":
        patterns = ["lib/blosc2.dll", "lib/libblosc2.dll", "bin/blosc2.dll", "blosc2.dll"]
    elif sys.platform == "darwin":
        patterns = ["lib/libblosc2.dylib", "lib/libblosc2.*.dylib"]
    else:
        patterns = ["lib/libblosc2.so", "lib/libblosc2.so.*"]
    return [path for pattern in patterns for path in sorted(root.glob(pattern))]


def _self_test(lib: Library) -> bool:
    """Decode a b2nd frame and a chunk made by python-blosc2: the binding reads what it wrote."""
    import blosc2

    values = np.arange(6 * 40, dtype=np.float64).reshape(6, 40)
    array = blosc2.asarray(values, chunks=(6, 40), blocks=(2, 20))
    frame_bytes = array.to_cframe()
    with lib.frame(frame_bytes) as frame:
        if frame.b2nd is None or frame.b2nd.shape != (6, 40) or frame.b2nd.blockshape != (2, 20):
            return False
        if frame.nchunks != 1 or frame.nbytes != values.nbytes or frame.typesize != 8:
            return False
        flat = np.empty(values.nbytes, dtype=np.uint8)
        frame.decompress_chunk(0, flat)
    blocks = flat.view(np.float64).reshape(3, 2, 2, 20).transpose(0, 2, 1, 3).reshape(6, 40)
    chunk = blosc2.compress2(values.tobytes(), typesize=8)
    out = np.empty(values.nbytes, dtype=np.uint8)
    return (
        np.array_equal(blocks, values)
        and lib.decompress(chunk, out) == values.nbytes
        and np.array_equal(out.view(np.float64).reshape(6, 40), values)
    )


def _load() -> Library | None:
    if not _layout_matches():
        return None
    for path in _candidates():
        try:
            lib = Library(path)
        except (OSError, AttributeError):
            continue  # not loadable here, or a build without one of the functions
        if int(lib.version.split(".")[0]) != SUPPORTED_MAJOR:
            return None
        lib.c.blosc2_init()  # this private copy's codec registry (idempotent)
        try:
            return lib if _self_test(lib) else None
        except (FrameError, ValueError, ImportError):
            return None
    return None


# The process's binding: None until first use, then the Library or False (not available).
# Set once under _LOAD_LOCK; read without it afterwards (a single reference assignment).
_LIBRARY: Library | bool | None = None
_LOAD_LOCK = threading.Lock()


def library() -> Library | None:
    """The C-Blosc2 binding, loaded (and self-tested) on first use; ``None`` if unavailable.

    Examples
    --------
    >>> import numpy as np, blosc2
    >>> lib = library()
    >>> out = np.empty(80, dtype=np.uint8)
    >>> lib is None or lib.decompress(blosc2.compress2(np.arange(10.0).tobytes()), out) == 80
    True
    """
    global _LIBRARY
    if _LIBRARY is None:
        with _LOAD_LOCK:
            if _LIBRARY is None:
                loaded = _load()
                _LIBRARY = loaded if loaded is not None else False
    return _LIBRARY or None
