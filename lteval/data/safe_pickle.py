"""Pickles from a user's path, read without running code.

``pickle.load`` calls whatever a file names (``os.system`` included): a CIFAR
batch downloaded from a mirror or shared by a colleague could run anything. The
unpickler here builds plain data only: dicts, lists, tuples, strings, bytes and
numbers (pickle opcodes, no lookup needed), numpy arrays (the four globals
that an array's pickle names), and bytes as protocol 2 writes them from Python 3
(``_codecs.encode`` with latin-1, replaced by a function that does only that).
Any other global is refused before it is looked up, so nothing the file names is
imported or called.
"""

from __future__ import annotations

import io
import pickle

ALLOWED = frozenset(
    {
        (f"{core}.{module}", name)
        for core in ("numpy.core", "numpy._core")  # numpy 1 / numpy 2 names
        for module, name in (
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
            ("numeric", "_frombuffer"),
        )
    }
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)
"""(module, name) of the globals numpy arrays and scalars pickle to, and the only
ones built: ``_reconstruct`` + ``ndarray`` + ``dtype`` (protocols 0-4), ``_frombuffer``
(protocol 5, which refuses object dtypes), ``scalar`` (a numpy number). None of
them runs code the file names."""


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global that is not a numpy array's: ``module.name``."""

    def __init__(self, module: str, name: str):
        super().__init__(f"refusing to unpickle {module}.{name}")
        self.qualname = f"{module}.{name}"


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it (Python 3 writing a
    pickle Python 2 can read: ``encode(text, "latin1")``), and for nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal("_codecs", f"encode with {encoding!r}")
    return text.encode("latin1")


class _DataOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        if (module, name) not in ALLOWED:
            raise RefusedGlobal(module, name)
        return super().find_class(module, name)


def load_data_pickle(data: bytes, *, encoding: str = "ASCII"):
    """The plain data (containers, strings, numbers, numpy arrays) pickled in ``data``.

    ``encoding``: how Python 2 ``str`` objects are read ("bytes" keeps them as
    bytes, as the CIFAR archives need). Raises ``RefusedGlobal`` for anything that
    would call or import other code, and ``pickle.UnpicklingError`` (or EOFError,
    ValueError...) for a damaged pickle; nothing the file names has run by then.
    """
    return _DataOnly(io.BytesIO(data), encoding=encoding).load()
