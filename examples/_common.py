"""Helpers shared by the example scripts (plotting without a screen, showing generated code)."""

from __future__ import annotations


def _pyplot():
    """matplotlib.pyplot with a file-only backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _function_body(source: str, name: str = "train_step", lines: int = 30) -> str:
    """The ``def name(...)`` block of a generated module (its first ``lines`` lines)."""
    text = source[source.index(f"def {name}("):]
    return "\n".join(text.splitlines()[:lines])
