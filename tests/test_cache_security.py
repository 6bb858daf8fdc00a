"""The cache is not a way in (issue 10): a planted entry never runs.

Each attack class of the issue, tried as an attacker would:

* planted subdirectories and entries of another user, a 0777 subdirectory, an entry owned
  by another user: run as an unprivileged user (a forked child that drops to ``nobody``,
  uid 65534, in a private directory chowned to it) against files root planted;
* a symlink swap of the root or of a subdirectory, between the check and the use;
* an entry whose math was edited, with a recomputed plain SHA-256 (the old format) or a tag
  copied from the genuine entry;
* attribute chains through numpy's submodules to ``os``, ``sys`` and ``builtins``, appended
  with a recomputed SHA-256 (stopped by the HMAC) and with a valid HMAC (stopped by the
  allowlist, the second wall);
* a fuzz test: every byte of a genuine entry mutated, plus insertions and truncations,
  with the allowlist switched off and a side-effect canary in the module: nothing but the
  genuine bytes ever runs;
* the key: created once by racing processes, never used when it is a symlink, readable by
  others, another user's or unreadable, never printed;
* arrays stored beside a module (``_DATA``): a hit in a new process, tampered bytes
  refused, object dtypes refused;
* housekeeping: ``clear`` and ``prune`` touch only symgrad's files; ``info`` names each
  entry's function.

Where a test needs another user and the process is not root, it is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.runtime import cache
from symgrad.runtime import trust
from symgrad.__main__ import main as cli_main
from symgrad.runtime.safety import UnsafeModuleError, check_module_source

from cache_model import W, X, correct, model, unused_subdir

POSIX = os.name == "posix"
IS_ROOT = POSIX and os.geteuid() == 0
NOBODY = 65534
REPO = Path(sg.__file__).resolve().parent.parent
#: every test gets a fresh private cache (conftest's ``cache_env``)
pytestmark = [pytest.mark.skipif(not trust.SUPPORTED,
                                 reason="no openat/O_NOFOLLOW: the disk cache is memory-only"),
              pytest.mark.usefixtures("cache_env")]
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to act as a second user "
                                                    "(plant files of another owner, setuid)")


def _source_of(f) -> str:
    """The module source inside an entry (after the tag line)."""
    return f.source.partition("\n")[2]


def _edited(source: str) -> str:
    """The same module with its math edited: the loss comes out 0."""
    assert "3.5" in source
    return source.replace("3.5", "0.0")


def _old_format(key: str, source: str) -> bytes:
    """An entry in the old format: a plain SHA-256 anyone can recompute."""
    body = source.encode()
    return (f"# symgrad-entry sha256={hashlib.sha256(body).hexdigest()} key={key}\n"
            .encode() + body)


def _forged_plain(key: str, source: str) -> bytes:
    """The new format, with the tag replaced by a plain SHA-256 of what follows it."""
    rest = cache._header_rest(key, source.encode(), []) + source.encode()
    return cache.MAGIC + hashlib.sha256(rest).hexdigest().encode() + rest


# ---------------------------------------------------------------------------------------
# Running as an unprivileged user
# ---------------------------------------------------------------------------------------


def _private_dir_for_nobody() -> Path:
    """A fresh 0700 directory owned by nobody, outside root's private temp dirs."""
    d = Path(tempfile.mkdtemp(prefix="symgrad-sec-"))
    os.chown(d, NOBODY, NOBODY)
    return d


def as_nobody(fn, *args):
    """Run ``fn(*args)`` in a forked child that dropped to uid/gid 65534; return its JSON
    result (or raise AssertionError with the child's traceback)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            assert os.geteuid() == NOBODY
            cache.MODULES.memo.clear()
            cache._WARNED.clear()
            cache.MODULES._warned_readonly = False
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = fn(*args)
            payload = {"ok": True, "result": result,
                       "warnings": [str(x.message) for x in caught
                                    if issubclass(x.category, cache.CacheWarning)]}
            code = 0
        except BaseException:  # noqa: BLE001 - reported to the parent
            payload = {"ok": False, "error": traceback.format_exc()}
        try:
            os.write(w, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks).decode() or '{"ok": false, "error": "no report"}')
    assert out["ok"], "child (uid 65534) failed:\n" + out.get("error", "")
    return out


def _victim_compile(cache_dir: str, cval: float) -> dict:
    """As the victim: compile model(cval) against ``cache_dir``; was the result right?"""
    os.environ["SYMGRAD_CACHE_DIR"] = cache_dir
    f = sg.compile(model(cval))
    return {"correct": bool(correct(f(X, W), cval)), "path": str(f.path) if f.path else None,
            "key": f.key}


@pytest.fixture
def nobody_cache():
    if not IS_ROOT:
        pytest.skip("needs root to drop to another user")
    base = _private_dir_for_nobody()
    sg.compile(model(-1.0))  # warm: templates and printers loaded before forking
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _key_of(cval: float):
    """The key and source of model(cval), computed in this (root) process's own cache."""
    f = sg.compile(model(cval))
    return f.key, _source_of(f)


@needs_root
def test_planted_subdirectory_of_another_user_never_runs(nobody_cache):
    cache_dir = nobody_cache / "cache"
    # the victim uses the cache once: the directory and the key exist
    first = as_nobody(_victim_compile, str(cache_dir), 1.0)["result"]
    assert first["correct"] and first["path"]
    secret = (cache_dir / trust.KEY_NAME).read_bytes()  # the strongest attacker: knows the key
    key, source = _key_of(2.0)
    assert key[:2] != first["key"][:2]
    planted_dir = cache_dir / key[:2]
    planted_dir.mkdir(mode=0o755)  # root's, as if made while the root was 0777
    (planted_dir / f"{key}.py").write_bytes(cache._build_entry(secret, key, _edited(source), []))
    out = as_nobody(_victim_compile, str(cache_dir), 2.0)
    assert out["result"]["correct"], "the planted module ran"
    assert out["result"]["path"] is None  # kept in memory: the foreign directory is not used
    assert any(str(planted_dir) in m and "another user" in m for m in out["warnings"])
    assert (planted_dir / f"{key}.py").exists()  # and nothing of another user was touched


@needs_root
def test_entry_owned_by_another_user_never_runs(nobody_cache):
    cache_dir = nobody_cache / "cache"
    as_nobody(_victim_compile, str(cache_dir), 2.0)
    key, source = _key_of(2.0)
    entry = cache_dir / key[:2] / f"{key}.py"
    secret = (cache_dir / trust.KEY_NAME).read_bytes()
    entry.unlink()
    entry.write_bytes(cache._build_entry(secret, key, _edited(source), []))  # root's file
    os.chmod(entry, 0o644)
    out = as_nobody(_victim_compile, str(cache_dir), 2.0)
    assert out["result"]["correct"], "the planted module ran"
    assert any(str(entry) in m and "another user" in m for m in out["warnings"])
    assert entry.stat().st_uid == NOBODY  # rebuilt by the victim: replaced, not edited


@needs_root
def test_0777_subdirectory_never_runs(nobody_cache):
    cache_dir = nobody_cache / "cache"
    as_nobody(_victim_compile, str(cache_dir), 2.0)
    key, source = _key_of(2.0)
    sub = cache_dir / key[:2]
    os.chmod(sub, 0o777)  # the victim's own subdirectory, opened up
    secret = (cache_dir / trust.KEY_NAME).read_bytes()
    entry = sub / f"{key}.py"
    entry.write_bytes(cache._build_entry(secret, key, _edited(source), []))
    os.chown(entry, NOBODY, NOBODY)  # even an entry of the victim's, with a valid tag
    out = as_nobody(_victim_compile, str(cache_dir), 2.0)
    assert out["result"]["correct"], "an entry in a 0777 subdirectory ran"
    assert any(str(sub) in m and "writable by group or others" in m for m in out["warnings"])


@needs_root
def test_edited_entry_with_recomputed_sha256_never_runs(nobody_cache):
    cache_dir = nobody_cache / "cache"
    as_nobody(_victim_compile, str(cache_dir), 2.0)
    key, source = _key_of(2.0)
    entry = cache_dir / key[:2] / f"{key}.py"
    for forged, why in ((_old_format(key, _edited(source)), "no symgrad HMAC header"),
                        (_forged_plain(key, _edited(source)), "bad HMAC tag")):
        entry.write_bytes(forged)
        os.chown(entry, NOBODY, NOBODY)
        out = as_nobody(_victim_compile, str(cache_dir), 2.0)
        assert out["result"]["correct"], "an edited entry with a recomputed hash ran"
        assert any(str(entry) in m and why in m for m in out["warnings"]), \
            out["warnings"]


def _swap_root_after_open(link: str, attacker: str, cache_for_env: str, cval: float) -> dict:
    """As the victim, with the attacker's swap of the root symlink right after the root is
    opened and checked (the window the old code had)."""
    real_open_root = trust.open_root

    def open_then_swap(path, create, refuse):
        root = real_open_root(path, create, refuse)
        tmp = link + ".new"
        os.symlink(attacker, tmp)
        os.replace(tmp, link)  # the swap, atomic
        return root

    trust.open_root = open_then_swap
    try:
        return _victim_compile(cache_for_env, cval)
    finally:
        trust.open_root = real_open_root


@needs_root
def test_symlinked_root_swapped_between_check_and_use(nobody_cache):
    real = nobody_cache / "real"
    link = nobody_cache / "link"
    out = as_nobody(_victim_compile, str(real), 2.0)  # a genuine entry in the real root
    assert out["result"]["correct"]
    key, source = _key_of(2.0)
    secret = (real / trust.KEY_NAME).read_bytes()
    # the attacker's directory: a copy of the key (the strongest attacker) and a planted,
    # validly tagged entry; owned by the victim, so only the descriptor tells them apart
    evil = nobody_cache / "evil"
    (evil / key[:2]).mkdir(parents=True)
    (evil / trust.KEY_NAME).write_bytes(secret)
    (evil / key[:2] / f"{key}.py").write_bytes(cache._build_entry(secret, key, _edited(source),
                                                              []))
    for p in [evil, evil / key[:2], evil / trust.KEY_NAME, evil / key[:2] / f"{key}.py"]:
        os.chown(p, NOBODY, NOBODY)
        os.chmod(p, 0o700 if p.is_dir() else 0o600)
    os.symlink(real, link)
    os.lchown(link, NOBODY, NOBODY)
    out = as_nobody(_swap_root_after_open, str(link), str(evil), str(link), 2.0)
    assert Path(os.readlink(link)) == evil  # the swap did happen
    assert out["result"]["correct"], "the swapped-in root's entry ran"
    # a symlinked root to another user's directory: refused outright
    os.chown(evil, 0, 0)
    os.chmod(evil, 0o755)
    with pytest.raises(AssertionError, match="belongs to another user"):
        as_nobody(_victim_compile, str(link), 2.0)


@needs_root
def test_subdirectory_replaced_by_a_symlink_never_runs(nobody_cache):
    cache_dir = nobody_cache / "cache"
    as_nobody(_victim_compile, str(cache_dir), 2.0)
    key, source = _key_of(2.0)
    secret = (cache_dir / trust.KEY_NAME).read_bytes()
    evil = nobody_cache / "evil"
    evil.mkdir()
    (evil / f"{key}.py").write_bytes(cache._build_entry(secret, key, _edited(source), []))
    for p in (evil, evil / f"{key}.py"):
        os.chown(p, NOBODY, NOBODY)
    sub = cache_dir / key[:2]
    shutil.rmtree(sub)
    os.symlink(evil, sub)
    os.lchown(sub, NOBODY, NOBODY)
    out = as_nobody(_victim_compile, str(cache_dir), 2.0)
    assert out["result"]["correct"], "an entry behind a symlinked subdirectory ran"
    assert any(str(sub) in m and "symbolic link" in m for m in out["warnings"])


def test_entry_replaced_by_a_symlink_or_a_fifo_never_runs(cache_env):
    f = sg.compile(model(2.0))
    key, source = f.key, _source_of(f)
    secret = (cache_env / trust.KEY_NAME).read_bytes()
    elsewhere = cache_env.parent / "elsewhere.py"
    elsewhere.write_bytes(cache._build_entry(secret, key, _edited(source), []))
    f.path.unlink()
    os.symlink(elsewhere, f.path)
    cache.MODULES.memo.clear()
    with pytest.warns(cache.CacheWarning, match="symbolic link"):
        assert correct(sg.compile(model(2.0))(X, W), 2.0)
    assert not f.path.is_symlink()  # replaced by a genuine entry
    f.path.unlink()
    os.mkfifo(f.path)  # an open without O_NONBLOCK would hang here
    cache.MODULES.memo.clear()
    with pytest.warns(cache.CacheWarning, match="not a regular file"):
        assert correct(sg.compile(model(2.0))(X, W), 2.0)


# ---------------------------------------------------------------------------------------
# The attack chains: the HMAC first, the allowlist behind it
# ---------------------------------------------------------------------------------------


CHAINS = {
    "polynomial to os": "np.polynomial._polybase.os.system('touch {s}')\n",
    "random to sys to os": "np.random._common.sys.modules['os'].system('touch {s}')\n",
    "random to sys to builtins":
        "np.random._common.sys.modules['builtins'].exec(\"open('{s}', 'w')\")\n",
    "alias of a submodule": "_m = np.random\n_m._common.sys.modules['os'].system('touch {s}')\n",
    "f2py os": "np.f2py.os.system('touch {s}')\n",
    "ma core builtins": "np.ma.core.builtins.exec(\"open('{s}', 'w')\")\n",
    "chain on an allowed chain": "np.ma.MaskedArray.os.system('touch {s}')\n",
    "bare np": "_n = np\n_n.f2py.os.system('touch {s}')\n",
    "np through a call": "(lambda: np)().f2py.os.system('touch {s}')\n",
    "modules attribute": "_x = np.zeros(1)\n_x.modules['os'].system('touch {s}')\n",
    "exec attribute": "_x = np.zeros(1)\n_x.exec(\"open('{s}', 'w')\")\n",
    "os attribute": "_x = np.zeros(1)\n_x.os.system('touch {s}')\n",
    "dunder class": "np.zeros(1).__class__.__base__.__subclasses__()\n",
    "ufunc self": "np.add.__self__\n",
    "np vectorize exec": "np.vectorize(np.sum)('{s}')\n",
    "np load pickle": "np.load('{s}', allow_pickle=True)\n",
    "DATA bare": "_d = _DATA\n",
    "DATA by name": "_k = 'w'\n_d = _DATA[_k]\n",
    "DATA attribute": "_d = _DATA['w'].ctypes\n",
    "DATA bound": "_DATA = {{}}\n",
    "type with three args": "_T = type('T', (), {{}})\n",
    "attribute store": "np.zeros(1).shape = (1,)\n",
    "builtin attribute": "_s = str.join\n",
    "import os": "import os\nos.system('touch {s}')\n",
    "from import": "from os import system\nsystem('touch {s}')\n",
    "import inside a function": "def f():\n    import numpy as np\n    return np\n",
    "getattr": "getattr(np, 'f2py').os.system('touch {s}')\n",
}


def test_chains_really_are_attacks(tmp_path):
    """Positive control: the three chains of the issue do run code when simply executed."""
    for what in ("polynomial to os", "random to sys to os", "random to sys to builtins"):
        sentinel = tmp_path / what.replace(" ", "_")
        exec("import numpy as np\n" + CHAINS[what].format(s=sentinel), {})  # noqa: S102
        assert sentinel.exists(), what


@pytest.mark.parametrize("what", sorted(CHAINS))
def test_attack_chain_is_refused_with_or_without_a_valid_tag(what, cache_env, tmp_path):
    f = sg.compile(model(2.0))
    key, good = f.key, _source_of(f)
    sentinel = tmp_path / "PWNED"
    evil = good + "\n" + CHAINS[what].format(s=sentinel)
    with pytest.raises(UnsafeModuleError):
        check_module_source(evil)
    with pytest.raises(UnsafeModuleError):
        cache.execute("0" * 64, evil, None)
    # 1. a recomputed plain SHA-256: the HMAC refuses it
    for forged, why in ((_old_format(key, evil), "no symgrad HMAC header"),
                        (_forged_plain(key, evil), "bad HMAC tag")):
        f.path.write_bytes(forged)
        cache.MODULES.memo.clear()
        with pytest.warns(cache.CacheWarning, match=why) as rec:
            g = sg.compile(model(2.0))
        assert any(str(f.path) in str(r.message) for r in rec)
        assert correct(g(X, W), 2.0) and not sentinel.exists()
    # 2. a valid HMAC (as if the key leaked): the allowlist still refuses it
    secret = (cache_env / trust.KEY_NAME).read_bytes()
    f.path.write_bytes(cache._build_entry(secret, key, evil, []))
    cache.MODULES.memo.clear()
    with pytest.warns(cache.CacheWarning, match="refused or failed to load .UnsafeModuleError"):
        g = sg.compile(model(2.0))
    assert correct(g(X, W), 2.0) and not sentinel.exists()
    assert CHAINS[what].split("\n")[0] not in g.source


def test_allowlist_accepts_data_and_generated_forms():
    check_module_source(textwrap.dedent('''\
        import numpy as np
        _const_w = _DATA["w"]
        _Z = {np.dtype(t): np.finfo(t).tiny for t in ("float32", "float64")}
        def compute(x):
            m = np.ma.getmaskarray(x).any() or isinstance(x, np.ma.MaskedArray)
            ok = np.logical_and.reduce((x > 0, x < 1))
            return (x.dot(_const_w) + _DATA["b"]).T, m, ok, type(x)
        '''))


# ---------------------------------------------------------------------------------------
# Fuzz: no mutation of a genuine entry ever runs
# ---------------------------------------------------------------------------------------


CANARY = "symgrad_fuzz_canary"


def _mutants(genuine: bytes, rng: random.Random, every_byte: bool, n_random: int) -> list:
    out = []
    positions = range(len(genuine)) if every_byte else \
        [rng.randrange(len(genuine)) for _ in range(n_random)]
    for i in positions:  # a different value each time
        b = bytearray(genuine)
        b[i] ^= rng.randrange(1, 256)
        out.append(bytes(b))
    for _ in range(200 if every_byte else n_random // 4):
        i = rng.randrange(len(genuine) + 1)
        out.append(genuine[:i] + bytes([rng.randrange(256)]) + genuine[i:])  # insertion
        j = rng.randrange(len(genuine))
        out.append(genuine[:j] + genuine[j + 1:])  # deletion
        out.append(genuine[:rng.randrange(len(genuine))])  # truncation
    out.append(genuine + b"\n")
    return out


@pytest.mark.parametrize("which", ["module with arrays, every byte",
                                   "generated module, random bytes"])
def test_fuzzed_entry_never_runs(which, cache_env, monkeypatch):
    """Mutate a genuine entry (every byte of a small one with arrays; 400 random bytes of a
    generated one) and insert, delete, truncate at random, with the allowlist switched off
    so that only the HMAC stands: the canary in the module records every execution, and only
    the genuine bytes ever run."""
    calls: list = []
    monkeypatch.setattr(np, CANARY, calls, raising=False)
    monkeypatch.setattr(cache, "check_module_source", lambda source: None)  # HMAC alone
    canary = f"np.{CANARY}.append(1)\n"
    if which.startswith("module with arrays"):
        key, arrays = "fa" * 32, {"w": np.arange(4.0)}
        source = (f"import numpy as np\n{canary}_w = _DATA['w']\n"
                  f"def compute(x):\n    return x.dot(_w)\n")
    else:
        key, arrays = "fb" * 32, None
        source = _source_of(sg.compile(model(2.0))) + canary
    cache.MODULES.store(key, source, arrays=arrays)
    path = cache_env / key[:2] / f"{key}.py"
    genuine = path.read_bytes()
    assert calls == [1]
    cache.MODULES.memo.clear()
    assert cache.MODULES.lookup(key) is not None  # control: the genuine entry loads, and runs
    assert calls == [1, 1]
    rng = random.Random(10)
    mutants = _mutants(genuine, rng, which.endswith("every byte"), 400)
    before = len(calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for m in mutants:
            path.write_bytes(m)
            cache.MODULES.memo.clear()
            assert cache.MODULES.lookup(key) is None
    assert len(calls) == before, "a mutated entry executed"
    named = [w for w in caught if issubclass(w.category, cache.CacheWarning)
             and str(path) in str(w.message)]
    assert len(named) == len(mutants)
    print(f"\nfuzz ({which}): {len(mutants)} mutants of a {len(genuine)}-byte entry, "
          f"{len(named)} refused with a warning naming the file, 0 executed")


# ---------------------------------------------------------------------------------------
# The key
# ---------------------------------------------------------------------------------------


def _race_for_key(root_path, barrier, queue):
    try:
        barrier.wait(timeout=60)
        root = trust.open_root(Path(root_path), True, cache.CacheError)
        with root:
            queue.put(trust.load_key(root, True, lambda m: None).hex())
    except BaseException:  # noqa: BLE001
        queue.put("error " + traceback.format_exc())
    finally:
        queue.close()
        queue.join_thread()  # flushed before the hard exit
        os._exit(0)


def test_racing_processes_end_with_one_key(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork")
    ctx = multiprocessing.get_context("fork")
    n = 12
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    root = tmp_path / "racing"
    procs = [ctx.Process(target=_race_for_key, args=(str(root), barrier, queue))
             for _ in range(n)]
    for p in procs:
        p.start()
    keys = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert not [k for k in keys if k.startswith("error")], keys
    assert len(set(keys)) == 1
    assert sorted(os.listdir(root)) == [trust.KEY_NAME]  # one key, no temp file left
    assert (root / trust.KEY_NAME).read_bytes().hex() == keys[0]
    assert stat.S_IMODE((root / trust.KEY_NAME).stat().st_mode) == 0o600


@pytest.mark.parametrize("how", ["readable by others", "a symlink", "wrong size", "missing",
                                 "a directory"])
def test_untrusted_key_trusts_nothing(how, cache_env, tmp_path):
    f = sg.compile(model(2.0))
    keyfile = cache_env / trust.KEY_NAME
    old = keyfile.read_bytes()
    if how == "readable by others":
        os.chmod(keyfile, 0o644)
    elif how == "a symlink":
        other = tmp_path / "their-key"
        other.write_bytes(old)
        os.chmod(other, 0o600)
        keyfile.unlink()
        os.symlink(other, keyfile)
    elif how == "wrong size":
        keyfile.write_bytes(old + b"x")
    elif how == "missing":
        keyfile.unlink()
    elif how == "a directory":
        keyfile.unlink()
        keyfile.mkdir()
    # nothing on disk is trusted: the genuine entry is not even read
    cache.MODULES.memo.clear()
    assert cache.MODULES.lookup(f.key) is None
    assert cache.check_entry(f.key, f.path.read_bytes())[0] is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = sg.compile(model(2.0))
    assert correct(g(X, W), 2.0)
    messages = [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]
    if how == "a directory":  # cannot be replaced: memory only, one warning
        assert g.path is None and len(messages) == 1 and "in memory only" in messages[0]
        return
    if how != "missing":
        assert any(str(keyfile) in m and "replaced by a new key" in m for m in messages)
    new = keyfile.read_bytes()
    assert not keyfile.is_symlink() and len(new) == 32 and new != old
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert g.path == f.path and cache.check_entry(f.key, f.path.read_bytes())[0] is not None
    for m in messages:  # the key's bytes are never shown
        assert old.hex() not in m and new.hex() not in m


@needs_root
def test_key_of_another_user_or_unreadable_is_replaced(nobody_cache):
    cache_dir = nobody_cache / "cache"
    as_nobody(_victim_compile, str(cache_dir), 2.0)
    keyfile = cache_dir / trust.KEY_NAME
    old = keyfile.read_bytes()
    os.chown(keyfile, 0, 0)  # now root's (as if planted)
    os.chmod(keyfile, 0o600)
    out = as_nobody(_victim_compile, str(cache_dir), 2.0)
    assert out["result"]["correct"] and out["result"]["path"]
    assert any(str(keyfile) in m and "replaced by a new key" in m for m in out["warnings"])
    assert keyfile.stat().st_uid == NOBODY and keyfile.read_bytes() != old
    os.chmod(keyfile, 0o000)  # the victim's own key, unreadable to the victim
    out = as_nobody(_victim_compile, str(cache_dir), 2.0)
    assert out["result"]["correct"]
    assert any(str(keyfile) in m and "cannot be read" in m and "replaced by a new key" in m
               for m in out["warnings"])


def test_key_never_printed(cache_env, capsys, monkeypatch):
    monkeypatch.setenv("SYMGRAD_CACHE_DEBUG", "1")
    f = sg.compile(model(2.0))
    cache.MODULES.memo.clear()
    sg.compile(model(2.0))
    f.path.write_bytes(f.path.read_bytes()[:-3])
    cache.MODULES.memo.clear()
    with pytest.warns(cache.CacheWarning):
        sg.compile(model(2.0))
    cli_main(["cache", "info"])
    cli_main(["cache", "clear"])
    secret = (cache_env / trust.KEY_NAME).read_bytes()
    out = capsys.readouterr()
    for text in (out.out, out.err):
        assert secret.hex() not in text and repr(secret) not in text


# ---------------------------------------------------------------------------------------
# Arrays stored beside a module (_DATA)
# ---------------------------------------------------------------------------------------


DATA_SOURCE = textwrap.dedent('''\
    # Generated by symgrad (by hand, for the test). Do not edit.
    #
    # compute: y
    #
    # Inputs (compute's parameters, in order):
    #   x: input (3,) float64
    #
    import numpy as np

    _const_w = _DATA["w"]
    _const_b = _DATA["b"]


    def compute(x):
        return x.dot(_const_w) + _const_b
    ''')
DATA_KEY = "da" * 32
DATA_W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
DATA_B = np.array([0.25, -0.5], dtype=np.float64)


def _data_expected():
    return X.dot(DATA_W) + DATA_B


_HIT_IN_A_NEW_PROCESS = textwrap.dedent("""
    import sys, numpy as np
    from symgrad.runtime import cache
    mod = cache.MODULES.lookup(sys.argv[1])
    assert mod is not None, "no hit"
    out = mod.namespace["compute"](np.array([0.5, -1.0, 2.0]))
    print("OUT", repr(out.tolist()), mod.arrays["w"].flags.writeable)
""")


def test_arrays_survive_a_hit_in_a_new_process_and_tampering_is_refused(cache_env):
    mod = cache.MODULES.store(DATA_KEY, DATA_SOURCE, arrays={"w": DATA_W, "b": DATA_B})
    np.testing.assert_array_equal(mod.namespace["compute"](X), _data_expected())
    assert not mod.arrays["w"].flags.writeable and mod.namespace["_DATA"] is mod.arrays
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                 ""))
    r = subprocess.run([sys.executable, "-c", _HIT_IN_A_NEW_PROCESS, DATA_KEY],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    out, writeable = r.stdout.split("OUT ")[1].rsplit(" ", 1)
    np.testing.assert_array_equal(eval(out), _data_expected())  # noqa: S307 - our output
    assert writeable.strip() == "False"
    # tamper with the array bytes (the last bytes of the entry are b's data)
    path = mod.path
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    cache.MODULES.memo.clear()
    with pytest.warns(cache.CacheWarning, match="bad HMAC tag"):
        assert cache.MODULES.lookup(DATA_KEY) is None
    r = subprocess.run([sys.executable, "-c", _HIT_IN_A_NEW_PROCESS, DATA_KEY],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "no hit" in r.stderr


def test_arrays_in_memory_and_through_execute(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(blocker))
    with pytest.warns(cache.CacheWarning, match="in memory only"):
        mod = cache.MODULES.store(DATA_KEY, DATA_SOURCE, arrays={"w": DATA_W, "b": DATA_B})
    assert mod.path is None
    np.testing.assert_array_equal(mod.namespace["compute"](X), _data_expected())
    assert not mod.namespace["_DATA"]["w"].flags.writeable
    m2 = cache.execute("db" * 32, DATA_SOURCE, None, arrays={"w": DATA_W, "b": DATA_B})
    np.testing.assert_array_equal(m2.namespace["compute"](X), _data_expected())
    with pytest.raises(ValueError):
        m2.namespace["_DATA"]["b"][0] = 1.0  # read-only


def test_arrays_that_need_pickle_or_bad_names_are_refused(cache_env):
    with pytest.raises(TypeError, match="object"):
        cache.MODULES.store("dc" * 32, DATA_SOURCE, arrays={"w": np.array([{}, 1], dtype=object),
                                                         "b": DATA_B})
    with pytest.raises(ValueError, match="identifier"):
        cache.MODULES.store("dc" * 32, DATA_SOURCE, arrays={"w b": DATA_W})
    assert not (cache_env / "dc").exists()


# ---------------------------------------------------------------------------------------
# Housekeeping touches only symgrad's files
# ---------------------------------------------------------------------------------------


def test_clear_touches_only_what_it_verifies(cache_env, capsys):
    fs = [sg.compile(model(float(v))) for v in (1.0, 2.0)]
    foreign_empty = cache_env / unused_subdir(cache_env)
    foreign_empty.mkdir()  # an empty two-character directory that is not symgrad's
    unknown = fs[0].path.parent / ("0" * 64 + ".py")
    unknown.write_text("x = 1\n")  # named like an entry, but nothing proves it is ours
    sub = unused_subdir(cache_env, foreign_empty.name)
    garbage_entry = cache_env / sub / (sub + "1" * 62 + ".py")
    garbage_entry.parent.mkdir()
    garbage_entry.write_bytes(_old_format(garbage_entry.stem, "x = 1\n"))
    assert cli_main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert "removed 2 entries" in out and str(garbage_entry) in out
    assert foreign_empty.is_dir() and unknown.exists() and garbage_entry.exists()
    assert not fs[1].path.parent.exists() or fs[1].path.parent == unknown.parent
    assert not fs[0].path.exists() and not fs[1].path.exists()


@needs_root
def test_clear_never_enters_foreign_directories(nobody_cache):
    cache_dir = nobody_cache / "cache"
    as_nobody(_victim_compile, str(cache_dir), 2.0)
    sub = unused_subdir(cache_dir)
    foreign = cache_dir / sub
    foreign.mkdir(mode=0o777)
    os.chmod(foreign, 0o777)
    planted = foreign / (sub * 32 + ".py")
    planted.write_text("x = 1\n")

    def clear_as_victim(path):
        return cache.clear_report(Path(path))["removed"]

    out = as_nobody(clear_as_victim, str(cache_dir))
    assert out["result"] == 1
    assert planted.exists()


def test_prune_by_age_and_size_lru(cache_env, capsys):
    fs = [sg.compile(model(float(v))) for v in (1.0, 2.0, 3.0, 4.0)]
    sizes = [f.path.stat().st_size for f in fs]
    day = 86400
    now = os.stat(fs[0].path).st_mtime
    ages = [40, 3, 2, 1]  # days since last use
    for f, age in zip(fs, ages):
        t = now - age * day
        os.utime(f.path, (t, t))
    r = cache.prune(cache_env, max_size=10 ** 9, max_age_days=30)
    assert r["removed"] == 1 and not fs[0].path.exists() and r["freed"] == sizes[0]
    # over the size limit: least recently used first (fs[1], then fs[2])
    assert cli_main(["cache", "prune", "--max-size", str(sizes[3] + sizes[2]),
                     "--max-age", "30"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert not fs[1].path.exists() and fs[2].path.exists() and fs[3].path.exists()
    # a hit counts as a use: fs[2] was used last, so fs[3] goes next
    cache.MODULES.memo.clear()
    assert correct(sg.compile(model(3.0))(X, W), 3.0)
    r = cache.prune(cache_env, max_size=sizes[2], max_age_days=30)
    assert fs[2].path.exists() and not fs[3].path.exists()


def test_automatic_prune_runs_at_most_daily(cache_env, monkeypatch):
    old = sg.compile(model(1.0))
    t = os.stat(old.path).st_mtime - 60 * 86400
    os.utime(old.path, (t, t))
    stamp = cache_env / cache._PRUNE_STAMP
    monkeypatch.setattr(cache, "_LAST_AUTO_PRUNE", {})
    os.utime(stamp, None)  # pruned today (by another process): nothing happens
    sg.compile(model(5.0))
    assert old.path.exists()
    monkeypatch.setattr(cache, "_LAST_AUTO_PRUNE", {})
    t2 = os.stat(stamp).st_mtime - 2 * 86400
    os.utime(stamp, (t2, t2))  # last prune two days ago: this store prunes
    sg.compile(model(6.0))
    assert not old.path.exists()


def test_info_names_each_function(cache_env, capsys):
    x = sg.input("x", shape=("N", 3))
    w = sg.param("w", shape=(3,))
    loss = sg.sum((x @ w) ** 2)
    sg.compile({"loss": loss, "grad_w": sg.grad(loss, [w])[0]}, name="my_fn")
    cache.MODULES.store(DATA_KEY, DATA_SOURCE, arrays={"w": DATA_W, "b": DATA_B})
    assert cli_main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "my_fn: loss, grad_w" in out and "x: input (N, 3) float64" in out
    assert "w: param (3,) float64" in out
    assert "compute: y; inputs: x: input (3,) float64 [arrays: b, w]" in out
    assert "key:       present" in out


def test_every_numpy_name_the_generator_writes_is_allowed():
    # the positive allowlist and the code generator must not drift apart: a numpy name in
    # the code the generator writes (the string literals of codegen, the printer, the op
    # rules and the optimizers; the templates' code) but missing from safety.NP_NAMES would
    # make every module using it fail to load
    import ast
    import re
    from pathlib import Path

    from symgrad.runtime.safety import NP_CHAINS, NP_NAMES
    root = Path(sg.__file__).resolve().parent
    texts = []
    sources = [*sorted((root / "compiler").glob("*.py")), *sorted((root / "ops").glob("*.py")),
               root / "train.py", root / "optim.py"]
    for path in sources:
        tree = ast.parse(path.read_text())
        # skipped: docstrings, and the ``numpy=`` of op records (the allowlist takes those
        # from the records themselves)
        skipped = _docstrings(tree) | {id(k.value) for k in ast.walk(tree)
                                       if isinstance(k, ast.keyword) and k.arg == "numpy"}
        texts += [n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in skipped]
    for path in sorted((root.parent / "templates").glob("*.j2")):
        code = re.sub(r'"""[\s\S]*?"""', "", path.read_text())
        texts.append(re.sub(r"#.*", "", code))
    used = {m for t in texts for m in re.findall(r"\bnp\.([a-z_][a-z0-9_]*)", t)}
    missing = sorted(used - NP_NAMES - set(NP_CHAINS))
    assert not missing, f"printed but not allowed: {missing}"
    # np.<module>.<function> (np.linalg.inv): each pair the printers write is a chain
    pairs = {m for t in texts for m in re.findall(r"\bnp\.([a-z_]\w*)\.([a-z_]\w*)\(", t)}
    pairs |= {("linalg", f) for f in ("inv", "solve", "det", "slogdet", "cholesky", "eigh",
                                      "eigvalsh", "svd")}  # np.linalg.{self.function}
    chained = sorted(f"np.{a}.{b}" for a, b in pairs if b not in NP_CHAINS.get(a, ()))
    assert not chained, f"printed but not allowed: {chained}"
    assert {"reciprocal", "sqrt", "divide", "multiply"} <= used  # the scan sees the printers


def _docstrings(tree) -> set:
    """ids of the docstring constants of a module, its classes and functions."""
    import ast
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            out.add(id(body[0].value))
    return out


def test_every_xp_name_the_generator_writes_is_allowed():
    # the array API target's twin of the test above: every xp.<name> printed by the
    # printers, the op rules and the templates is a name of the standard the allowlist admits
    import ast
    import re
    from pathlib import Path

    from symgrad.runtime.safety import XP_CHAINS, XP_NAMES
    root = Path(sg.__file__).resolve().parent
    texts = []
    for path in [*sorted((root / "compiler").glob("*.py")), *sorted((root / "ops").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        skipped = _docstrings(tree)
        texts += [n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in skipped]
    for path in sorted((root.parent / "templates").glob("*array_api*.j2")):
        code = re.sub(r'"""[\s\S]*?"""', "", path.read_text())
        texts.append(re.sub(r"#.*", "", code))
    used = {m for t in texts for m in re.findall(r"\bxp\.([a-z_][a-z0-9_]*)\b(?!\.)", t)}
    missing = sorted(used - XP_NAMES)
    assert not missing, f"printed but not allowed: {missing}"
    # xp.<extension>.<function> (xp.linalg.inv): each chain the printers write is declared,
    # and nothing heads a chain but what the records declare
    pairs = {m for t in texts for m in re.findall(r"\bxp\.([a-z_]\w*)\.([a-z_]\w*)", t)}
    chained = sorted(f"xp.{a}.{b}" for a, b in pairs if b not in XP_CHAINS.get(a, ()))
    assert not chained, f"printed but not allowed: {chained}"
    heads = {m for t in texts for m in re.findall(r"\bxp\.([a-z_]\w*)\.", t)}
    assert heads == set(XP_CHAINS) == {"linalg"}
    assert {("linalg", "svdvals"), ("linalg", "eigh")} <= pairs  # the scan sees the nodes
    assert {"permute_dims", "cumulative_sum", "matmul", "astype", "logsumexp"} - used \
        == {"logsumexp"}  # the scan sees the printers; logsumexp is a helper, not a name


_ARRAY_API_OK = """\
import numpy as np
import array_api_compat


def _helper(xp, x):
    return xp.sum(xp.exp(x), axis=0)


def compute(x):
    xp, _dev = array_api_compat.array_namespace(x), array_api_compat.device(x)
    return _helper(xp, xp.astype(x > 0, xp.float64)) + xp.full((2,), 1.0, device=_dev)
"""


@pytest.mark.parametrize("bad", [
    "xp.linalg.lstsq(x, x)",          # a function of the extension no node declares
    "xp.linalg.matrix_power(x, 2)",
    "xp.linalg",                      # the extension itself, not one of its calls
    "_helper(xp.linalg, x)",
    "xp.linalg.inv.__call__(x)",      # a declared call, then an attribute of it
    "xp.fft.fft(x)",                  # another extension
    "xp.inv(x)",                      # a declared function, outside its extension
    "xp.from_dlpack(x)",              # standard, but moves data in: not admitted
    "xp.save(x)",                     # not a standard name
    "xp.__dict__",                    # dunder
    "array_api_compat.get_namespace(x)",
    "array_api_compat.numpy.asarray(x)",
    "_helper(array_api_compat, x)",   # the module itself, passed around
])
def test_allowlist_admits_the_array_api_target_and_nothing_around_it(bad):
    check_module_source(_ARRAY_API_OK)
    source = _ARRAY_API_OK.replace("return _helper(xp, xp.astype(x > 0, xp.float64))",
                                   f"return {bad}")
    assert source != _ARRAY_API_OK
    with pytest.raises(UnsafeModuleError):
        check_module_source(source)


def test_allowlist_admits_exactly_the_linalg_calls_the_nodes_declare():
    # XP_CHAINS comes from the records' array_api_calls: each declared call passes, the
    # same function through another extension or numpy's extras of linalg do not
    from symgrad.ops.decompositions import Eigh, Inv, Solve, Svd
    from symgrad.runtime.safety import XP_CHAINS
    declared = {c for node in (Inv, Solve, Eigh, Svd) for c in node.array_api_calls}
    assert {f"xp.linalg.{f}" for f in XP_CHAINS["linalg"]} >= declared
    assert XP_CHAINS == {"linalg": frozenset({
        "inv", "solve", "det", "slogdet", "cholesky", "eigh", "eigvalsh", "svd", "svdvals"})}
    for fn in sorted(XP_CHAINS["linalg"]):
        check_module_source(_ARRAY_API_OK.replace(
            "return _helper(xp, xp.astype(x > 0, xp.float64))",
            f"return xp.linalg.{fn}(x)[0]"))
    for bad in ("xp.linalg.eig(x)", "xp.linalg.norm(x)", "xp.linalg.matrix_norm(x)",
                "xp.linalg.cross(x, x)"):
        with pytest.raises(UnsafeModuleError, match=r"xp\.linalg\.\w+ is not something"):
            check_module_source(_ARRAY_API_OK.replace(
                "return _helper(xp, xp.astype(x > 0, xp.float64))", f"return {bad}"))


@pytest.mark.parametrize("imports", [
    "import array_api_compat as np2", "from array_api_compat import array_namespace",
    "import torch", "import array_api_compat.torch", "import numpy, array_api_compat",
])
def test_array_api_target_imports_only_array_api_compat_itself(imports):
    source = _ARRAY_API_OK.replace("import array_api_compat\n", imports + "\n")
    with pytest.raises(UnsafeModuleError):
        check_module_source(source)


def test_array_api_compat_may_not_be_rebound():
    source = _ARRAY_API_OK.replace("    xp, _dev =", "    array_api_compat = x\n    xp, _dev =")
    with pytest.raises(UnsafeModuleError, match="reserved name"):
        check_module_source(source)
