"""Cache/load stage: content-addressed generated modules on disk, and an in-process memo.

Promises:

* The key hashes a canonical serialization of the outputs (shapes and dtypes included),
  the input spec, the options, the template text and the symgrad, SymPy, NumPy and
  Python versions. Nothing process-dependent enters it.
* Location: ``SYMGRAD_CACHE_DIR``, else the user cache directory; created private to the
  user (0700). A root that others can write to, or that another user owns, is refused
  (:class:`CacheError`). Every path under it is opened and checked race-free
  (:mod:`symgrad.runtime.trust`): a subdirectory or entry that is a symlink, belongs to another
  user or is writable by others is never read.
* Entries are authenticated: the first line carries an HMAC-SHA256, under a per-user key kept
  in the cache root (0600, see :mod:`symgrad.runtime.trust`), of everything after the tag (the rest
  of the header, the module source and any arrays stored with it), bound to the entry's key.
  The tag is checked with ``hmac.compare_digest`` before anything is decoded, parsed or
  compiled. An entry without a valid tag (truncated, empty, edited, forged with a
  recomputed plain hash, another key's entry, written under another key) is never run: it is
  rebuilt with a :class:`CacheWarning` naming the file. Without a trusted key nothing on
  disk is trusted (entries are rebuilt, a new key is made where possible).
* Arrays may be stored beside a module (``store(key, source, arrays={...})``): inside the
  same entry, after the source, in ``.npy`` format, covered by the same tag. They are read
  back with ``np.load(..., allow_pickle=False)``, made read-only and given to the module as
  the dict ``_DATA`` before its code runs (from disk and in memory alike).
* Before a module runs (fresh or from disk), its AST passes the positive allowlist
  :func:`symgrad.runtime.safety.check_module_source`; a fresh module is checked before anything is
  written, so a module that would be refused never reaches the disk. It runs with a reduced
  set of builtins whose ``__import__`` imports only numpy (and, for numpy's
  own lazy imports, its submodules).
* Entries are written atomically (private temp file, fsync, rename), so concurrent compiles
  of the same key are safe and a killed writer leaves no half-written entry (at most a
  ``.*.tmp`` file, never read, removed by ``clear`` or once stale).
* An unwritable cache (read-only, not a directory, no usable key, ...) falls back to memory
  with one :class:`CacheWarning` per process; compiling keeps working.
* Housekeeping touches only symgrad's files: :func:`clear` removes entries it verifies (name,
  header and tag) and symgrad temp files, and the subdirectories it emptied; :func:`prune`
  evicts entries unused for ``max_age`` days and, least recently used first, keeps the total
  under ``max_size`` (defaults: 30 days, 500 MB; run automatically at most once a day).
* ``SYMGRAD_CACHE_DEBUG=1`` prints (to stderr) why each lookup hit or missed, with the key;
  on a miss it names the parts of the key that differ from the closest cached entry
  (versions, templates, options, expression, ...).
* :func:`info`, :func:`clear` and :func:`prune` back ``python -m symgrad cache
  info|clear|prune``.

Test hook: ``SYMGRAD_CACHE_TEST_KILL_AT=<n>`` SIGKILLs a writer after the first ``n`` bytes
of an entry's temp file (see :mod:`symgrad.runtime.trust`).
"""

from __future__ import annotations

import builtins
import hashlib
import io
import linecache
import logging
import os
import platform
import re
import stat
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import sympy

from . import trust
from .._version import __version__
from ..graph import post_order
from .safety import SAFE_BUILTINS, check_module_source
from .trust import UntrustedPath

__all__ = ["CacheError", "CacheWarning", "cache_dir", "make_key", "serialize", "ModuleCache",
           "MODULES", "version_fingerprint", "entries", "info", "clear", "prune", "execute",
           "check_entry", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_AGE_DAYS"]

log = logging.getLogger("symgrad.runtime.cache")
HEADER = "# symgrad-entry "
#: every entry starts with these bytes, then the 64 hex digits of its tag
MAGIC = b"# symgrad-entry hmac-sha256="
TAG_LEN = 64
#: a killed writer's temp file older than this (seconds) is removed by the next write
STALE_TEMP_SECONDS = 600.0
#: prune defaults: entries unused for this many days go, and the total stays under this size
DEFAULT_MAX_AGE_DAYS = 30.0
DEFAULT_MAX_SIZE = 500 * 1000 * 1000
#: the automatic prune runs at most this often (seconds), per process and per cache root
AUTO_PRUNE_EVERY = 86400.0
_PRUNE_STAMP = ".symgrad-last-prune"


class CacheError(RuntimeError):
    """The cache directory cannot be used safely."""


class CacheWarning(UserWarning):
    """The cache misbehaved (corrupt entry rebuilt, unwritable directory, ...)."""


def _debugging() -> bool:
    return os.environ.get("SYMGRAD_CACHE_DEBUG", "") not in ("", "0")


def _debug(msg: str, *args) -> None:
    if _debugging():
        print("symgrad cache: " + (msg % args), file=sys.stderr, flush=True)
    log.debug(msg, *args)


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


def _package_digest() -> str:
    """A hash of symgrad's own source: a changed compiler never reuses an old module."""
    global _PACKAGE_DIGEST
    if _PACKAGE_DIGEST is None:
        h = hashlib.sha256()
        package = Path(__file__).resolve().parent.parent
        for path in sorted(package.rglob("*.py")):
            h.update(path.relative_to(package).as_posix().encode())
            h.update(path.read_bytes())
        _PACKAGE_DIGEST = h.hexdigest()[:16]
    return _PACKAGE_DIGEST


_PACKAGE_DIGEST = None


def version_fingerprint() -> str:
    """The versions a cache key depends on: symgrad (and a digest of its source), SymPy,
    NumPy and Python.

    Returns
    -------
    str
        ``symgrad=...;sympy=...;numpy=...;python=...;impl=...``.
    """
    return (f"symgrad={__version__}+{_package_digest()};sympy={sympy.__version__};"
            f"numpy={np.__version__};python={platform.python_version()};"
            f"impl={platform.python_implementation()}")


def serialize(expr, memo: dict, out: list) -> int:
    """Append a canonical, linear serialization of ``expr``'s DAG to ``out``.

    Iterative (no recursion limit); shared subtrees are written once.

    Parameters
    ----------
    expr : sympy.Basic
    memo : dict
        Node to index in ``out``, shared between calls so that a node written by an earlier
        call is referred to, not written again; updated in place.
    out : list of str
        The serialization, one line per node; appended to.

    Returns
    -------
    int
        The index of ``expr``'s line in ``out``.
    """
    # a node in memo (from an earlier call sharing it) is written already: refer to its index
    roots = () if expr in memo else (expr,)
    for node in post_order(roots, lambda n: [a for a in n.args if a not in memo]):
        memo[node] = len(out)
        out.append(f"{type(node).__name__}({','.join(str(memo[a]) for a in node.args)})"
                   if node.args else sympy.srepr(node))
    return memo[expr]


#: per key made in this process: (digest, preview) of each part, for the debug explanation
_KEY_PARTS: dict = {}
_KEY_PARTS_LIMIT = 512


def _part_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def make_key(*parts: str) -> str:
    """The cache key of a module: a SHA-256 over the parts, each terminated by a NUL.

    The parts' digests are remembered (for a bounded number of keys) so that
    ``SYMGRAD_CACHE_DEBUG`` can say which part of a missed key differs.

    Parameters
    ----------
    *parts : str
        Everything the module depends on (kind, expression, options, versions, templates).

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    described = []
    for p in parts:
        data = p.encode("utf-8", "surrogatepass")
        h.update(data)
        h.update(b"\x00")
        described.append((_part_digest(data), p))
    key = h.hexdigest()
    if len(_KEY_PARTS) >= _KEY_PARTS_LIMIT:
        _KEY_PARTS.clear()
    _KEY_PARTS[key] = tuple(described)
    return key


def _part_label(index: int, text: str) -> str:
    """What a key part is, for humans: recognised by content, else by position."""
    if text == version_fingerprint():
        return "versions (symgrad/SymPy/NumPy/Python)"
    try:
        from ..compiler.codegen import template_text
        if text == template_text():
            return "templates"
    except Exception:  # noqa: BLE001 - a label is best effort
        pass
    if (text.startswith("[('") and "('check_finite'," in text) or text.startswith("{'"):
        return "options"
    return f"part {index}"


def _explain_miss(key: str, root: "trust.Root", secret: bytes) -> str:
    """Which key parts differ from the most similar verified entry on disk (debug only)."""
    mine = _KEY_PARTS.get(key)
    if not mine:
        return "no entry with this key"
    best, best_same = None, -1
    for rec in _scan(root)["files"]:
        if rec["kind"] != "entry":
            continue
        opened = _read_verified(root, rec, secret)
        if opened is None:
            continue
        fields = _parse_header(opened[0].partition("\n")[0])
        theirs = fields.get("parts", "").split(",") if fields.get("parts") else []
        if len(theirs) != len(mine) or theirs[0] != mine[0][0]:
            continue
        same = sum(a == b for a, (b, _) in zip(theirs, mine))
        if same > best_same:
            best, best_same = (rec["key"], theirs), same
    if best is None:
        return "no entry with this key, and no cached entry of the same kind"
    other_key, theirs = best
    diffs = []
    for i, (d_theirs, (d_mine, text)) in enumerate(zip(theirs, mine)):
        if d_theirs != d_mine:
            preview = _printable(text, 70)
            diffs.append(f"{_part_label(i, text)} [now {preview!r}]")
    return (f"no entry with this key; the closest cached entry {other_key[:16]} differs in: "
            + "; ".join(diffs))


def _printable(text: str, limit: int) -> str:
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------
# Location
# ---------------------------------------------------------------------------------------


def _default_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "symgrad"


def cache_dir() -> Path:
    """The cache directory in force (``SYMGRAD_CACHE_DIR`` or the user cache dir)."""
    env = os.environ.get("SYMGRAD_CACHE_DIR")
    return Path(env).expanduser() if env else _default_dir()


def _open_root(directory: Optional[Path] = None, create: bool = False):
    """The checked root (a :class:`trust.Root`), None when missing and not ``create``.

    Raises :class:`CacheError` for an unsafe root, ``OSError`` when it cannot be used."""
    if not trust.SUPPORTED:
        raise OSError("this platform lacks the race-free file API (openat, O_NOFOLLOW) the "
                      "disk cache needs")
    d = Path(directory) if directory is not None else cache_dir()
    return trust.open_root(d, create, CacheError)


# ---------------------------------------------------------------------------------------
# Entries: MAGIC tag " v=2 key=... source=N [arrays=name:n,...] [parts=...]\n" source arrays
# ---------------------------------------------------------------------------------------


class _Refused(Exception):
    """An entry that must not run (the reason is the message)."""


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _pack_arrays(arrays) -> list:
    """``[(name, npy bytes)]`` for a dict of str -> array; refuses what cannot round-trip
    without pickle (object dtypes) and names that are not identifiers."""
    if not arrays:
        return []
    if not isinstance(arrays, dict):
        raise TypeError(f"store: arrays must be a dict of str -> numpy array, got "
                        f"{type(arrays).__name__}")
    out = []
    for name in sorted(arrays):
        if not isinstance(name, str) or not _NAME_RE.match(name) or not name.isascii():
            raise ValueError(f"store: array name {name!r} is not an ASCII identifier")
        value = np.asarray(arrays[name])
        if value.dtype.hasobject:
            raise TypeError(f"store: array {name!r} has dtype {value.dtype}, which holds Python "
                            f"objects; only plain numeric/bool dtypes can be stored")
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
        out.append((name, buf.getvalue()))
    return out


def _unpack_arrays(blobs: list) -> dict:
    """The read-only arrays of ``[(name, npy bytes)]`` (never unpickles)."""
    out = {}
    for name, blob in blobs:
        try:
            a = np.load(io.BytesIO(blob), allow_pickle=False)
        except Exception as err:  # noqa: BLE001 - any failure is a refusal
            raise _Refused(f"array {name!r} does not load ({type(err).__name__}: {err})")
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise _Refused(f"array {name!r} is not a plain numpy array")
        a.setflags(write=False)
        out[name] = a
    return out


def _header_rest(key: str, source_bytes: bytes, blobs: list) -> bytes:
    fields = ["v=2", f"key={key}", f"source={len(source_bytes)}"]
    if blobs:
        fields.append("arrays=" + ",".join(f"{n}:{len(b)}" for n, b in blobs))
    parts = ",".join(d for d, _ in _KEY_PARTS.get(key, ()))
    if parts:
        fields.append(f"parts={parts}")
    return (" " + " ".join(fields) + "\n").encode("ascii")


def _build_entry(secret: bytes, key: str, source: str, blobs: list) -> bytes:
    """The exact bytes of an entry: tag, then what it authenticates."""
    src = source.encode("utf-8", "surrogatepass")
    rest = _header_rest(key, src, blobs) + src + b"".join(b for _, b in blobs)
    return MAGIC + trust.tag(secret, key, rest) + rest


def _memory_text(key: str, source: str, blobs: list) -> str:
    src = source.encode("utf-8", "surrogatepass")
    head = _header_rest(key, src, blobs).decode("ascii")
    return f"{HEADER}in-memory (not on disk){head}{source}"


def _parse_header(first: str) -> dict:
    body = first[len(HEADER):] if first.startswith(HEADER) else first
    return dict(f.split("=", 1) for f in body.split() if "=" in f)


def _open_entry(key: str, data: bytes, secret: Optional[bytes]) -> tuple:
    """``(text, arrays)`` of an authentic entry of ``key``; raises :class:`_Refused`.

    Nothing is decoded or parsed before the tag matched: the tag is at a fixed offset, and
    the HMAC covers every byte after it."""
    if secret is None:
        raise _Refused("no trusted key: nothing on disk is trusted")
    if not data:
        raise _Refused("empty file")
    if len(data) < len(MAGIC) + TAG_LEN or not data.startswith(MAGIC):
        raise _Refused("no symgrad HMAC header (garbage, an old or forged format, or "
                       "truncated inside the header)")
    given = data[len(MAGIC):len(MAGIC) + TAG_LEN]
    rest = data[len(MAGIC) + TAG_LEN:]
    if not trust.tag_matches(secret, key, rest, given):
        raise _Refused("bad HMAC tag: edited, truncated, forged, another key's entry, or "
                       "written under another cache key")
    # authentic from here on: we wrote these bytes, for this key
    nl = rest.find(b"\n")
    try:
        fields = _parse_header(rest[:nl].decode("ascii"))
        n_src = int(fields["source"])
        layout = [(n, int(size)) for n, _, size in
                  (item.partition(":") for item in fields.get("arrays", "").split(",") if item)]
    except (UnicodeDecodeError, KeyError, ValueError) as err:
        raise _Refused(f"malformed header ({err})")
    if fields.get("key") != key or fields.get("v") != "2":
        raise _Refused("header names another key or format")
    body = rest[nl + 1:]
    if n_src + sum(s for _, s in layout) != len(body):
        raise _Refused("lengths in the header do not add up")
    try:
        text = (data[:len(MAGIC) + TAG_LEN] + rest[:nl + 1] + body[:n_src]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused("not UTF-8")
    blobs, at = [], n_src
    for name, size in layout:
        blobs.append((name, bytes(body[at:at + size])))
        at += size
    return text, _unpack_arrays(blobs)


def _current_key(create: bool = False) -> Optional[bytes]:
    """The key of the cache directory in force (None when there is none to trust)."""
    try:
        root = _open_root(create=create)
    except (OSError, CacheError):
        return None
    if root is None:
        return None
    with root:
        try:
            return trust.load_key(root, create, _warn)
        except OSError:
            return None


def check_entry(key: str, data: bytes, secret: Optional[bytes] = None) -> tuple:
    """Whether ``data`` is an authentic entry of ``key``.

    Parameters
    ----------
    key : str
        The entry's cache key (the tag is bound to it).
    data : bytes
        The entry file's bytes.
    secret : bytes, optional
        The HMAC key; by default the key of the cache directory in force (without one
        nothing is authentic).

    Returns
    -------
    tuple
        ``(text, None)`` for an authentic entry (``text``: the header line and the module
        source), else ``(None, reason)``.
    """
    if secret is None:
        secret = _current_key()
    try:
        text, _ = _open_entry(key, data, secret)
    except _Refused as why:
        return None, str(why)
    return text, None


def _entry_text(key: str, source: str) -> str:
    """The text of an authentic entry (no arrays) under the cache directory's key."""
    secret = _current_key(create=True)
    if secret is None:
        raise CacheError(f"no usable key in {cache_dir()}")
    return _build_entry(secret, key, source, []).decode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------
# Running a module
# ---------------------------------------------------------------------------------------


class LoadedModule:
    """A generated module, executed: its namespace, source, path and arrays.

    Parameters
    ----------
    key : str
        The cache key.
    source : str
        The text that ran (header and module source).
    path : Path or None
        The entry on disk, None when the module lives in memory only.
    namespace : dict
        The module's globals after it ran.
    arrays : dict, optional
        The read-only arrays given to it as ``_DATA``.
    """

    def __init__(self, key: str, source: str, path: Optional[Path], namespace: dict,
                 arrays: Optional[dict] = None):
        self.key, self.source, self.path, self.namespace = key, source, path, namespace
        self.arrays = arrays or {}


def _filename(key: str, path: Optional[Path]) -> str:
    return str(path) if path is not None else f"<symgrad {key[:12]}>"


def _checked_code(key: str, text: str, filename: str):
    """Allowlist check, then byte-compile (nothing runs). The text is compiled, not the
    checked tree: CPython converts an AST object to its own form recursively, and a long
    generated line (a sum of a thousand terms) hits the recursion limit there, while the
    parser does not (the tree is the same)."""
    check_module_source(text)
    return compile(text, filename, "exec")


#: the array libraries array_api_compat serves (see _only_numpy)
_ARRAY_LIBRARIES = frozenset({"torch", "cupy", "jax", "dask", "array_api_strict", "ndonnx",
                              "sparse"})


def _already_loaded_array_library(name: str, fromlist) -> bool:
    """``name`` (and every submodule ``fromlist`` names) is part of an array library and
    already imported: importing it again runs nothing."""
    if name.partition(".")[0] not in _ARRAY_LIBRARIES or name not in sys.modules:
        return False
    module = sys.modules[name]
    return all(hasattr(module, item) or f"{name}.{item}" in sys.modules
               for item in (fromlist or ()))


def _only_numpy(name, globals=None, locals=None, fromlist=(), level=0):
    # numpy's C code imports its own helpers lazily (numpy._core._methods for x.sum(), ...)
    # through the calling frame's __import__: numpy and its submodules only; array_api_compat
    # itself for the array API target (its own imports of the namespaces go through its own
    # module's builtins, not these); and math (the scalar target's functions; the allowlist
    # admits only math.<name> from MATH_NAMES)
    if level == 0 and name == "math" and not fromlist:
        return builtins.__import__(name, globals, locals, fromlist, level)
    if level == 0 and _already_loaded_array_library(name, fromlist):
        # torch's C code imports torch again through the calling frame (``xp.inf`` in a
        # fresh process did): an array library the caller's arrays already loaded, so no
        # new code runs
        return builtins.__import__(name, globals, locals, fromlist, level)
    if level != 0 or not (name == "numpy" or name.startswith("numpy.")
                          or name == "array_api_compat"):
        raise ImportError(f"a generated module may import only numpy, math and "
                          f"array_api_compat, not {name!r}")
    return builtins.__import__(name, globals, locals, fromlist, level)


#: the builtins a generated module sees: the allowlist's, and an __import__ for numpy only
_BUILTINS = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
_BUILTINS["__import__"] = _only_numpy


def _run(key: str, text: str, path: Optional[Path], code,
         arrays: Optional[dict] = None) -> LoadedModule:
    filename = _filename(key, path)
    # tracebacks show the verified text, never whatever the file holds by then
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    data = dict(arrays or {})
    namespace = {"__name__": f"symgrad_generated_{key[:16]}", "__file__": filename,
                 "__builtins__": dict(_BUILTINS), "_DATA": data}
    exec(code, namespace)  # noqa: S102 - authenticated (or fresh), allowlisted code
    return LoadedModule(key, text, path, namespace, data)


def execute(key: str, text: str, path: Optional[Path], arrays: Optional[dict] = None
            ) -> LoadedModule:
    """Check a module's AST against the allowlist, then run it in a fresh namespace.

    Parameters
    ----------
    key : str
        The cache key (names the module in tracebacks when there is no path).
    text : str
        The module's text.
    path : Path or None
        Where it is stored, for tracebacks.
    arrays : dict, optional
        Given to the module, as read-only copies, in ``_DATA`` before its first line runs.

    Returns
    -------
    LoadedModule

    Raises
    ------
    UnsafeModuleError
        When the module's AST is outside the allowlist (nothing ran).
    """
    data = _unpack_arrays(_pack_arrays(arrays)) if arrays else {}
    return _run(key, text, path, _checked_code(key, text, _filename(key, path)), data)


# ---------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------


_WARNED: set = set()


def _warn(message: str) -> None:
    """One CacheWarning per distinct message per process."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    warnings.warn(message, CacheWarning, stacklevel=4)


def _untrusted_subdir(err: Exception) -> None:
    _debug("untrusted: %s", err)
    _warn(f"symgrad: {err}; it is never read or written (entries under it are rebuilt and "
          f"kept in memory). Remove it if it is not yours to keep.")


def _remove_stale_temps(sub_fd: int, key: str) -> None:
    """Temp files of killed writers of this key, old enough that nobody is writing them."""
    now = time.time()
    prefix = f".{key[:16]}."
    try:
        names = os.listdir(sub_fd)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        try:
            st = os.stat(name, dir_fd=sub_fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() \
                    and now - st.st_mtime > STALE_TEMP_SECONDS:
                os.unlink(name, dir_fd=sub_fd)
        except OSError:
            pass


class ModuleCache:
    """Disk cache + in-process memo of generated modules."""

    def __init__(self):
        self.memo: dict = {}
        self._warned_readonly = False

    def directory(self) -> Optional[Path]:
        """The cache directory, created and checked (:class:`CacheError` when unsafe)."""
        root = _open_root(create=True)
        root.close()
        return root.path

    def lookup(self, key: str) -> Optional[LoadedModule]:
        """The module of ``key``: from this process's memo, else from an authentic entry.

        An entry that does not verify is not run (a :class:`CacheWarning` names it).

        Parameters
        ----------
        key : str

        Returns
        -------
        LoadedModule or None
            None on a miss.

        Raises
        ------
        CacheError
            When the cache directory is unsafe (see the module docstring).
        """
        hit = self.memo.get(key)
        if hit is not None:
            _debug("hit %s (already loaded in this process)", key)
            return hit
        try:
            root = _open_root(create=False)
        except CacheError:
            raise
        except OSError as err:
            _debug("miss %s (cache directory %s unusable: %s; in memory only)", key,
                   cache_dir(), err)
            return None
        if root is None:
            _debug("miss %s (no cache directory %s yet)", key, cache_dir())
            return None
        sub, name = key[:2], f"{key}.py"
        path = root.path / sub / name
        with root:
            secret = trust.load_key(root, False, _warn)
            if secret is None:
                _debug("miss %s (no trusted key in %s: nothing on disk is trusted)", key,
                       root.path)
                return None
            try:
                sub_fd = trust.open_subdir(root, sub, create=False)
            except FileNotFoundError:
                if _debugging():
                    _debug("miss %s (%s)", key, _explain_miss(key, root, secret))
                return None
            except UntrustedPath as err:
                _untrusted_subdir(err)
                return None
            except OSError as err:
                _debug("miss %s (cannot open %s: %s)", key, path.parent, err)
                return None
            try:
                data, st = trust.read_file(sub_fd, name, f"cache entry {path}")
                try:  # last use, for the LRU prune (atime; mtime stays the write time)
                    os.utime(name, ns=(time.time_ns(), st.st_mtime_ns), dir_fd=sub_fd,
                             follow_symlinks=False)
                except OSError:
                    pass
            except FileNotFoundError:
                if _debugging():
                    _debug("miss %s (%s)", key, _explain_miss(key, root, secret))
                return None
            except UntrustedPath as err:
                self._corrupt(path, key, f"not trusted: {err}")
                return None
            except OSError as err:
                self._corrupt(path, key, f"unreadable ({err})")
                return None
            finally:
                os.close(sub_fd)
        try:
            text, arrays = _open_entry(key, data, secret)
        except _Refused as why:
            self._corrupt(path, key, str(why))
            return None
        try:
            mod = _run(key, text, path, _checked_code(key, text, str(path)), arrays)
        except Exception as err:  # an authentic entry that still fails: rebuild it
            self._corrupt(path, key, f"refused or failed to load ({type(err).__name__}: {err})")
            return None
        _debug("hit %s (%s)", key, path)
        self.memo[key] = mod
        return mod

    def _corrupt(self, path: Path, key: str, why: str) -> None:
        _debug("miss %s (corrupt entry %s: %s)", key, path, why)
        # not removed here: the rebuild replaces it atomically, and prune removes dead ones
        warnings.warn(f"symgrad: cache entry {path} is corrupt or not authentic ({why}); it "
                      f"was not run and is rebuilt", CacheWarning, stacklevel=4)

    def store(self, key: str, source: str, arrays: Optional[dict] = None) -> LoadedModule:
        """Check, write (authenticated, atomically) and run a module.

        An unwritable cache falls back to memory (one :class:`CacheWarning` per process).

        Parameters
        ----------
        key : str
        source : str
            The module source.
        arrays : dict, optional
            Name to numpy array: stored in the same entry and given to the module as
            ``_DATA``.

        Returns
        -------
        LoadedModule

        Raises
        ------
        UnsafeModuleError
            When the source is outside the allowlist (nothing was written).
        CacheError
            When the cache directory is unsafe.
        """
        blobs = _pack_arrays(arrays)
        data_ro = _unpack_arrays(blobs)
        # checked before anything touches the disk: a refused module is never written
        check_module_source(source)
        path, problem, text, code = None, None, None, None
        try:
            root = _open_root(create=True)
        except CacheError:
            raise
        except OSError as err:
            root, problem = None, err
        if root is not None:
            with root:
                try:
                    text, path, code = self._write(root, key, source, blobs)
                except UntrustedPath as err:
                    _untrusted_subdir(err)
                    text, path = None, None
                except OSError as err:
                    text, path, problem = None, None, err
        if problem is not None:
            self._fallback(problem)
        if text is None:
            text = _memory_text(key, source, blobs)
            code = compile(text, _filename(key, None), "exec")
        mod = _run(key, text, path, code, data_ro)
        self.memo[key] = mod
        return mod

    def _write(self, root, key: str, source: str, blobs: list) -> tuple:
        secret = trust.load_key(root, True, _warn)
        if secret is None:
            raise OSError(f"no usable key file {root.path / trust.KEY_NAME}")
        data = _build_entry(secret, key, source, blobs)
        sub, name = key[:2], f"{key}.py"
        path = root.path / sub / name
        text = _text_of(data)
        # compiled before it is written: a module that does not compile never reaches the disk
        code = compile(text, str(path), "exec")
        sub_fd = trust.open_subdir(root, sub, create=True)
        try:
            trust.write_atomically(sub_fd, name, data, f".{key[:16]}.")
            _remove_stale_temps(sub_fd, key)
        finally:
            os.close(sub_fd)
        _debug("stored %s (%s)", key, path)
        _auto_prune(root, keep=key)
        return text, path, code

    def _fallback(self, err: OSError) -> None:
        _debug("cannot write the cache at %s (%s); in memory only", cache_dir(), err)
        if not self._warned_readonly:
            self._warned_readonly = True
            warnings.warn(f"symgrad: cannot write the cache at {cache_dir()} ({err}); keeping "
                          f"compiled modules in memory only (set SYMGRAD_CACHE_DIR to a "
                          f"writable directory)", CacheWarning, stacklevel=4)


def _text_of(data: bytes) -> str:
    """The header line and source of an entry we just built (its arrays cut off)."""
    head_end = data.index(b"\n") + 1
    n_src = int(_parse_header(data[len(MAGIC) + TAG_LEN:head_end].decode("ascii"))["source"])
    return data[:head_end + n_src].decode("utf-8", "surrogatepass")


#: the process-wide cache
MODULES = ModuleCache()


# ---------------------------------------------------------------------------------------
# Housekeeping (python -m symgrad cache info|clear|prune): symgrad's own files only
# ---------------------------------------------------------------------------------------


_SUB_RE = re.compile(r"[0-9a-f]{2}\Z")
_ENTRY_RE = re.compile(r"([0-9a-f]{64})\.py\Z")
_TEMP_RE = re.compile(r"\.[0-9a-f]{16}\.[A-Za-z0-9_]+\.tmp\Z")


def _scan(root) -> dict:
    """What the root holds, by name and ``lstat`` only (nothing is read or followed):
    ``files`` (records with sub, name, key, kind 'entry'|'temp'|'other', stat) in trusted
    two-hex subdirectories, and ``untrusted`` (reasons for subdirectories never entered)."""
    files, untrusted = [], []
    try:
        names = sorted(os.listdir(root.fd))
    except OSError:
        names = []
    for sub in names:
        if not _SUB_RE.match(sub):
            continue
        try:
            sub_fd = trust.open_subdir(root, sub, create=False)
        except UntrustedPath as err:
            untrusted.append(str(err))
            continue
        except OSError:
            continue
        try:
            for name in sorted(os.listdir(sub_fd)):
                try:
                    st = os.stat(name, dir_fd=sub_fd, follow_symlinks=False)
                except OSError:
                    continue
                m = _ENTRY_RE.match(name)
                mine = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
                kind = ("entry" if m and mine and m.group(1)[:2] == sub else
                        "temp" if _TEMP_RE.match(name) and mine else "other")
                files.append({"sub": sub, "name": name, "key": m.group(1) if m else None,
                              "kind": kind, "stat": st, "path": root.path / sub / name})
        finally:
            os.close(sub_fd)
    return {"files": files, "untrusted": untrusted}


def _read_record(root, rec: dict) -> Optional[bytes]:
    """The bytes of an entry record's file, read through checked descriptors, else None."""
    try:
        sub_fd = trust.open_subdir(root, rec["sub"], create=False)
    except (OSError, UntrustedPath):
        return None
    try:
        data, _ = trust.read_file(sub_fd, rec["name"], f"cache entry {rec['path']}")
    except (OSError, UntrustedPath):
        return None
    finally:
        os.close(sub_fd)
    return data


def _read_verified(root, rec: dict, secret: Optional[bytes]):
    """``(text, arrays, size)`` of an authentic entry record, else None."""
    if secret is None:
        return None
    data = _read_record(root, rec)
    if data is None:
        return None
    try:
        text, arrays = _open_entry(rec["key"], data, secret)
    except _Refused:
        return None
    return text, arrays, len(data)


def describe(text: str) -> str:
    """Which function an entry holds, from its verified header comments.

    Parameters
    ----------
    text : str
        An authentic entry's text.

    Returns
    -------
    str
        The title line (function and outputs) and the input spec, printable, on one line.
    """
    title, inputs, section = None, [], None
    for line in text.splitlines()[1:200]:
        if not line.startswith("#"):
            break
        body = line[1:].strip()
        if body.startswith("Generated by") or body.startswith("cache key:"):
            section = None
        elif body == "Computes:":
            section = "computes"
        elif body.startswith("Inputs"):
            section = "inputs"
        elif not body:
            section = None
        elif section == "inputs":
            inputs.append(body)
        elif section is None and title is None:
            title = body
    if title is None:
        return "(no description in the header)"
    return _printable(f"{title}; inputs: {', '.join(inputs) if inputs else 'none'}", 400)


def _key_state(root) -> tuple:
    """``(secret or None, 'present'|'missing'|'untrusted: ...')`` without creating one."""
    try:
        return trust._read_key(root), "present"
    except FileNotFoundError:
        return None, "missing (nothing on disk is trusted until one is made)"
    except (UntrustedPath, OSError) as err:
        return None, f"untrusted ({err}): nothing on disk is trusted"


def entries(directory: Optional[Path] = None) -> list:
    """Every entry file of the cache.

    Parameters
    ----------
    directory : Path, optional
        The cache directory; by default the one in force.

    Returns
    -------
    list of dict
        Per entry: key, path, size (bytes), mtime, atime (last use), age (seconds since
        last use), valid (authentic under the cache's key), function (what it computes
        and its inputs, from the verified header; None when not valid) and arrays.
    """
    root = _open_root(directory, create=False)
    if root is None:
        return []
    with root:
        return _entries(root, _scan(root))


def _entries(root, scan: dict) -> list:
    out = []
    now = time.time()
    secret, _ = _key_state(root)
    for rec in scan["files"]:
        if rec["kind"] != "entry":
            continue
        st = rec["stat"]
        opened = _read_verified(root, rec, secret)
        used = max(st.st_atime, st.st_mtime)
        out.append({"key": rec["key"], "path": rec["path"], "size": st.st_size,
                    "mtime": st.st_mtime, "atime": used, "age": max(0.0, now - used),
                    "valid": opened is not None,
                    "function": describe(opened[0]) if opened else None,
                    "arrays": sorted(opened[1]) if opened else []})
    return out


def info(directory: Optional[Path] = None) -> dict:
    """What the cache holds, for ``python -m symgrad cache info``.

    Parameters
    ----------
    directory : Path, optional
        The cache directory; by default the one in force.

    Returns
    -------
    dict
        directory, exists, key (its state), entries (see :func:`entries`), total_size,
        temp_files (left by killed writers), other_files and untrusted (files and
        subdirectories that are not symgrad's, left alone).
    """
    d = Path(directory) if directory is not None else cache_dir()
    root = _open_root(d, create=False)
    if root is None:
        return {"directory": d, "exists": False, "entries": [], "total_size": 0,
                "temp_files": 0, "key": "missing", "untrusted": [], "other_files": 0}
    with root:
        _, key_state = _key_state(root)
        scan = _scan(root)
        es = _entries(root, scan)
    return {"directory": d, "exists": True, "entries": es, "key": key_state,
            "total_size": sum(e["size"] for e in es),
            "temp_files": sum(r["kind"] == "temp" for r in scan["files"]),
            "other_files": sum(r["kind"] == "other" for r in scan["files"]),
            "untrusted": scan["untrusted"]}


def _remove(root, rec: dict) -> bool:
    try:
        sub_fd = trust.open_subdir(root, rec["sub"], create=False)
    except (OSError, UntrustedPath):
        return False
    try:
        os.unlink(rec["name"], dir_fd=sub_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(sub_fd)


def _rmdir_emptied(root, subs: set) -> None:
    """Remove the subdirectories in ``subs`` (ones we just removed files from) if empty."""
    for sub in subs:
        try:
            sub_fd = trust.open_subdir(root, sub, create=False)
        except (OSError, UntrustedPath):
            continue
        try:
            empty = not os.listdir(sub_fd)
        except OSError:
            empty = False
        finally:
            os.close(sub_fd)
        if empty:
            try:
                os.rmdir(sub, dir_fd=root.fd)
            except OSError:
                pass


def clear_report(directory: Optional[Path] = None) -> dict:
    """Remove every authentic entry and symgrad temp file; report what was left and why.

    Parameters
    ----------
    directory : Path, optional
        The cache directory; by default the one in force.

    Returns
    -------
    dict
        removed and temp_files (counts), left (entries that do not verify) and untrusted
        (subdirectories never entered, with the reason).
    """
    root = _open_root(directory, create=False)
    report = {"removed": 0, "temp_files": 0, "left": [], "untrusted": []}
    if root is None:
        return report
    with root:
        secret, _ = _key_state(root)
        scan = _scan(root)
        report["untrusted"] = scan["untrusted"]
        emptied = set()
        for rec in scan["files"]:
            if rec["kind"] == "entry" and _read_verified(root, rec, secret) is not None:
                if _remove(root, rec):
                    report["removed"] += 1
                    emptied.add(rec["sub"])
            elif rec["kind"] == "temp":
                if _remove(root, rec):
                    report["temp_files"] += 1
                    emptied.add(rec["sub"])
            elif rec["kind"] == "entry":
                report["left"].append(rec["path"])
        _rmdir_emptied(root, emptied)
    MODULES.memo.clear()
    return report


def clear(directory: Optional[Path] = None) -> int:
    """Remove every entry this cache can authenticate (name, header and tag) and symgrad's
    temp files, then the subdirectories that this emptied.

    Files it does not recognise, entries that do not verify under the key, and
    subdirectories that are symlinks, another user's or writable by others are left
    alone.

    Parameters
    ----------
    directory : Path, optional
        The cache directory; by default the one in force.

    Returns
    -------
    int
        How many entries were removed.
    """
    return clear_report(directory)["removed"]


def prune(directory: Optional[Path] = None, max_size: Optional[int] = None,
          max_age_days: Optional[float] = None, keep: Optional[str] = None) -> dict:
    """Evict entries: those unused for more than ``max_age_days``, then least recently used
    first until the total is at most ``max_size`` bytes (defaults: 30 days, 500 MB).

    Last use is the later of the entry's atime (set on every hit) and mtime. Only authentic
    entries are removed, and symgrad-named entries that do not verify once older than
    ``max_age_days`` (they can never load again).

    Parameters
    ----------
    directory : Path, optional
        The cache directory; by default the one in force.
    max_size : int, optional
        Bytes to keep at most (default 500 MB).
    max_age_days : float, optional
        Days of disuse before an entry is evicted (default 30).
    keep : str, optional
        A key never evicted (the one just used).

    Returns
    -------
    dict
        ``{"removed", "freed", "kept", "size"}``: entries removed, bytes freed, entries
        kept and their size.
    """
    root = _open_root(directory, create=False)
    if root is None:
        return {"removed": 0, "freed": 0, "kept": 0, "size": 0}
    with root:
        return _prune(root, max_size, max_age_days, keep)


def _prune(root, max_size, max_age_days, keep) -> dict:
    max_size = DEFAULT_MAX_SIZE if max_size is None else int(max_size)
    max_age = (DEFAULT_MAX_AGE_DAYS if max_age_days is None else float(max_age_days)) * 86400
    result = {"removed": 0, "freed": 0, "kept": 0, "size": 0}
    now = time.time()
    secret, _ = _key_state(root)
    recs = [r for r in _scan(root)["files"] if r["kind"] == "entry"]
    for r in recs:
        r["used"] = max(r["stat"].st_atime, r["stat"].st_mtime)
    recs.sort(key=lambda r: r["used"])  # least recently used first
    total = sum(r["stat"].st_size for r in recs)
    emptied = set()
    for r in recs:
        if r["key"] == keep:
            continue
        old = now - r["used"] > max_age
        if not old and total <= max_size:
            continue
        authentic = _read_verified(root, r, secret) is not None
        if not authentic and not (old and _looks_like_entry(root, r)):
            continue  # not provably ours, or not dead yet: leave it
        if _remove(root, r):
            result["removed"] += 1
            result["freed"] += r["stat"].st_size
            total -= r["stat"].st_size
            emptied.add(r["sub"])
    _rmdir_emptied(root, emptied)
    result["size"] = total
    result["kept"] = len(recs) - result["removed"]
    return result


def _looks_like_entry(root, rec: dict) -> bool:
    """A symgrad header (of any version) at the start of an entry-named file of ours."""
    data = _read_record(root, rec)
    return data is not None and data.startswith(HEADER.encode("ascii"))


_LAST_AUTO_PRUNE: dict = {}


def _auto_prune(root, keep: str) -> None:
    """Prune with the defaults at most once a day per process and per root (a stamp file in
    the root records the last run across processes)."""
    now = time.time()
    ident = os.fstat(root.fd)
    ident = (ident.st_dev, ident.st_ino)
    if now - _LAST_AUTO_PRUNE.get(ident, 0.0) < AUTO_PRUNE_EVERY:
        return
    _LAST_AUTO_PRUNE[ident] = now
    try:
        st = os.stat(_PRUNE_STAMP, dir_fd=root.fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and now - st.st_mtime < AUTO_PRUNE_EVERY:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        fd = os.open(_PRUNE_STAMP, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                     0o600, dir_fd=root.fd)
        try:
            os.utime(fd)
        finally:
            os.close(fd)
        _prune(root, None, None, keep)
    except (OSError, CacheError) as err:
        _debug("automatic prune of %s skipped: %s", root.path, err)
