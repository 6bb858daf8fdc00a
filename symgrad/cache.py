"""Cache/load stage: content-addressed generated modules on disk, and an in-process memo.

Promises:

* The key hashes a canonical serialization of the outputs (shapes and dtypes included),
  the input spec, the options, the template text and the symgrad, SymPy, NumPy and
  Python versions. Nothing process-dependent enters it.
* Location: ``SYMGRAD_CACHE_DIR``, else the user cache directory; created private to the
  user (0700). A directory that others can write to is refused (:class:`CacheError`).
* Entries are written atomically (temp file, fsync, ``os.replace``), so concurrent compiles
  of the same key are safe and a killed writer leaves no half-written entry (at most a
  ``.*.tmp`` file, which is never read and is removed by ``clear`` or once stale).
* Every entry's first line records a SHA-256 of the rest (the exact bytes) and its key. A
  truncated, empty, tampered, garbage or swapped (another key's) entry is detected before
  anything runs, rebuilt with a :class:`CacheWarning`, never imported.
* Before a module runs (fresh or from disk), its AST passes
  :func:`symgrad.safety.check_module_source`; a fresh module is checked and compiled before
  it is written, so a module that would be refused never reaches the disk.
* An unwritable cache (read-only, not a directory, ...) falls back to memory with one
  :class:`CacheWarning` per process; compiling keeps working.
* ``SYMGRAD_CACHE_DEBUG=1`` prints (to stderr) why each lookup hit or missed, with the key;
  on a miss it names the parts of the key that differ from the closest cached entry
  (versions, templates, options, expression, ...).
* :func:`info` and :func:`clear` back ``python -m symgrad cache info|clear``.

Test hook: ``SYMGRAD_CACHE_TEST_WRITE_DELAY=<seconds>`` slows every write down (the entry is
written in pieces with pauses, then renamed after one more pause), so that tests can kill a
writer in the middle of a write.
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
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import sympy

from ._version import __version__
from .safety import check_module_source

__all__ = ["CacheError", "CacheWarning", "cache_dir", "make_key", "serialize", "ModuleCache",
           "MODULES", "version_fingerprint", "entries", "info", "clear"]

log = logging.getLogger("symgrad.cache")
HEADER = "# symgrad-entry "
#: a killed writer's temp file older than this (seconds) is removed by the next write
STALE_TEMP_SECONDS = 600.0


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
        for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
        _PACKAGE_DIGEST = h.hexdigest()[:16]
    return _PACKAGE_DIGEST


_PACKAGE_DIGEST = None


def version_fingerprint() -> str:
    return (f"symgrad={__version__}+{_package_digest()};sympy={sympy.__version__};"
            f"numpy={np.__version__};python={platform.python_version()};"
            f"impl={platform.python_implementation()}")


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


#: per key made in this process: (digest, preview) of each part, for the debug explanation
_KEY_PARTS: dict = {}
_KEY_PARTS_LIMIT = 512


def _part_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def make_key(*parts: str) -> str:
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
        from .codegen import template_text
        if text == template_text():
            return "templates"
    except Exception:  # noqa: BLE001 - a label is best effort
        pass
    if text.startswith("[('check_finite'") or text.startswith("{'"):
        return "options"
    return f"part {index}"


def _explain_miss(key: str, directory: Path) -> str:
    """Which key parts differ from the most similar entry on disk (debug only)."""
    mine = _KEY_PARTS.get(key)
    if not mine:
        return "no entry with this key"
    best, best_same = None, -1
    for path in directory.glob("*/*.py"):
        fields = _header_fields(path)
        theirs = fields.get("parts", "").split(",") if fields.get("parts") else []
        if len(theirs) != len(mine) or theirs[0] != mine[0][0]:
            continue
        same = sum(a == b for a, (b, _) in zip(theirs, mine))
        if same > best_same:
            best, best_same = (fields.get("key", path.stem), theirs), same
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


def _prepare(directory: Path) -> None:
    """Create ``directory`` private to the user, or check that an existing one is safe.

    Raises :class:`CacheError` for a directory others can write to (or that another user
    owns), ``OSError`` when it cannot be created or is not a directory."""
    if not directory.is_dir():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix":
            os.chmod(directory, 0o700)  # whatever the umask
    st = directory.stat()
    if os.name == "posix":
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CacheError(
                f"symgrad cache directory {directory} is writable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}); another user could plant code that "
                f"symgrad would run. Use a private directory (chmod 700 {directory}) or set "
                f"SYMGRAD_CACHE_DIR to one.")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise CacheError(f"symgrad cache directory {directory} belongs to another user "
                             f"(uid {st.st_uid}); set SYMGRAD_CACHE_DIR to a directory of yours")


# ---------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------


def _entry_text(key: str, source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    parts = ",".join(d for d, _ in _KEY_PARTS.get(key, ()))
    extra = f" parts={parts}" if parts else ""
    return f"{HEADER}sha256={digest} key={key}{extra}\n{source}"


def _parse_header(first: str) -> dict:
    return dict(f.split("=", 1) for f in first[len(HEADER):].split() if "=" in f)


def _header_fields(path: Path) -> dict:
    """The header fields of an entry file ({} when it has none)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(4096)
        text = first.decode("ascii")
    except (OSError, UnicodeDecodeError):
        return {}
    return _parse_header(text) if text.startswith(HEADER) else {}


def check_entry(key: str, data: bytes) -> tuple:
    """``(text, None)`` for a sound entry of ``key``, else ``(None, reason)``.

    The checksum covers the exact bytes after the header line, so nothing (newline
    translation, a truncation, an edit) can change the code without being noticed."""
    if not data:
        return None, "empty file"
    nl = data.find(b"\n")
    if nl < 0 or not data.startswith(HEADER.encode()):
        return None, "no symgrad header (garbage, or truncated inside the header)"
    try:
        fields = _parse_header(data[:nl].decode("ascii"))
    except UnicodeDecodeError:
        return None, "garbled header"
    if fields.get("key") != key:
        return None, (f"the entry belongs to another key ({fields.get('key', '?')[:16]}...): "
                      f"swapped or copied over")
    body = data[nl + 1:]
    if hashlib.sha256(body).hexdigest() != fields.get("sha256"):
        return None, "checksum mismatch (truncated or tampered)"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "not UTF-8"


def _verify(key: str, text: str) -> Optional[str]:
    """The source inside a stored entry (given as text), or None."""
    good, _ = check_entry(key, text.encode("utf-8", "surrogatepass"))
    return None if good is None else good.partition("\n")[2]


class LoadedModule:
    """A generated module, executed: its namespace, source and path."""

    def __init__(self, key: str, source: str, path: Optional[Path], namespace: dict):
        self.key, self.source, self.path, self.namespace = key, source, path, namespace


def _filename(key: str, path: Optional[Path]) -> str:
    return str(path) if path is not None else f"<symgrad {key[:12]}>"


def _checked_code(key: str, text: str, filename: str):
    """Allowlist check, then byte-compile (nothing runs)."""
    check_module_source(text)
    return compile(text, filename, "exec")


def _run(key: str, text: str, path: Optional[Path], code) -> LoadedModule:
    filename = _filename(key, path)
    namespace = {"__name__": f"symgrad_generated_{key[:16]}", "__file__": filename}
    exec(code, namespace)  # noqa: S102 - our own generated, allowlisted code
    return LoadedModule(key, text, path, namespace)


def execute(key: str, text: str, path: Optional[Path]) -> LoadedModule:
    """Check a module's AST against the allowlist, then run it in a fresh namespace."""
    return _run(key, text, path, _checked_code(key, text, _filename(key, path)))


def _write_delay() -> float:
    try:
        return max(0.0, float(os.environ.get("SYMGRAD_CACHE_TEST_WRITE_DELAY", "0") or 0))
    except ValueError:
        return 0.0


def _write_atomically(final: Path, data: bytes, key: str) -> None:
    """Write ``data`` to ``final`` through a private temp file, fsync, ``os.replace``."""
    sub = final.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=sub)
    try:
        with os.fdopen(fd, "wb") as f:
            delay = _write_delay()
            if delay:  # test hook: a slow writer, to be killed mid-write
                pieces = 16
                step = max(1, -(-len(data) // pieces))
                for i in range(0, len(data), step):
                    f.write(data[i:i + step])
                    f.flush()
                    time.sleep(delay / pieces)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if delay:
            time.sleep(delay / 16)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _remove_stale_temps(sub, key)


def _remove_stale_temps(sub: Path, key: str) -> None:
    """Temp files of killed writers of this key, old enough that nobody is writing them."""
    now = time.time()
    for p in sub.glob(f".{key[:16]}.*.tmp"):
        try:
            if now - p.stat().st_mtime > STALE_TEMP_SECONDS:
                p.unlink()
        except OSError:
            pass


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
            _debug("hit %s (already loaded in this process)", key)
            return hit
        try:
            d = self.directory()
        except CacheError:
            raise
        except OSError as err:
            _debug("miss %s (cache directory %s unusable: %s; in memory only)", key,
                   cache_dir(), err)
            return None
        path = d / key[:2] / f"{key}.py"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if _debugging():
                _debug("miss %s (%s)", key, _explain_miss(key, d))
            return None
        except OSError as err:
            self._corrupt(path, None, key, f"unreadable ({err})")
            return None
        text, why = check_entry(key, data)
        if text is None:
            self._corrupt(path, data, key, why)
            return None
        try:
            code = _checked_code(key, text, str(path))
            mod = _run(key, text, path, code)
        except Exception as err:  # a verified entry that still fails: rebuild it
            self._corrupt(path, data, key, f"refused or failed to load "
                                           f"({type(err).__name__}: {err})")
            return None
        _debug("hit %s (%s)", key, path)
        self.memo[key] = mod
        return mod

    def _corrupt(self, path: Path, data: Optional[bytes], key: str, why: str) -> None:
        _debug("miss %s (corrupt entry: %s)", key, why)
        warnings.warn(f"symgrad: cache entry {path} is corrupt ({why}); rebuilding it",
                      CacheWarning, stacklevel=4)
        try:
            # another process may have rebuilt it meanwhile: remove only what we read
            if data is None or path.read_bytes() == data:
                path.unlink()
        except OSError:
            pass

    def store(self, key: str, source: str) -> LoadedModule:
        text = _entry_text(key, source)
        data = text.encode("utf-8")
        path, problem = None, None
        try:
            path = self.directory() / key[:2] / f"{key}.py"
        except CacheError:
            raise
        except OSError as err:
            problem = err
        # checked and compiled before it is written: a refused module never reaches the disk
        code = _checked_code(key, text, _filename(key, path))
        if path is not None:
            try:
                path.parent.mkdir(mode=0o700, exist_ok=True)
                _write_atomically(path, data, key)
                _debug("stored %s (%s)", key, path)
            except OSError as err:
                path, problem = None, err
        if problem is not None:
            self._fallback(problem)
        mod = _run(key, text, path, code)
        self.memo[key] = mod
        return mod

    def _fallback(self, err: OSError) -> None:
        _debug("cannot write the cache at %s (%s); in memory only", cache_dir(), err)
        if not self._warned_readonly:
            self._warned_readonly = True
            warnings.warn(f"symgrad: cannot write the cache at {cache_dir()} ({err}); keeping "
                          f"compiled modules in memory only (set SYMGRAD_CACHE_DIR to a "
                          f"writable directory)", CacheWarning, stacklevel=4)


#: the process-wide cache
MODULES = ModuleCache()


# ---------------------------------------------------------------------------------------
# Inspection and cleanup (python -m symgrad cache info|clear)
# ---------------------------------------------------------------------------------------


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def entries(directory: Optional[Path] = None) -> list:
    """Every entry file: dicts with key, path, size (bytes), mtime, age (s) and valid."""
    d = Path(directory) if directory is not None else cache_dir()
    out = []
    if not d.is_dir():
        return out
    now = time.time()
    for sub in sorted(d.iterdir()):
        if not (sub.is_dir() and len(sub.name) == 2):
            continue
        for p in sorted(sub.glob("*.py")):
            if not _is_key(p.stem):
                continue
            try:
                st = p.stat()
                data = p.read_bytes()
            except OSError:
                continue
            out.append({"key": p.stem, "path": p, "size": st.st_size, "mtime": st.st_mtime,
                        "age": max(0.0, now - st.st_mtime),
                        "valid": check_entry(p.stem, data)[0] is not None})
    return out


def _temp_files(d: Path) -> list:
    return [p for p in d.glob("*/.*.tmp") if p.is_file()] if d.is_dir() else []


def info(directory: Optional[Path] = None) -> dict:
    """Directory, entries, their total size and leftover temp files of killed writers."""
    d = Path(directory) if directory is not None else cache_dir()
    es = entries(d)
    return {"directory": d, "exists": d.is_dir(), "entries": es,
            "total_size": sum(e["size"] for e in es), "temp_files": len(_temp_files(d))}


def clear(directory: Optional[Path] = None) -> int:
    """Remove every entry (and leftover temp file); return how many entries were removed.

    Only symgrad's own files (``xx/<64 hex>.py`` and ``xx/.*.tmp``) are touched."""
    d = Path(directory) if directory is not None else cache_dir()
    if not d.is_dir():
        return 0
    removed = 0
    for e in entries(d):
        try:
            e["path"].unlink()
            removed += 1
        except FileNotFoundError:
            pass
    for p in _temp_files(d):
        try:
            p.unlink()
        except OSError:
            pass
    for sub in d.iterdir():
        if sub.is_dir() and len(sub.name) == 2:
            try:
                sub.rmdir()  # only when empty
            except OSError:
                pass
    MODULES.memo.clear()
    return removed
