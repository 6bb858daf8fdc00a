"""Command line: ``python -m symgrad cache info|clear|prune`` and ``python -m symgrad show``.

::

    python -m symgrad cache info          # directory, entries, total size, per-entry key/size/age
    python -m symgrad cache clear         # remove every entry (asks nothing), say how many
    python -m symgrad cache prune --max-size 500M --max-age 30   # evict old / LRU entries
    python -m symgrad show model.py:loss  # formulas and generated source of a Tensor, a list
                                          # or dict of Tensors, or a compiled function
    python -m symgrad show pkg.mod:f --path   # where it is cached

The cache directory is ``SYMGRAD_CACHE_DIR`` or the user cache directory (``--dir``
overrides both).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _directory(args):
    from .runtime.cache import cache_dir
    return Path(args.dir).expanduser() if args.dir else cache_dir()


def cmd_cache_info(args) -> int:
    """``cache info``: print the directory, the key's state and every entry.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (``dir``: the cache directory, or None for the default).

    Returns
    -------
    int
        The exit status (0).
    """
    from .runtime.cache import info
    d = _directory(args)
    data = info(d)
    print(f"directory: {d}")
    if not data["exists"]:
        print("entries:   0 (the directory does not exist yet)")
        return 0
    es = data["entries"]
    print(f"entries:   {len(es)}")
    print(f"size:      {_size(data['total_size'])} ({data['total_size']} bytes)")
    print(f"key:       {data['key']}")
    if data["temp_files"]:
        print(f"temp files left by interrupted writers: {data['temp_files']} "
              f"(removed by 'cache clear')")
    for reason in data["untrusted"]:
        print(f"not used:  {reason} (never read; remove it if it is not yours to keep)")
    if es:
        print()
        print(f"{'key':<64}  {'size':>10}  {'used':>6}  status / function")
        for e in sorted(es, key=lambda e: e["atime"], reverse=True):
            status = "ok" if e["valid"] else "NOT AUTHENTIC (never run; rebuilt on next use)"
            print(f"{e['key']:<64}  {e['size']:>10}  {_age(e['age']):>6}  {status}")
            if e["valid"]:
                arrays = f" [arrays: {', '.join(e['arrays'])}]" if e["arrays"] else ""
                print(f"    {e['function']}{arrays}")
    return 0


def cmd_cache_clear(args) -> int:
    """``cache clear``: remove every entry the cache can verify and say what was left.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (``dir``: the cache directory, or None for the default).

    Returns
    -------
    int
        The exit status (0).
    """
    from .runtime.cache import clear_report
    d = _directory(args)
    r = clear_report(d)
    n = r["removed"]
    print(f"removed {n} {'entry' if n == 1 else 'entries'} from {d}")
    if r["temp_files"]:
        print(f"removed {r['temp_files']} temp file(s) left by interrupted writers")
    if r["left"]:
        print(f"left {len(r['left'])} file(s) named like entries that do not verify under this "
              f"cache's key (not provably symgrad's; 'cache prune' removes them once old):")
        for p in r["left"]:
            print(f"    {p}")
    for reason in r["untrusted"]:
        print(f"skipped:   {reason}")
    return 0


def _parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GB``, ``800KiB``, ``123`` (bytes) -> bytes (K/M/G/T are powers
    of 1000, KiB/MiB/GiB/TiB of 1024)."""
    t = text.strip().upper()
    base = 1024 if t.endswith("IB") else 1000
    t = t[:-2] if t.endswith("IB") else t.rstrip("B")
    powers = {"K": 1, "M": 2, "G": 3, "T": 4}
    try:
        if t and t[-1] in powers:
            return int(float(t[:-1]) * base ** powers[t[-1]])
        return int(float(t))
    except ValueError:
        raise SystemExit(f"symgrad cache prune: --max-size {text!r} is not a size (e.g. 500M, "
                         f"2G, 123456)") from None


def cmd_cache_prune(args) -> int:
    """``cache prune``: evict old, then least recently used, entries.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line: ``dir`` (the cache directory, or None for the default),
        ``max_size`` and ``max_age`` (the limits given, or None for the defaults).

    Returns
    -------
    int
        The exit status (0).

    Raises
    ------
    SystemExit
        For a size that is not one, or a negative limit (with the message).
    """
    from .runtime.cache import DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_SIZE, prune
    d = _directory(args)
    max_size = _parse_size(args.max_size) if args.max_size is not None else DEFAULT_MAX_SIZE
    max_age = args.max_age if args.max_age is not None else DEFAULT_MAX_AGE_DAYS
    if max_size < 0 or max_age < 0:
        raise SystemExit("symgrad cache prune: --max-size and --max-age must not be negative")
    r = prune(d, max_size=max_size, max_age_days=max_age)
    print(f"removed {r['removed']} {'entry' if r['removed'] == 1 else 'entries'} "
          f"({_size(r['freed'])}) from {d}: unused for more than {max_age:g} days, or the "
          f"least recently used beyond {_size(max_size)}")
    print(f"kept {r['kept']} ({_size(r['size'])})")
    return 0


def _import_target(spec: str, builtin_names=()):
    """``path/to/file.py:ATTR`` or ``dotted.module:ATTR`` -> the object."""
    if ":" not in spec:
        raise SystemExit(f"symgrad show: {spec!r} is not a built-in model "
                         f"(built-ins: {', '.join(builtin_names)}) nor MODULE:ATTR (a .py "
                         f"path or a dotted module name, a colon, an attribute)")
    mod_part, _, attr = spec.rpartition(":")
    if mod_part.endswith(".py") or os.sep in mod_part or "/" in mod_part:
        path = Path(mod_part).resolve()
        if not path.exists():
            raise SystemExit(f"symgrad show: no such file {path}")
        sys.path.insert(0, str(path.parent))
        name = f"symgrad_show_{path.stem}"
        spec_ = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec_)
        sys.modules[name] = module
        spec_.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(mod_part)
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"symgrad show: {mod_part} has no attribute {attr!r}") from None
    return obj


def _builtin_models() -> dict:
    """The reference workloads (docs/workloads.md), each a function returning its loss."""
    import symgrad as sg

    def w0():
        x, target, a = sg.input("x"), sg.input("target"), sg.param("A")
        return (x * a - target) ** 2

    def w1():
        x, y = sg.input("x", ("N", 2)), sg.input("y", ("N", 1))
        w1, w2 = sg.param("w1", (2, 3)), sg.param("w2", (3, 1))
        return sg.mean(((x @ w1) @ w2 - y) ** 2)

    def w2():
        x, y = sg.input("x"), sg.input("y")
        return x ** 2 * y + y + 2  # W2.2; differentiated with respect to x and y

    def w3():
        x = sg.input("x", ("N", 784), "float32")
        y = sg.input("y", ("N", 10), "float32")
        sizes, h = [784, 256, 128, 10], x
        for i in range(1, 4):
            w = sg.param(f"w{i}", (sizes[i - 1], sizes[i]), "float32")
            b = sg.param(f"b{i}", (sizes[i],), "float32")
            h = h @ w + b
            h = sg.relu(h) if i < 3 else h
        return sg.mean((y - h) ** 2)

    def w4():
        inp, target = sg.input("input", (5, 2)), sg.input("target", (5, 1))
        return sg.l2_loss(inp @ sg.param("weights", (2, 1)) - target)

    return {"w0": w0, "w1": w1, "w2": w2, "w3": w3, "w4": w4}


def _with_gradients(loss, sources=None):
    """A scalar loss -> {"loss": loss, "grad_<leaf>": ...} over ``sources`` (default: its
    params, else its inputs)."""
    from .api import grad, leaves_of
    from .expr import Tensor
    if sources is None:
        leaves = sorted(leaves_of([loss]), key=lambda s: (s.role != "param", s.name))
        params = [s for s in leaves if s.role == "param"] or leaves
        sources = [Tensor(s, s.shape, s.dtype) for s in params]
    names = [_leaf_name(t) or f"arg{i}" for i, t in enumerate(sources, start=1)]
    return {"loss": loss, **{f"grad_{n}": g for n, g in zip(names, grad(loss, sources))}}


def _leaf_name(t):
    """The name of an ``sg.input``/``sg.param`` leaf Tensor, else None."""
    name = getattr(t.expr, "name", None)
    return name if isinstance(name, str) and getattr(t.expr, "role", None) else None


def _loss_and_sources(obj):
    """``(loss, w1, w2, ...)`` -- a scalar loss followed by the leaves to differentiate
    against, the PyTorch-style return of a model-building function -- else None."""
    from .expr import Tensor
    if not (isinstance(obj, (tuple, list)) and len(obj) >= 2
            and all(isinstance(t, Tensor) for t in obj)):
        return None
    loss, *sources = obj
    if loss.shape != () or not all(_leaf_name(t) for t in sources):
        return None
    return loss, sources


def cmd_show(args) -> int:
    """``show``: print a model's formulas and generated source (or, with ``--path``, where
    its module is cached).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line: ``target`` (a built-in model or ``MODULE:ATTR``) and
        ``path`` (print only where the module is cached).

    Returns
    -------
    int
        The exit status (0).

    Raises
    ------
    SystemExit
        For a model that is not built in and cannot be imported, or is not something to
        compile (with the message).
    """
    from .api import CompiledFunction, compile as sg_compile
    from .expr import Tensor
    builtins_ = _builtin_models()
    obj = (builtins_[args.target]() if args.target in builtins_
           else _import_target(args.target, sorted(builtins_)))
    if callable(obj) and not isinstance(obj, CompiledFunction) and not hasattr(obj, "source"):
        obj = obj()  # a function that builds the model
    if isinstance(obj, Tensor) and obj.shape == ():
        obj = _with_gradients(obj)
    elif _loss_and_sources(obj) is not None:
        obj = _with_gradients(*_loss_and_sources(obj))
    if isinstance(obj, CompiledFunction) or hasattr(obj, "source") and hasattr(obj, "key") \
            and hasattr(obj, "path"):
        f = obj
    elif isinstance(obj, Tensor) or (isinstance(obj, (list, tuple)) and obj
                                     and all(isinstance(t, Tensor) for t in obj)) \
            or (isinstance(obj, dict) and obj and all(isinstance(t, Tensor)
                                                      for t in obj.values())):
        f = sg_compile(obj)
    else:
        raise SystemExit(f"symgrad show: {args.target} is a {type(obj).__name__}; expected a "
                         f"symgrad Tensor, a list or dict of Tensors, or a compiled function")
    if args.path:
        print(f.path if f.path is not None else "(not on disk: the cache is in memory only)")
        return 0
    formulas = getattr(f, "formulas", None)
    if formulas:
        print("# formulas")
        for name, text in formulas.items():
            print(f"{name} = {text}")
        print()
    print(f"# generated source ({f.path or 'in memory'})")
    print(f.source, end="" if f.source.endswith("\n") else "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``cache info|clear|prune`` and ``show``.

    Returns
    -------
    argparse.ArgumentParser
        Each subcommand sets ``func``, the ``cmd_*`` function that runs it.
    """
    p = argparse.ArgumentParser(
        prog="python -m symgrad",
        description="symgrad: a symbolic differentiation compiler for numpy. Inspect and clear "
                    "the cache of generated modules, or show what a model compiles to.",
        epilog="The cache directory is $SYMGRAD_CACHE_DIR, else the user cache directory.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    cache = sub.add_parser("cache", help="inspect or clear the cache of generated modules",
                           description="Inspect or clear the cache of generated modules.")
    cache_sub = cache.add_subparsers(dest="action", metavar="ACTION")
    cache_sub.required = True
    for name, fn, text in [
            ("info", cmd_cache_info, "print the directory, the number of entries, their total "
                                     "size, and each entry's key, size, last use, status and "
                                     "function (outputs and inputs)"),
            ("clear", cmd_cache_clear, "remove every cached module this cache can verify "
                                       "(asks nothing), and say how many were removed"),
            ("prune", cmd_cache_prune, "remove entries unused for --max-age days, then the "
                                       "least recently used until the total is under "
                                       "--max-size")]:
        sp = cache_sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sp.add_argument("--dir", help="use this cache directory instead of the default")
        if name == "prune":
            sp.add_argument("--max-size", metavar="SIZE", default=None,
                            help="keep the total at most SIZE (e.g. 500M, 2G; default 500M)")
            sp.add_argument("--max-age", metavar="DAYS", type=float, default=None,
                            help="remove entries unused for more than DAYS (default 30)")
        sp.set_defaults(func=fn)

    show = sub.add_parser(
        "show", help="print the formulas and generated source of a model",
        description="Show a built-in model (w0..w4), or import MODULE (a .py path or a dotted "
                    "module name) and take ATTR (a Tensor, a list or dict of Tensors, a "
                    "compiled function, or a function building one of these); compile it if "
                    "needed and print its formulas and generated numpy source. A scalar loss "
                    "is shown with its gradients with respect to every parameter; a tuple "
                    "(loss, w1, w2, ...) with its gradients with respect to w1, w2, ...")
    show.add_argument("target", metavar="MODEL",
                      help="a built-in model (w0, w1, w2, w3, w4: the reference workloads), or "
                           "MODULE:ATTR, e.g. examples/model.py:loss or mypkg.models:build "
                           "(a scalar loss, or a function returning (loss, *params), is "
                           "shown with its gradients)")
    show.add_argument("--path", action="store_true",
                      help="print only where the generated module is cached")
    show.set_defaults(func=cmd_show, dir=None)
    return p


def main(argv=None) -> int:
    """Run ``python -m symgrad``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, or 2 when the cache directory is unsafe (the reason is
        printed to stderr).
    """
    args = build_parser().parse_args(argv)
    from .runtime.cache import CacheError
    try:
        return args.func(args)
    except CacheError as err:
        print(f"symgrad: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
