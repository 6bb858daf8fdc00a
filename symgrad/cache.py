"""Cache/load stage: content-addressed generated modules on disk, and an in-process memo.

Promises:

* The key hashes a canonical serialization of the outputs (shapes and dtypes included),
  the input spec, the options, the template text and the symgrad, SymPy, NumPy and
  Python versions. Nothing process-dependent enters it.
* Location: ``SYMGRAD_CACHE_DIR``, else the user cache directory; created private to the
  user (0700). A directory that others can write to is refused (:class:`CacheError`).
* Entries are written atomically (temp file + ``os.replace``), so concurrent compiles of
  the same key are safe and a killed writer leaves no half-written entry.
* Every entry's first line records a SHA-256 of the rest and its key. A truncated, empty,
  tampered, garbage or swapped (another key's) entry is detected before anything runs,
  rebuilt with a warning, never imported.
* Before a module runs, its AST passes :func:`symgrad.safety.check_module_source`.
* An unwritable cache falls back to memory with one warning.
* ``SYMGRAD_CACHE_DEBUG=1`` logs why each lookup hit or missed, with the key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import stat
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import sympy

from ._version import __version__
from .safety import check_module_source

__all__ = ["CacheError", "cache_dir", "make_key", "serialize", "ModuleCache", "MODULES",
           "version_fingerprint"]

log = logging.getLogger("symgrad.cache")
HEADER = "# symgrad-entry "


class CacheError(RuntimeError):
    """The cache directory cannot be used safely."""


class CacheWarning(UserWarning):
    """The cache misbehaved (corrupt entry rebuilt, unwritable directory, ...)."""


def _debug(msg: str, *args) -> None:
    if os.environ.get("SYMGRAD_CACHE_DEBUG"):
        print("symgrad cache: " + (msg % args), file=sys.stderr)
    log.debug(msg, *args)


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


def _package_digest() -> str:
    """A hash of symgrad's own source: a changed compiler never reuses an old module."""
    global _PACKAGE_DIGEST
    if _PACKAGE_DIGEST is None:
        h = hashlib.sha256()
        for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
        _PACKAGE_DIGEST = h.hexdigest()[:16]
    return _PACKAGE_DIGEST


_PACKAGE_DIGEST = None


def version_fingerprint() -> str:
    return (f"symgrad={__version__}+{_package_digest()};sympy={sympy.__version__};numpy={np.__version__};"
            f"python={platform.python_version()};impl={platform.python_implementation()}")


def serialize(expr, memo: dict, out: list) -> int:
    """Append a canonical, linear serialization of ``expr``'s DAG to ``out``; return the index
    of its root. Iterative (no recursion limit); shared subtrees are written once."""
    stack = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in memo:
            continue
        if not node.args:
            memo[node] = len(out)
            out.append(sympy.srepr(node))
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((a, False) for a in reversed(node.args) if a not in memo)
            continue
        memo[node] = len(out)
        out.append(f"{type(node).__name__}({','.join(str(memo[a]) for a in node.args)})")
    return memo[expr]


def make_key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


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


def _prepare(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if os.name == "posix":
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CacheError(
                f"symgrad cache directory {directory} is writable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}); another user could plant code that "
                f"symgrad would run. Use a private directory (chmod 700) or set "
                f"SYMGRAD_CACHE_DIR.")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise CacheError(f"symgrad cache directory {directory} belongs to another user")


# ---------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------


def _entry_text(key: str, source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return f"{HEADER}sha256={digest} key={key}\n{source}"


def _verify(key: str, text: str) -> Optional[str]:
    """The source inside a stored entry, or None with the reason logged."""
    first, sep, source = text.partition("\n")
    if not first.startswith(HEADER) or not sep:
        return None
    fields = dict(f.split("=", 1) for f in first[len(HEADER):].split() if "=" in f)
    if fields.get("key") != key:
        return None
    if hashlib.sha256(source.encode("utf-8")).hexdigest() != fields.get("sha256"):
        return None
    return source


class LoadedModule:
    """A generated module, executed: its namespace, source and path."""

    def __init__(self, key: str, source: str, path: Optional[Path], namespace: dict):
        self.key, self.source, self.path, self.namespace = key, source, path, namespace


def execute(key: str, text: str, path: Optional[Path]) -> LoadedModule:
    """Check a module's AST against the allowlist, then run it in a fresh namespace."""
    check_module_source(text)
    filename = str(path) if path is not None else f"<symgrad {key[:12]}>"
    code = compile(text, filename, "exec")
    namespace = {"__name__": f"symgrad_generated_{key[:16]}", "__file__": filename}
    exec(code, namespace)  # noqa: S102 - our own generated, allowlisted code
    return LoadedModule(key, text, path, namespace)


class ModuleCache:
    """Disk cache + in-process memo of generated modules."""

    def __init__(self):
        self.memo: dict = {}
        self._lock = threading.Lock()
        self._warned_readonly = False

    def directory(self) -> Optional[Path]:
        d = cache_dir()
        _prepare(d)
        return d

    def path_for(self, key: str) -> Path:
        return cache_dir() / key[:2] / f"{key}.py"

    def lookup(self, key: str) -> Optional[LoadedModule]:
        hit = self.memo.get(key)
        if hit is not None:
            _debug("memo hit %s", key)
            return hit
        try:
            d = self.directory()
        except CacheError:
            raise
        except OSError as err:
            _debug("miss %s (cache directory unusable: %s)", key, err)
            return None
        path = d / key[:2] / f"{key}.py"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            _debug("miss %s (no entry)", key)
            return None
        except (OSError, UnicodeDecodeError) as err:
            self._corrupt(path, key, f"unreadable ({err})")
            return None
        if _verify(key, text) is None:
            self._corrupt(path, key, "checksum or key mismatch (truncated, tampered or "
                                     "another key's entry)")
            return None
        try:
            mod = execute(key, text, path)
        except Exception as err:  # a verified entry that still fails: rebuild it
            self._corrupt(path, key, f"failed to load ({type(err).__name__}: {err})")
            return None
        _debug("hit %s (%s)", key, path)
        self.memo[key] = mod
        return mod

    def _corrupt(self, path: Path, key: str, why: str) -> None:
        _debug("miss %s (corrupt entry: %s)", key, why)
        warnings.warn(f"symgrad: cache entry {path} is corrupt ({why}); rebuilding it",
                      CacheWarning, stacklevel=4)
        try:
            path.unlink()
        except OSError:
            pass

    def store(self, key: str, source: str) -> LoadedModule:
        text = _entry_text(key, source)
        path = None
        try:
            d = self.directory()
            sub = d / key[:2]
            sub.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=sub)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, sub / f"{key}.py")
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            path = sub / f"{key}.py"
            _debug("stored %s (%s)", key, path)
        except CacheError:
            raise
        except OSError as err:
            if not self._warned_readonly:
                warnings.warn(f"symgrad: cannot write the cache at {cache_dir()} ({err}); "
                              f"keeping compiled modules in memory only", CacheWarning,
                              stacklevel=3)
                self._warned_readonly = True
        mod = execute(key, text, path)
        self.memo[key] = mod
        return mod


#: the process-wide cache
MODULES = ModuleCache()
