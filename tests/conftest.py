"""Shared test configuration: every test runs against a private, throwaway symgrad cache.

``SYMGRAD_CACHE_DIR`` is set as soon as this file is imported, before any test module is
collected (some compile at import time), to a fresh directory created private to the user
(``mkdtemp`` makes it 0700, as the cache requires). Subprocesses started by the tests
inherit it. The session fixture restores it for every test (a test may point it elsewhere
with ``monkeypatch``) and removes the directory at the end, so no test ever reads or writes
the user's own cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_CACHE = tempfile.mkdtemp(prefix="symgrad-test-cache-")
os.environ["SYMGRAD_CACHE_DIR"] = _SESSION_CACHE


@pytest.fixture(scope="session", autouse=True)
def symgrad_cache_dir():
    """The session's private cache directory (also in ``os.environ``)."""
    os.environ["SYMGRAD_CACHE_DIR"] = _SESSION_CACHE
    yield Path(_SESSION_CACHE)
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Every compiled function is checked against its no-reuse twin
# ---------------------------------------------------------------------------------------
#
# The in-place buffer plan is where generated code goes silently wrong (a buffer read after
# it was overwritten gives the right numbers until magnitudes grow). So every function the
# suite compiles and calls is also compiled with ``inplace=False`` (every value in its own
# array) and called with the same inputs; the two must agree. SYMGRAD_TWIN_CHECK=0 turns
# this off (e.g. to time the suite without it).

import numpy as _np  # noqa: E402
import numpy.testing as _npt  # noqa: E402  (now: a child forked as nobody cannot import it)

import symgrad.api as _api  # noqa: E402

_ORIGINAL_CALL = _api.CompiledFunction.__call__
_TWINS: dict = {}
#: twins live in a cache of their own: tests that count the entries of theirs see none
_TWIN_CACHE = tempfile.mkdtemp(prefix="symgrad-twin-cache-")


def _flat_results(result) -> list:
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def assert_same_results(got, want, context: str) -> None:
    """In-place and no-reuse results agree: same shapes and dtypes, nan where nan, values
    equal up to rounding. The two forms may associate a product differently, and where terms
    cancel (the gradient of sum(softmax) is exactly 0) what is left is round-off of terms of
    order one: so a relative tolerance, plus an absolute one of a few hundred ulps of
    max(1, the largest value). A buffer read after it was overwritten is far outside both."""
    got, want = _flat_results(got), _flat_results(want)
    assert len(got) == len(want), context
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = _np.asarray(g), _np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, f"{context}: output {i}"
        if g.dtype.kind in "fc":
            eps = _np.finfo(g.dtype).eps
            finite = w[_np.isfinite(w)]
            scale = max(1.0, float(_np.abs(finite).max())) if finite.size else 1.0
            rtol = 1e-9 if g.dtype == _np.float64 else 1e-4
            _npt.assert_allclose(g, w, rtol=rtol, atol=256 * eps * scale,
                                        equal_nan=True,
                                        err_msg=f"{context}: output {i} (in place vs twin)")
        else:
            _npt.assert_array_equal(g, w, err_msg=f"{context}: output {i}")


def _twin_checked_call(self, /, *args, **kwargs):
    result = _ORIGINAL_CALL(self, *args, **kwargs)
    rebuild = getattr(self, "rebuild", None)
    if rebuild is None or os.environ.get("SYMGRAD_TWIN_CHECK", "1") == "0" \
            or rebuild.keywords.get("inplace") is False:
        return result
    twin = _TWINS.get(self.key)
    if twin is None:
        tested_dir = os.environ.get("SYMGRAD_CACHE_DIR")
        os.environ["SYMGRAD_CACHE_DIR"] = _TWIN_CACHE
        try:
            twin = _TWINS[self.key] = rebuild(inplace=False)
        finally:
            if tested_dir is None:
                del os.environ["SYMGRAD_CACHE_DIR"]
            else:
                os.environ["SYMGRAD_CACHE_DIR"] = tested_dir
    assert_same_results(result, _ORIGINAL_CALL(twin, *args, **kwargs),
                        f"compiled {self.output_names} vs its no-reuse twin")
    return result


@pytest.fixture(scope="session", autouse=True)
def compare_with_no_reuse_twin():
    """Patch CompiledFunction.__call__ for the session (see above)."""
    _api.CompiledFunction.__call__ = _twin_checked_call
    yield
    _api.CompiledFunction.__call__ = _ORIGINAL_CALL
    shutil.rmtree(_TWIN_CACHE, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Shared fixtures: a private cache per test or per module, a seeded generator
# ---------------------------------------------------------------------------------------

from symgrad.runtime import cache as _cache  # noqa: E402


def _forget_in_process_state() -> None:
    """What the cache remembers in this process besides the disk: loaded modules (the memo)
    and the warnings it gives only once."""
    _cache.MODULES.memo.clear()
    _cache._WARNED.clear()


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    """A fresh private cache directory for one test, as a :class:`~pathlib.Path`.

    ``SYMGRAD_CACHE_DIR`` points at it (not yet created: the cache creates it private on
    first use), the cache's debug and fault-injection variables are unset, and the
    in-process memo and the once-only warnings are cleared before and after the test, so
    every compile of the test goes through this directory. Subprocesses inherit it. Use it
    with ``pytestmark = pytest.mark.usefixtures("cache_env")`` for a whole module.
    """
    d = tmp_path / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(d))
    monkeypatch.delenv("SYMGRAD_CACHE_DEBUG", raising=False)
    monkeypatch.delenv("SYMGRAD_CACHE_TEST_KILL_AT", raising=False)
    monkeypatch.setattr(_cache.MODULES, "_warned_readonly", False)
    _forget_in_process_state()
    yield d
    _forget_in_process_state()


@pytest.fixture(scope="module")
def module_cache_env(tmp_path_factory):
    """One private cache directory shared by the tests of a module, as a
    :class:`~pathlib.Path`.

    For modules whose tests compile the same functions again and again (examples, training
    runs, property tests): they hit what an earlier test of the module generated instead of
    regenerating it, yet never touch the session's cache or another module's. The memo is
    cleared when the module starts and ends, not between its tests.
    """
    d = tmp_path_factory.mktemp("symgrad-module-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMGRAD_CACHE_DIR", str(d))
        _cache.MODULES.memo.clear()
        yield d
        _cache.MODULES.memo.clear()


@pytest.fixture
def rng():
    """A numpy Generator seeded with 0, fresh for each test: the same numbers on every run,
    whichever tests ran before."""
    return _np.random.default_rng(0)


# ---------------------------------------------------------------------------------------
# The ``slow`` marker
# ---------------------------------------------------------------------------------------
#
# Tests marked ``@pytest.mark.slow`` (registered in pyproject.toml) take about ten seconds
# or more and are not the main property tests. They are skipped unless SYMGRAD_SLOW_TESTS=1
# or a ``-m`` expression names ``slow`` (``-m slow`` runs only them; ``-m "not slow"``
# deselects them without a skip line).

def pytest_collection_modifyitems(config, items):
    if os.environ.get("SYMGRAD_SLOW_TESTS") == "1" or "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow: set SYMGRAD_SLOW_TESTS=1 or pass -m slow to run it")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
