"""The cache's trust boundary on disk: race-free opens, the per-user key, entry tags.

Promises:

* Every directory and file under the cache root is opened relative to an open directory
  descriptor with ``O_NOFOLLOW`` and checked on the open descriptor (``os.fstat``): a
  directory must be owned by the current user and not writable by group or others; a file
  must also be a regular file. Reads come from that same descriptor. Nothing is checked by
  name and then used by name, so swapping a path for a symlink between the check and the use
  gains nothing.
* The root may be a symlink: it is resolved once, when it is opened; the descriptor is
  checked and every later open is relative to it.
* The key is 32 random bytes in ``<root>/.symgrad-hmac-key``, mode 0600. It is created
  atomically (a private ``O_CREAT|O_EXCL`` temp file, fsync, then ``link(2)``, which never
  replaces), so processes racing to create it end up sharing one key. It is read through the
  root's descriptor with ``O_NOFOLLOW`` and checked with ``fstat`` (regular file, owner, no
  group/other bits, exact size). Its bytes are never printed or logged.
* A key that fails a check is never used. :func:`load_key` with ``create=False`` then says
  "no key" (nothing on disk is trusted); with ``create=True`` it replaces the key (one
  :class:`~symgrad.runtime.cache.CacheWarning` naming the file) or, if it cannot, says "no key".
* :func:`tag` is an HMAC-SHA256 under the key over a domain label, the cache key and the
  exact bytes it authenticates; :func:`tag_matches` compares with ``hmac.compare_digest``.

Test hook: ``SYMGRAD_CACHE_TEST_KILL_AT=<n>`` makes :func:`write_atomically` SIGKILL its own
process after writing the first ``n`` bytes of the temp file (all of them when ``n`` is
larger), before the rename: a writer killed at an exact byte, without timing.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
import signal
import stat
from pathlib import Path
from typing import Callable, Optional

__all__ = ["UntrustedPath", "Root", "open_root", "open_subdir", "read_file", "write_atomically",
           "load_key", "tag", "tag_matches", "KEY_NAME", "SUPPORTED"]

KEY_NAME = ".symgrad-hmac-key"
KEY_BYTES = 32
#: entries larger than this are not read (a planted huge file must not exhaust memory)
MAX_READ = 1 << 31

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

#: the race-free checks need openat/O_NOFOLLOW/fstat; elsewhere the cache stays in memory
SUPPORTED = (os.name == "posix" and bool(_O_NOFOLLOW) and bool(_O_DIRECTORY)
             and os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd
             and os.link in os.supports_dir_fd and os.unlink in os.supports_dir_fd
             and os.rename in os.supports_dir_fd and os.mkdir in os.supports_dir_fd)


class UntrustedPath(Exception):
    """A path under the cache root failed a check (symlink, owner, mode, type)."""


def _uid() -> int:
    return os.geteuid()


def check_stat(st: os.stat_result, what: str, directory: bool) -> None:
    """Check that ``st`` is a directory (or regular file) of ours that only we can write.

    Parameters
    ----------
    st : os.stat_result
        From ``fstat`` on an open descriptor (never from a path that could change).
    what : str
        The path as the error message names it.
    directory : bool
        Expect a directory (else a regular file).

    Raises
    ------
    UntrustedPath
        When it is of the wrong type, owned by another user, or writable by group or
        others.
    """
    if directory and not stat.S_ISDIR(st.st_mode):
        raise UntrustedPath(f"{what} is not a directory")
    if not directory and not stat.S_ISREG(st.st_mode):
        raise UntrustedPath(f"{what} is not a regular file")
    if st.st_uid != _uid():
        raise UntrustedPath(f"{what} belongs to another user (uid {st.st_uid})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedPath(f"{what} is writable by group or others "
                            f"(mode {stat.S_IMODE(st.st_mode):o})")


def _open_nofollow(name: str, dir_fd: int, flags: int, what: str) -> int:
    try:
        return os.open(name, flags | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK):
            raise UntrustedPath(f"{what} is a symbolic link") from None
        if err.errno == errno.ENOTDIR and flags & _O_DIRECTORY:
            # Linux reports a symlink under O_DIRECTORY|O_NOFOLLOW as ENOTDIR: say which
            try:
                link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                link = False
            raise UntrustedPath(f"{what} is " + ("a symbolic link" if link else
                                                 "not a directory")) from None
        raise


# ---------------------------------------------------------------------------------------
# The root and its subdirectories
# ---------------------------------------------------------------------------------------


class Root:
    """An open, checked cache root: use :attr:`fd`; close it (or use ``with``).

    Parameters
    ----------
    path : Path
        The root's path, for messages.
    fd : int
        An open descriptor of the checked directory (owned by the object).
    """

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def close(self) -> None:
        """Close the descriptor (once; later calls do nothing)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Root":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_root(path: Path, create: bool, refuse: Callable[[str], Exception]) -> Optional[Root]:
    """Open the cache root (creating it 0700 when asked), check it on its descriptor.

    Parameters
    ----------
    path : Path
        The root (the one place a symlink is followed).
    create : bool
        Create it (and its parents) when missing.
    refuse : callable
        Makes the exception to raise, from the reason, when the root is unsafe.

    Returns
    -------
    Root or None
        None when it does not exist and ``create`` is false.

    Raises
    ------
    Exception
        ``refuse(reason)`` when it is writable by others or owned by another user.
    OSError
        When it cannot be created or opened.
    """
    created = False
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
            created = True
        except FileExistsError:
            pass
    try:
        # the one place a symlink is followed: the root is resolved here, once
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise
        return None
    try:
        if created:
            os.fchmod(fd, 0o700)  # whatever the umask
        st = os.fstat(fd)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise refuse(
                f"symgrad cache directory {path} is writable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}); another user could plant code that "
                f"symgrad would run. Use a private directory (chmod 700 {path}) or set "
                f"SYMGRAD_CACHE_DIR to one.")
        if st.st_uid != _uid():
            raise refuse(f"symgrad cache directory {path} belongs to another user "
                         f"(uid {st.st_uid}); set SYMGRAD_CACHE_DIR to a directory of yours")
    except BaseException:
        os.close(fd)
        raise
    return Root(path, fd)


def open_subdir(root: Root, name: str, create: bool) -> int:
    """A checked descriptor of ``root/name``.

    Parameters
    ----------
    root : Root
    name : str
        The subdirectory's name (opened without following a link).
    create : bool
        Create it 0700 when missing.

    Returns
    -------
    int
        An open descriptor; the caller closes it.

    Raises
    ------
    FileNotFoundError
        When it is missing (and not created).
    UntrustedPath
        When it is a symlink, not a directory, another user's or writable by others.
    OSError
        When it cannot be opened for another reason.
    """
    what = f"cache subdirectory {root.path / name}"
    made = False
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=root.fd)
            made = True
        except FileExistsError:
            pass
    fd = _open_nofollow(name, root.fd, os.O_RDONLY | _O_DIRECTORY, what)
    try:
        if made:
            os.fchmod(fd, 0o700)  # whatever the umask
        check_stat(os.fstat(fd), what, directory=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def read_file(dir_fd: int, name: str, what: str) -> tuple:
    """Read a file of ours: opened without following links, checked with ``fstat`` on the
    descriptor, then read from that same descriptor.

    Parameters
    ----------
    dir_fd : int
        The checked directory holding it.
    name : str
    what : str
        The path as error messages name it.

    Returns
    -------
    tuple
        ``(data, stat)``: the bytes and the ``fstat`` result they were checked with.

    Raises
    ------
    UntrustedPath
        When it is a link, not a regular file, another user's, writable by others or
        implausibly large (over ``MAX_READ``).
    OSError
        When it is missing or cannot be read.
    """
    # O_NONBLOCK: a FIFO planted under an entry's name must not hang the open
    fd = _open_nofollow(name, dir_fd, os.O_RDONLY | _O_NONBLOCK, what)
    try:
        st = os.fstat(fd)
        check_stat(st, what, directory=False)
        if st.st_size > MAX_READ:
            raise UntrustedPath(f"{what} is implausibly large ({st.st_size} bytes)")
        chunks, left = [], st.st_size + 1  # +1: notice a file that grew meanwhile
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def _kill_at() -> Optional[int]:
    v = os.environ.get("SYMGRAD_CACHE_TEST_KILL_AT", "")
    try:
        return int(v) if v else None
    except ValueError:
        return None


def write_atomically(dir_fd: int, name: str, data: bytes, tmp_prefix: str) -> None:
    """Write ``data`` as ``name`` in ``dir_fd``, atomically.

    A private temp file (``O_EXCL``, ``O_NOFOLLOW``, 0600), fsync, then ``rename``: readers
    see the old file or the new one, never a part. A killed writer leaves at most the temp
    file; any other failure removes it.

    Parameters
    ----------
    dir_fd : int
        The checked directory.
    name : str
    data : bytes
    tmp_prefix : str
        The temp file's name before its random part (lets housekeeping recognise it).

    Raises
    ------
    OSError
        When the write fails (the temp file is removed).
    """
    tmp = f"{tmp_prefix}{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600,
                 dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, 0o600)
            kill_at = _kill_at()
            if kill_at is not None:  # test hook: die at an exact byte
                view = memoryview(data)[:max(0, kill_at)]
                while view:
                    view = view[os.write(fd, view):]
                os.kill(os.getpid(), signal.SIGKILL)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------------------
# The key
# ---------------------------------------------------------------------------------------


def _create_key(root: Root) -> bytes:
    """A new key, linked into place only if none exists (FileExistsError otherwise)."""
    secret = secrets.token_bytes(KEY_BYTES)
    tmp = f"{KEY_NAME}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600,
                 dir_fd=root.fd)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secret)
            os.fsync(fd)
        finally:
            os.close(fd)
        # link(2) never replaces: of two racing creators exactly one wins, the other reads it
        os.link(tmp, KEY_NAME, src_dir_fd=root.fd, dst_dir_fd=root.fd, follow_symlinks=False)
    finally:
        try:
            os.unlink(tmp, dir_fd=root.fd)
        except OSError:
            pass
    try:
        os.fsync(root.fd)
    except OSError:
        pass
    return secret


def _read_key(root: Root) -> bytes:
    """The key's bytes, or FileNotFoundError / UntrustedPath / OSError."""
    what = f"key file {root.path / KEY_NAME}"
    try:
        fd = _open_nofollow(KEY_NAME, root.fd, os.O_RDONLY | _O_NONBLOCK, what)
    except PermissionError:
        raise UntrustedPath(f"{what} cannot be read (permission denied: another user's, or "
                            f"mode 000)") from None
    try:
        st = os.fstat(fd)
        check_stat(st, what, directory=False)
        if st.st_mode & 0o077:
            raise UntrustedPath(f"{what} is readable by group or others "
                                f"(mode {stat.S_IMODE(st.st_mode):o}); it may be known")
        if st.st_size != KEY_BYTES:
            raise UntrustedPath(f"{what} has {st.st_size} bytes, not {KEY_BYTES}")
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise UntrustedPath(f"{what} changed while read")
    return data


def load_key(root: Root, create: bool, warn: Callable[[str], None]) -> Optional[bytes]:
    """The root's HMAC key.

    Parameters
    ----------
    root : Root
    create : bool
        Create a missing key, and replace an untrusted one (symlink, another owner,
        readable by others, wrong size, unreadable), with ``warn(message)``.
    warn : callable
        Called with a message when an untrusted key is replaced.

    Returns
    -------
    bytes or None
        None without ``create`` when there is no trusted key: nothing on disk is trusted
        then.

    Raises
    ------
    OSError
        With ``create``, when no key can be had (the caller keeps modules in memory).
    """
    problem = None
    for _ in range(3):
        try:
            return _read_key(root)
        except FileNotFoundError:
            if not create:
                return None
            try:
                return _create_key(root)
            except FileExistsError:
                continue  # another process won the race: read its key
            except OSError as err:
                raise OSError(f"cannot create the key file {root.path / KEY_NAME}: {err}")
        except (UntrustedPath, OSError) as err:
            if not create:
                return None
            problem = err
            try:
                os.unlink(KEY_NAME, dir_fd=root.fd)
            except FileNotFoundError:
                pass
            except OSError as unlink_err:
                raise OSError(f"{err}, and it cannot be replaced ({unlink_err.strerror}): "
                              f"nothing on disk is trusted") from None
            warn(f"symgrad: {err}; it is not used and is replaced by a new key (entries "
                 f"written under the old one will be rebuilt)")
    raise OSError(f"no stable key file {root.path / KEY_NAME} ({problem})")


def tag(secret: bytes, key: str, payload: bytes) -> bytes:
    """The HMAC-SHA256 of an entry, bound to its cache key.

    Parameters
    ----------
    secret : bytes
        The root's key (see :func:`load_key`).
    key : str
        The entry's cache key.
    payload : bytes
        Everything in the entry after the tag.

    Returns
    -------
    bytes
        The tag in hex (ASCII).
    """
    mac = hmac.new(secret, b"symgrad-entry-v2\x00", hashlib.sha256)
    mac.update(key.encode("ascii", "replace"))
    mac.update(b"\x00")
    mac.update(payload)
    return mac.hexdigest().encode("ascii")


def tag_matches(secret: bytes, key: str, payload: bytes, given: bytes) -> bool:
    """Whether ``given`` is the entry's tag, compared in constant time.

    Parameters
    ----------
    secret, key, payload
        As for :func:`tag`.
    given : bytes
        The tag read from the entry.

    Returns
    -------
    bool
    """
    return hmac.compare_digest(tag(secret, key, payload), given)
