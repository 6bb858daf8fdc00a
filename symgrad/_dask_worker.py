"""The worker side of :mod:`symgrad.dask`: what runs on a Dask worker, with numpy only.

Promises:

* This file imports numpy and Dask's ``distributed`` (which runs it), never symgrad. The
  client does not import it as a module: :mod:`symgrad.dask` reads this source and executes
  it in a namespace of its own (``__name__ == "symgrad_dask_worker"``, a module that exists
  nowhere), so the functions and the plugin class below are pickled *by value* (cloudpickle)
  and travel to the workers with the task: symgrad need not be installed there.
* A generated module travels as its source text and its stored arrays (``_DATA``), is
  executed once per worker (:class:`Modules`, a worker plugin) in a fresh namespace whose
  ``__import__`` admits numpy only, and its function is then called on the data chunks the
  worker holds.
* Partial results are ``(rows, [loss, *gradients])``; ``weighted`` multiplies a chunk's
  values by its number of rows first, so that the sum over chunks divided by the total number
  of rows is the mean over the whole dataset (for a loss that is a mean over its batch).
"""

import builtins

import numpy as np
from distributed import WorkerPlugin, get_worker


def _numpy_only(name, globals=None, locals=None, fromlist=(), level=0):
    # numpy's C code imports its own helpers lazily (numpy._core._methods for x.sum()) through
    # the calling frame's __import__: numpy and its submodules pass, anything else is refused
    if level != 0 or not (name == "numpy" or name.startswith("numpy.")):
        raise ImportError(f"a symgrad-generated module may import only numpy, not {name!r}")
    return builtins.__import__(name, globals, locals, fromlist, level)


def load_function(source, arrays, fn_name):
    """Execute a generated module's ``source`` in a fresh namespace; return ``fn_name``.

    Parameters
    ----------
    source : str
        The module's text, as :mod:`symgrad.dask` shipped it.
    arrays : dict
        Its stored constants (``_DATA``), name to array.
    fn_name : str
        The function to return.

    Returns
    -------
    callable
    """
    safe_builtins = dict(vars(builtins))
    safe_builtins["__import__"] = _numpy_only
    namespace = {"__name__": "symgrad_generated", "__builtins__": safe_builtins,
                 "_DATA": dict(arrays)}
    exec(compile(source, f"<symgrad module {fn_name}>", "exec"), namespace)  # noqa: S102
    return namespace[fn_name]


class Modules(WorkerPlugin):
    """A worker plugin holding generated modules, executed once on every worker.

    Parameters
    ----------
    specs : dict
        Label to ``(source, arrays, fn_name)``.
    """

    def __init__(self, specs):
        self.specs = specs
        self.functions = {}

    def setup(self, worker):
        """Execute every module on ``worker`` (also on a worker that joins later)."""
        self.functions = {label: load_function(*spec) for label, spec in self.specs.items()}

    def function(self, label):
        """The function of module ``label`` (executed now if setup has not run here)."""
        fn = self.functions.get(label)
        if fn is None:
            fn = self.functions[label] = load_function(*self.specs[label])
        return fn


def _rows(chunk):
    return int(np.shape(chunk[0])[0])


def partial_sums(plugin_name, label, weighted, params, constants, *chunks):
    """The sum over ``chunks`` of a generated function's outputs, on this worker.

    Parameters
    ----------
    plugin_name : str
        The :class:`Modules` plugin that holds the function.
    label : str
        Which of its functions (``"grad"``: loss and gradients; ``"loss"``: the loss).
    weighted : bool
        Multiply each chunk's outputs by its number of rows (a mean loss).
    params : tuple of numpy.ndarray
        The parameter values, in the function's order (after the data inputs).
    constants : tuple of numpy.ndarray
        Inputs without a batch axis, the same for every chunk.
    *chunks : tuple of numpy.ndarray
        One tuple of blocks per chunk (the batch inputs' rows of that chunk).

    Returns
    -------
    tuple
        ``(rows, [sum of each output])``; ``(0, None)`` when every chunk is empty.
    """
    fn = get_worker().plugins[plugin_name].function(label)
    rows, total = 0, None
    for chunk in chunks:
        n = _rows(chunk)
        if n == 0:  # an empty chunk adds nothing (and its mean would be nan)
            continue
        values = [np.asarray(v) for v in fn(*chunk, *constants, *params)]
        if weighted:
            values = [v * n for v in values]  # a Python int keeps float32 float32
        total = values if total is None else [a + b for a, b in zip(total, values)]
        rows += n
    return rows, total


def combine(a, b):
    """Add two partial results ``(rows, values)`` (one round of the tree reduction)."""
    if a[1] is None:
        return b
    if b[1] is None:
        return a
    return a[0] + b[0], [x + y for x, y in zip(a[1], b[1])]


def gather_chunk(*blocks):
    """One chunk's blocks of every batch input, as one tuple held by one worker."""
    return tuple(np.asarray(b) for b in blocks)


def reduction_probe(plugin_name, params, constants, chunk, rows):
    """The loss on the first ``rows`` rows of ``chunk``, and on those rows each taken twice.

    A loss that is a mean over its rows is the same on both; a sum over its rows doubles.
    :mod:`symgrad.dask` compares the two with the ``reduction`` it was given, once.

    Returns
    -------
    tuple of float
        ``(loss on the rows, loss on the rows twice)``.
    """
    fn = get_worker().plugins[plugin_name].function("loss")
    part = tuple(np.asarray(b)[:rows] for b in chunk)
    twice = tuple(np.concatenate([b, b]) for b in part)
    return (float(fn(*part, *constants, *params)[0]),
            float(fn(*twice, *constants, *params)[0]))
