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
