"""The on-disk cache under stress (issue 6, points 1-4).

* concurrency: 16 processes x 5 rounds behind a barrier, compiling the same and different
  functions on a cold cache (fresh constants every round);
* crash consistency: writers SIGKILLed at exact byte offsets of a write (a test hook, no
  timing); entries corrupted every way (truncated, empty, garbage, swapped, tampered, a
  recomputed plain SHA-256): none passes the HMAC, each is rebuilt;
* invalidation: expression, shape, dtype, options, templates and versions give a miss, an
  unchanged function hits in a fresh process without differentiating; the debug log says why;
* the directory: private (0700), refused when others can write to it, memory fallback with
  one warning when it cannot be written; ``python -m symgrad cache info|clear`` and ``show``.

``SYMGRAD_STRESS=1`` runs more processes and rounds. Nothing here depends on timing: the
concurrency test forces its race with a barrier, the kill test kills at chosen bytes.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import shutil
import hashlib
import signal
import stat
import subprocess
import sys
import textwrap
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.runtime import cache
from symgrad.compiler import codegen
from symgrad.__main__ import main as cli_main

from cache_model import W, X, correct, model, reference, unused_subdir

STRESS = bool(os.environ.get("SYMGRAD_STRESS"))
N_PROCESSES = 32 if STRESS else 16
N_ROUNDS = 20 if STRESS else 5
REPO = Path(sg.__file__).resolve().parent.parent
POSIX = os.name == "posix"
IS_ROOT = POSIX and os.geteuid() == 0
#: every test gets a fresh private cache (conftest's ``cache_env``)
pytestmark = pytest.mark.usefixtures("cache_env")


def _env(cache_dir, **extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["SYMGRAD_CACHE_DIR"] = str(cache_dir)
    env.pop("SYMGRAD_CACHE_DEBUG", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def entry_files(d: Path) -> list:
    return sorted(d.glob("*/*.py")) if d.is_dir() else []


def temp_files(d: Path) -> list:
    return sorted(d.glob("*/.*.tmp")) if d.is_dir() else []


def _fork_context():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    return multiprocessing.get_context("fork")


# ---------------------------------------------------------------------------------------
# 1. Concurrency
# ---------------------------------------------------------------------------------------


def _concurrent_worker(index, n, rounds, barrier, queue, cache_dir):
    try:
        os.environ["SYMGRAD_CACHE_DIR"] = cache_dir
        # any CacheWarning (corrupt entry, ...) is a failure
        warnings.simplefilter("error", cache.CacheWarning)
        cache.MODULES.memo.clear()
        stored = []
        real_store = cache.MODULES.store

        def counting_store(key, source, arrays=None):
            if not stored:
                # the first store of round 0 is the "same" job: every process has missed
                # and generated it before any writes it, so all of them race on that key
                # (forced, not left to timing)
                barrier.wait(timeout=120)
            stored.append(key)
            return real_store(key, source, arrays)

        cache.MODULES.store = counting_store
        results = []
        for r in range(rounds):
            seed = 1 + r
            jobs = [("same", float(seed)),  # every process, this round
                    ("mine", seed * 1000.0 + index),  # this process only
                    ("pair", seed * 1000.0 + 500 + index // 2)]  # two processes
            barrier.wait(timeout=120)
            for kind, cval in jobs:
                f = sg.compile(model(cval))
                ok = correct(f(X, W), cval) and correct(f(x=X, w=W), cval)
                results.append((r, kind, cval, f.key, str(f.path), ok, f.key in stored))
        queue.put((index, "ok", results))
    except BaseException:  # noqa: BLE001 - reported to the parent
        queue.put((index, "error", traceback.format_exc()))
    finally:
        queue.close()
        queue.join_thread()
        os._exit(0)


def _warm_up(tmp: Path) -> float:
    """Load everything a compile needs (jinja, printers) once, in memory only, before
    forking; return the time of one compile."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = os.environ["SYMGRAD_CACHE_DIR"]
        os.environ["SYMGRAD_CACHE_DIR"] = str(tmp)
        try:
            sg.compile(model(-1.0))
        finally:
            os.environ["SYMGRAD_CACHE_DIR"] = old
    cache.MODULES.memo.clear()
    return time.perf_counter() - t0


def test_concurrent_compiles_on_cold_cache(cache_env, tmp_path):
    ctx = _fork_context()
    cache.version_fingerprint()  # computed once, inherited: every process agrees on it
    _warm_up(tmp_path / "warm")
    barrier = ctx.Barrier(N_PROCESSES)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_concurrent_worker,
                         args=(i, N_PROCESSES, N_ROUNDS, barrier, queue, str(cache_env)))
             for i in range(N_PROCESSES)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    reports = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    elapsed = time.perf_counter() - t0
    errors = [r for r in reports if r[1] != "ok"]
    assert not errors, "worker failed:\n" + "\n".join(r[2] for r in errors)
    rows = [row for r in reports for row in r[2]]
    failures = [row for row in rows if not row[5]]
    writers: dict = {}  # how many processes generated and wrote each key (1 = no race)
    for row in rows:
        writers[row[3]] = writers.get(row[3], 0) + row[6]
    assert not failures, f"wrong results: {failures[:3]}"
    assert len(rows) == N_PROCESSES * N_ROUNDS * 3
    # the same function has the same key in every process, different functions differ
    by_value: dict = {}
    for r, kind, cval, key, path, ok, _ in rows:
        by_value.setdefault(cval, set()).add(key)
        assert Path(path) == cache_env / key[:2] / f"{key}.py"
    assert all(len(keys) == 1 for keys in by_value.values())
    keys = {next(iter(k)) for k in by_value.values()}
    expected = N_ROUNDS * (1 + N_PROCESSES + N_PROCESSES // 2)
    assert len(keys) == expected
    # exactly one valid entry per key, nothing else left behind
    files = entry_files(cache_env)
    assert sorted(p.stem for p in files) == sorted(keys)
    for p in files:
        text, why = cache.check_entry(p.stem, p.read_bytes())
        assert text is not None, f"{p}: {why}"
    assert temp_files(cache_env) == []
    # and a fresh lookup of each loads, no warning
    cache.MODULES.memo.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        for k in keys:
            assert cache.MODULES.lookup(k) is not None
    assert all(n >= 1 for n in writers.values())
    raced = sum(1 for n in writers.values() if n > 1)
    assert writers[rows[0][3]] == N_PROCESSES  # round 0's "same" key: all wrote it at once
    print(f"\nconcurrency: {N_PROCESSES} processes x {N_ROUNDS} rounds, {len(rows)} compiles, "
          f"{len(keys)} keys, {len(files)} entries (one valid per key), {raced} keys written "
          f"by several processes at once (up to {max(writers.values())}), 0 failures, "
          f"{elapsed:.1f} s")
    assert raced >= 1, "no two processes ever raced on a key: the test proves nothing"


# ---------------------------------------------------------------------------------------
# 2. Crash consistency: killed writers
# ---------------------------------------------------------------------------------------


def _doomed_writer(cval, kill_at, cache_dir):
    try:
        os.environ["SYMGRAD_CACHE_DIR"] = cache_dir
        os.environ["SYMGRAD_CACHE_TEST_KILL_AT"] = str(kill_at)
        cache.MODULES.memo.clear()
        sg.compile(model(cval))  # SIGKILLs itself inside the write
    finally:
        os._exit(0)  # only if the hook did not fire


def test_killed_writers_never_leave_a_half_written_entry(cache_env, tmp_path):
    """A writer killed after exactly n bytes of its temp file (n = 0, 1, inside the HMAC
    header, inside the source, one byte short, all of it but not renamed): what carries the
    entry's name is never a part, and the next compile rebuilds it without a warning."""
    ctx = _fork_context()
    cache.version_fingerprint()
    probe = sg.compile(model(-2.0))  # the real size of such an entry, on this machine
    size = probe.path.stat().st_size
    offsets = [0, 1, 20, len(cache.MAGIC) + 10, len(cache.MAGIC) + cache.TAG_LEN + 5, size // 2,
               size - 1, size, size + 100]
    for i, kill_at in enumerate(offsets):
        cval = 100.0 + i
        p = ctx.Process(target=_doomed_writer, args=(cval, kill_at, str(cache_env)))
        p.start()
        p.join(timeout=120)
        assert p.exitcode == -signal.SIGKILL, f"offset {kill_at}: the hook did not kill"
        # the killed writer's temp file holds exactly the bytes it wrote, and nothing
        # carries an entry's name but whole, authentic entries
        mine = [t for t in temp_files(cache_env) if t.stat().st_size == min(kill_at, size)]
        assert mine, f"offset {kill_at}: no temp file of {min(kill_at, size)} bytes"
        for path in entry_files(cache_env):
            text, why = cache.check_entry(path.stem, path.read_bytes())
            assert text is not None, f"after a kill at byte {kill_at}: {path} is {why}"
    assert len(entry_files(cache_env)) == 1  # only the probe: no killed write was renamed
    assert len(temp_files(cache_env)) == len(offsets)
    print(f"\nkilled writers: {len(offsets)} SIGKILLs at bytes {offsets} of a {size}-byte "
          f"entry, 0 half-written entries")
    # every function the children were writing compiles right, with no corrupt-entry warning
    cache.MODULES.memo.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        for i in range(len(offsets)):
            assert correct(sg.compile(model(100.0 + i))(X, W), 100.0 + i)
        for path in entry_files(cache_env):
            cache.MODULES.memo.clear()
            assert cache.MODULES.lookup(path.stem) is not None
    # leftovers are only temp files; clear removes them too
    before = len(entry_files(cache_env))
    assert before == len(offsets) + 1
    assert cache.clear(cache_env) == before
    assert entry_files(cache_env) == [] and temp_files(cache_env) == []


def test_stale_temp_files_are_swept(cache_env, monkeypatch):
    f = sg.compile(model(1.0))
    stale = f.path.parent / f".{f.key[:16]}.dead.tmp"
    stale.write_bytes(b"# symgrad-entry half")
    old = time.time() - 2 * cache.STALE_TEMP_SECONDS
    os.utime(stale, (old, old))
    fresh = f.path.parent / f".{f.key[:16]}.alive.tmp"
    fresh.write_bytes(b"being written")
    f.path.unlink()
    cache.MODULES.memo.clear()
    sg.compile(model(1.0))  # rewrites the entry
    assert not stale.exists() and fresh.exists()
    assert cache.info(cache_env)["temp_files"] == 1


# ---------------------------------------------------------------------------------------
# 2b. Corrupted entries
# ---------------------------------------------------------------------------------------


def _corrupt(kind: str, path: Path, other: Path) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated in header":
        path.write_bytes(data[:20])
    elif kind == "truncated by one byte":
        path.write_bytes(data[:-1])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(len(data))))
    elif kind == "garbage text":
        path.write_text("def compute(x, w):\n    return [1.0, 2.0]\n")
    elif kind == "swapped":
        shutil.copyfile(other, path)
    elif kind == "tampered":
        assert b"3.5" in data
        path.write_bytes(data.replace(b"3.5", b"4.5"))
    elif kind == "tampered header":
        head, _, body = data.partition(b"\n")
        path.write_bytes(re.sub(rb"hmac-sha256=[0-9a-f]{64}", b"hmac-sha256=" + b"0" * 64, head)
                         + b"\n" + body)
    elif kind == "recomputed sha256":  # the old format's checksum, recomputed by anyone
        body = data.partition(b"\n")[2].replace(b"3.5", b"4.5")
        path.write_bytes(b"# symgrad-entry sha256=" + hashlib.sha256(body).hexdigest().encode()
                         + b" key=" + path.stem.encode() + b"\n" + body)
    elif kind == "crlf":
        path.write_bytes(data.replace(b"\n", b"\r\n"))
    elif kind == "not utf-8":
        path.write_bytes(data.replace(b"Generated", b"Gen\xff\xfeated"))
    else:  # pragma: no cover
        raise AssertionError(kind)


CORRUPTIONS = ["truncated", "truncated in header", "truncated by one byte", "empty", "garbage",
               "garbage text", "swapped", "tampered", "tampered header", "crlf", "not utf-8",
               "recomputed sha256"]


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_entry_is_detected_and_rebuilt(kind, cache_env):
    f = sg.compile(model(2.0))
    other = sg.compile(model(7.0))  # a valid entry of another key, another result
    good = f.path.read_bytes()
    _corrupt(kind, f.path, other.path)
    assert f.path.read_bytes() != good
    assert cache.check_entry(f.key, f.path.read_bytes())[0] is None  # detected before running
    cache.MODULES.memo.clear()
    with pytest.warns(cache.CacheWarning, match="corrupt"):
        g = sg.compile(model(2.0))  # never an exception
    assert g.key == f.key
    assert correct(g(X, W), 2.0), "a stale or tampered module ran"
    assert g.path.read_bytes() == good  # rebuilt, and exactly the module it should be
    assert "4.5" not in g.source
    cache.MODULES.memo.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        assert correct(sg.compile(model(2.0))(X, W), 2.0)  # a clean hit afterwards
    assert correct(other(X, W), 7.0)


def test_every_corruption_counted():
    """The figure reported: each way of corrupting is one entry corrupted and rebuilt."""
    assert len(CORRUPTIONS) >= 5
    assert {"truncated", "empty", "garbage", "swapped", "tampered"} <= set(CORRUPTIONS)


def test_hmac_header_is_right(cache_env):
    """The tag is an HMAC-SHA256 under the cache's key over everything after it, bound to
    the entry's key; a recomputed plain SHA-256 (the old format) is refused."""
    import hashlib
    import hmac
    f = sg.compile(model(3.0))
    data = f.path.read_bytes()
    assert data.startswith(cache.MAGIC)
    given = data[len(cache.MAGIC):len(cache.MAGIC) + 64]
    rest = data[len(cache.MAGIC) + 64:]
    secret = (cache_env / ".symgrad-hmac-key").read_bytes()
    assert len(secret) == 32
    assert stat.S_IMODE((cache_env / ".symgrad-hmac-key").stat().st_mode) == 0o600
    mac = hmac.new(secret, b"symgrad-entry-v2\x00" + f.key.encode() + b"\x00" + rest,
                   hashlib.sha256)
    assert given.decode() == mac.hexdigest()
    fields = dict(p.split(b"=", 1) for p in rest.partition(b"\n")[0].split())
    assert fields[b"key"].decode() == f.key
    assert cache.check_entry(f.key, data)[0] == data.decode()
    assert cache.check_entry("f" * 64, data)[0] is None  # another key's name: refused
    body = data.partition(b"\n")[2]
    old_style = (b"# symgrad-entry sha256=" + hashlib.sha256(body).hexdigest().encode()
                 + b" key=" + f.key.encode() + b"\n" + body)
    assert cache.check_entry(f.key, old_style)[0] is None
    assert cache.check_entry(f.key, data, secret=b"x" * 32)[0] is None  # another user's key


# ---------------------------------------------------------------------------------------
# 3. Invalidation and the debug log
# ---------------------------------------------------------------------------------------


def _variants():
    x3 = sg.input("x", shape=(3,))
    x4 = sg.input("x", shape=(4,))
    x3f = sg.input("x", shape=(3,), dtype="float32")
    base = sg.sum(sg.exp(x3) * 2.0)
    return base, {
        "expression": (sg.sum(sg.exp(x3) * 3.0), {}),
        "another op": (sg.sum(sg.tanh(x3) * 2.0), {}),
        "shape": (sg.sum(sg.exp(x4) * 2.0), {}),
        "dtype": (sg.sum(sg.exp(x3f) * 2.0), {}),
        "option check_finite": (base, {"check_finite": True}),
        "option max_nodes": (base, {"max_nodes": 123_456}),
        "option max_lines": (base, {"max_lines": 9_999}),
    }


def test_changes_miss_and_nothing_changed_hits(cache_env, capsys, monkeypatch):
    monkeypatch.setenv("SYMGRAD_CACHE_DEBUG", "1")
    base, variants = _variants()
    f0 = sg.compile(base)
    err = capsys.readouterr().err
    assert f"miss {f0.key}" in err and f"stored {f0.key}" in err
    keys = {f0.key}
    for what, (expr, opts) in variants.items():
        f = sg.compile(expr, **opts)
        err = capsys.readouterr().err
        assert f.key not in keys, f"{what}: same key"
        assert f"miss {f.key}" in err, f"{what}: not a miss"
        keys.add(f.key)
        if what.startswith("option"):
            assert "differs in: options" in err
    # nothing changed: a hit (from the disk, not only the memo)
    cache.MODULES.memo.clear()
    g = sg.compile(base)
    err = capsys.readouterr().err
    assert g.key == f0.key and f"hit {f0.key}" in err and str(f0.path) in err
    g2 = sg.compile(base)
    assert "already loaded" in capsys.readouterr().err and g2.key == f0.key


@pytest.mark.parametrize("which", ["symgrad", "sympy", "numpy", "python"])
def test_version_change_misses(which, cache_env, capsys, monkeypatch):
    base, _ = _variants()
    f0 = sg.compile(base)
    real = cache.version_fingerprint()
    changed = re.sub(rf"{which}=([^;]+)", rf"{which}=\g<1>.changed", real)
    assert changed != real
    monkeypatch.setattr(cache, "version_fingerprint", lambda: changed)
    monkeypatch.setenv("SYMGRAD_CACHE_DEBUG", "1")
    cache.MODULES.memo.clear()
    f1 = sg.compile(base)
    err = capsys.readouterr().err
    assert f1.key != f0.key
    assert f"miss {f1.key}" in err and "versions (symgrad/SymPy/NumPy/Python)" in err
    np.testing.assert_allclose(f1(X), f0(X))


def test_template_change_misses(cache_env, capsys, monkeypatch, tmp_path):
    base, _ = _variants()
    f0 = sg.compile(base)
    edited = tmp_path / "templates"
    shutil.copytree(codegen.template_dir(), edited)
    t = edited / "module.py.j2"
    t.write_text(t.read_text().replace("Do not edit:", "Do not edit (edited template):", 1))
    monkeypatch.setattr(codegen, "template_dir", lambda: edited)  # templates are per folder
    monkeypatch.setenv("SYMGRAD_CACHE_DEBUG", "1")
    cache.MODULES.memo.clear()
    f1 = sg.compile(base)
    err = capsys.readouterr().err
    assert f1.key != f0.key and f"miss {f1.key}" in err and "templates" in err
    assert "(edited template)" in f1.source and "(edited template)" not in f0.source


_FRESH_PROCESS = textwrap.dedent("""
    import sys, numpy as np, symgrad as sg, symgrad.api as api
    from symgrad.runtime import cache
    if sys.argv[1] == "forbid":
        def boom(*a, **k):
            raise AssertionError("a cache hit must not differentiate or plan")
        api.gradients = api.plan = api.render = boom
    x = sg.input("x", shape=(3,))
    w = sg.param("w", shape=(3,))
    loss = sg.sum((x * w - sg.constant(np.full(3, 2.0))) ** 2) * 3.5
    f = sg.compile([loss, *sg.grad(loss, [w])])
    out = f(np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.25, -0.75]))
    print("KEY", f.key, cache.version_fingerprint())
    print("OUT", repr(float(out[0])), repr(out[1].tolist()))
""")


def test_hit_in_a_fresh_process_without_differentiating(cache_env):
    def run(mode):
        r = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, mode], capture_output=True,
                           text=True, env=_env(cache_env, SYMGRAD_CACHE_DEBUG=1), timeout=120)
        assert r.returncode == 0, r.stderr
        return r
    for attempt in range(3):  # another engineer saving a symgrad file changes the version
        first, second = run("allow"), run("forbid")
        k1 = first.stdout.split("KEY ")[1].split()
        k2 = second.stdout.split("KEY ")[1].split()
        if k1[1] == k2[1]:
            break
    assert k1[0] == k2[0]
    assert f"miss {k1[0]}" in first.stderr and f"stored {k1[0]}" in first.stderr
    assert f"hit {k1[0]}" in second.stderr and "miss" not in second.stderr
    want = reference(2.0)
    out = second.stdout.split("OUT ")[1].split(" ", 1)
    assert float(out[0]) == pytest.approx(want[0], rel=1e-13)
    np.testing.assert_allclose(eval(out[1]), want[1], rtol=1e-13)  # noqa: S307 - our output


def test_same_outputs_same_key_after_the_gradient_was_forced(cache_env):
    """A gradient keys (and picks its inputs) by its recipe, forced or not: compiling the
    same outputs twice in one process is one entry, not two."""
    x = sg.input("x", shape=(3,))
    w = sg.param("w", shape=(3,))
    loss = sg.sum(w**2 + x)
    g = sg.grad(loss, [w])[0]
    f1 = sg.compile({"loss": loss, "g": g})
    str(g)  # forces the gradient's tree
    f2 = sg.compile({"loss": loss, "g": g})
    assert f1.key == f2.key and f1.inputs == f2.inputs == ["x", "w"]
    assert len(entry_files(cache_env)) == 1


def test_debug_log_is_silent_by_default(cache_env, capsys):
    sg.compile(model(4.0))
    cache.MODULES.memo.clear()
    sg.compile(model(4.0))
    assert "symgrad cache" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# 4. The directory
# ---------------------------------------------------------------------------------------


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
def test_directory_is_created_private(cache_env):
    old = os.umask(0)  # even with a permissive umask
    try:
        f = sg.compile(model(5.0))
    finally:
        os.umask(old)
    assert stat.S_IMODE(cache_env.stat().st_mode) == 0o700
    assert stat.S_IMODE(f.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722, 0o1777])
def test_directory_writable_by_others_is_refused(mode, cache_env):
    cache_env.mkdir()
    os.chmod(cache_env, mode)
    with pytest.raises(sg.CacheError, match="writable by other users") as err:
        sg.compile(model(6.0))
    assert str(cache_env) in str(err.value) and "chmod 700" in str(err.value)
    assert entry_files(cache_env) == []
    os.chmod(cache_env, 0o700)
    assert correct(sg.compile(model(6.0))(X, W), 6.0)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give the directory away")
def test_directory_of_another_user_is_refused(cache_env):
    cache_env.mkdir(mode=0o700)
    os.chown(cache_env, 65534, 65534)
    with pytest.raises(sg.CacheError, match="another user"):
        sg.compile(model(6.5))


def _unwritable(kind: str, tmp_path: Path) -> Path:
    if kind == "a file":
        p = tmp_path / "not-a-dir"
        p.write_text("x")
        return p
    if kind == "inside a file":
        p = tmp_path / "file"
        p.write_text("x")
        return p / "cache"
    if kind == "inside a read-only directory":
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o500)
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        return ro / "cache"
    if kind == "read-only directory":
        ro = tmp_path / "ro-cache"
        ro.mkdir()
        os.chmod(ro, 0o500)
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        return ro
    if kind == "inside /proc":
        if not Path("/proc/self").exists():
            pytest.skip("no /proc")
        return Path("/proc/symgrad-cache-test")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["a file", "inside a file", "inside a read-only directory",
                                  "read-only directory", "inside /proc"])
def test_unwritable_cache_falls_back_to_memory_with_one_warning(kind, tmp_path, monkeypatch):
    d = _unwritable(kind, tmp_path)
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(d))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fs = [sg.compile(model(float(v))) for v in (8.0, 9.0, 8.0)]
        results = [f(X, W) for f in fs]
    cache_warnings = [w for w in caught if issubclass(w.category, cache.CacheWarning)]
    assert len(cache_warnings) == 1, [str(w.message) for w in caught]
    assert "in memory only" in str(cache_warnings[0].message)
    assert str(d) in str(cache_warnings[0].message)
    assert all(f.path is None for f in fs)
    assert correct(results[0], 8.0) and correct(results[1], 9.0) and correct(results[2], 8.0)
    assert fs[0].key == fs[2].key  # the memory cache still serves hits


# ---------------------------------------------------------------------------------------
# 4b. python -m symgrad
# ---------------------------------------------------------------------------------------


def test_cli_cache_info_and_clear(cache_env, capsys):
    assert cli_main(["cache", "info"]) == 0
    assert "entries:   0" in capsys.readouterr().out
    fs = [sg.compile(model(float(v))) for v in (1.0, 2.0, 3.0)]
    (cache_env / fs[0].key[:2] / f".{fs[0].key[:16]}.x.tmp").write_text("partial")
    assert cli_main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"directory: {cache_env}" in out and "entries:   3" in out
    total = sum(f.path.stat().st_size for f in fs)
    assert f"({total} bytes)" in out
    for f in fs:
        line = next(ln for ln in out.splitlines() if ln.startswith(f.key))
        assert str(f.path.stat().st_size) in line and line.rstrip().endswith("ok")
        assert re.search(r"\s\d+(\.\d)?[smhd]\s", line)  # the last use (any unit: no timing)
    assert "temp files left by interrupted writers: 1" in out
    assert "compute: " in out and "x: input (3,) float64" in out  # which function each holds
    fs[1].path.write_text("garbage")
    cli_main(["cache", "info"])
    assert "NOT AUTHENTIC" in capsys.readouterr().out
    assert cli_main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    # only what verifies is symgrad's for sure: the garbage under an entry's name stays
    assert f"removed 2 entries from {cache_env}" in out and str(fs[1].path) in out
    assert entry_files(cache_env) == [fs[1].path] and temp_files(cache_env) == []
    fs[1].path.unlink()
    cli_main(["cache", "info"])
    assert "entries:   0" in capsys.readouterr().out
    assert cli_main(["cache", "clear"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    # after clear, compiling works again and writes a fresh entry
    assert correct(sg.compile(model(1.0))(X, W), 1.0) and len(entry_files(cache_env)) == 1


def test_cli_clear_touches_only_symgrad_files(cache_env, capsys):
    sg.compile(model(1.0))
    mine = cache_env / "README.txt"
    mine.write_text("not symgrad's")
    foreign = cache_env / unused_subdir(cache_env)
    foreign.mkdir()
    other = foreign / "notes.py"
    other.write_text("x = 1")
    cli_main(["cache", "clear"])
    assert "removed 1 entry" in capsys.readouterr().out
    assert mine.exists() and other.exists()


def test_cli_help_and_errors(capsys):
    for argv in (["--help"], ["cache", "--help"], ["cache", "info", "--help"],
                 ["show", "--help"]):
        with pytest.raises(SystemExit) as e:
            cli_main(argv)
        assert e.value.code == 0
    out = capsys.readouterr().out
    assert "cache" in out and "show" in out and "MODULE:ATTR" in out and "--path" in out
    with pytest.raises(SystemExit) as e:
        cli_main([])
    assert e.value.code == 2


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
def test_cli_refuses_unsafe_directory(cache_env, capsys):
    cache_env.mkdir()
    os.chmod(cache_env, 0o777)
    sys_model = cache_env.parent / "m.py"
    sys_model.write_text("import symgrad as sg\nx = sg.input('x', shape=(2,))\ny = sg.sum(x)\n")
    assert cli_main(["show", f"{sys_model}:y"]) == 2
    assert "writable by other users" in capsys.readouterr().err


_MODEL_FILE = textwrap.dedent("""
    import numpy as np
    import symgrad as sg
    x = sg.input("x", shape=(3,))
    w = sg.param("w", shape=(3,))
    loss = sg.sum((x * w - 1.0) ** 2)
    outputs = {"loss": loss, "grad_w": sg.grad(loss, [w])[0]}
    as_list = [loss, sg.exp(w)]
    f = sg.compile(outputs)
    not_a_model = 42
""")


def test_cli_show(cache_env, tmp_path, capsys, monkeypatch):
    path = tmp_path / "my_model.py"
    path.write_text(_MODEL_FILE)
    for attr in ("loss", "outputs", "as_list", "f"):
        assert cli_main(["show", f"{path}:{attr}"]) == 0
        out = capsys.readouterr().out
        assert "# formulas" in out and "def compute(" in out and "import numpy as np" in out
        assert "(-1.0 + w*x)**2" in out or "(w*x - 1.0)**2" in out
    cli_main(["show", f"{path}:outputs", "--path"])
    p = Path(capsys.readouterr().out.strip())
    assert p.exists() and p.parent.parent == cache_env
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli_main(["show", "my_model:f", "--path"]) == 0  # a dotted module name
    assert Path(capsys.readouterr().out.strip()) == p
    with pytest.raises(SystemExit, match="int"):
        cli_main(["show", f"{path}:not_a_model"])
    with pytest.raises(SystemExit, match="no attribute"):
        cli_main(["show", f"{path}:missing"])
    with pytest.raises(SystemExit, match="MODULE:ATTR"):
        cli_main(["show", str(path)])


def test_cli_as_a_module(cache_env, tmp_path):
    """The real entry point, in a fresh interpreter."""
    path = tmp_path / "m.py"
    path.write_text(_MODEL_FILE)
    env = _env(cache_env)
    r = subprocess.run([sys.executable, "-m", "symgrad", "show", f"{path}:outputs", "--path"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).exists()
    r = subprocess.run([sys.executable, "-m", "symgrad", "cache", "info"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "entries:   1" in r.stdout  # f = sg.compile(outputs) at import: the same key
    r = subprocess.run([sys.executable, "-m", "symgrad", "cache", "clear"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "removed 1 entry" in r.stdout
