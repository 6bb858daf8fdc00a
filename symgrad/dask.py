"""Data-parallel training on a Dask cluster: the data stays chunked on the workers.

    from dask.distributed import Client
    import symgrad.dask

    client = Client(...)                                   # a dask.distributed cluster
    X = dask.array.from_array(x, chunks=(4096, -1))      # chunked along the batch axis only
    Y = dask.array.from_array(y, chunks=(4096, -1))
    trainer = symgrad.dask.DataParallel(loss, sg.optim.Adam(1e-3), {"x": X, "y": Y},
                                        reduction="mean", client=client)
    state = trainer.init({"w1": w1_0, "w2": w2_0})        # an sg.TrainState, on the client
    for i in range(100):
        value = trainer.step(state)                       # full-dataset loss, then the update
    trainer.evaluate(state)                               # the loss over the whole dataset

Promises:

* The data is a Dask array per batch input, chunked along axis 0 (the batch axis) only. It
  is computed once, when the trainer is made, into one block per chunk on the workers (the
  blocks of all inputs for one chunk on the same worker), and never gathered to the client.
* Each step sends the parameters to every worker once (a broadcast of one parameter-sized
  vector per worker), runs the generated loss-and-gradient function on every chunk there,
  sums each worker's chunks locally, then adds the workers' sums pairwise in
  ceil(log2(workers)) rounds (a tree reduction) and brings one parameter-sized result back.
  The client applies the optimizer's update with a generated symgrad training step
  (the same update rule, clipping and weight decay as ``sg.train_step``), so
  ``trainer.optimizer.lr`` may change between steps and the state saves and loads as any
  :class:`~symgrad.train.TrainState`.
* ``reduction`` says what the loss is over a batch. ``"mean"``: a mean over its rows (such
  as ``sg.mean(...)`` over the batch); each chunk's loss and gradients are weighted by the
  chunk's rows and the total divided by the dataset's rows, which is exactly the full-batch
  mean (up to rounding) **only if each chunk's loss is the mean over that chunk**. ``"sum"``:
  a sum over its rows; the chunks' values are added. A loss that is neither (a mean over a
  fixed subset, a batch-dependent normalization, a sum plus a regularizer) is not
  data-parallel in this way: at the first step or evaluation, the loss on a few rows and on
  the same rows taken twice is computed on a worker (a mean stays, a sum doubles), and a loss
  that does not do what ``reduction`` says raises ValueError before any update.
* The generated modules travel to the workers as their source text (and stored constants)
  and run there with numpy only: symgrad need not be installed on the workers. Their
  function is the numpy target of :func:`symgrad.compile` (``target="numpy"``), executed
  once per worker in a fresh namespace that may import numpy and nothing else.
* In float64, training equals single-process full-batch training with ``sg.train_step`` to
  about 1e-13 (the chunks' sums associate differently); ``tests/test_dask.py`` holds it to
  1e-10 on W1 and an MLP shaped like W3.

Optional dependency: ``pip install "symgrad[dask]"`` (``dask[distributed]``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .api import compile as _compile
from .api import default_input_order, grad, leaves_of
from .expr import Tensor, as_tensor, input as _input
from .nodes import TensorSymbol
from .optim import Optimizer
from .shapes import Dim, format_shape
from .train import _check_values, train_step

__all__ = ["DataParallel", "fit", "REDUCTIONS"]

#: what a loss may be over a batch's rows (see the module docstring)
REDUCTIONS = ("mean", "sum")
#: rows of the one-time check of ``reduction`` (the loss on them, and on them twice)
PROBE_ROWS = 64


def _require_distributed():
    try:
        import dask.array  # noqa: F401
        import distributed
    except ImportError:
        raise ImportError("symgrad.dask needs the optional dependency dask[distributed]: "
                          "pip install 'symgrad[dask]' (or pip install 'dask[distributed]')"
                          ) from None
    return distributed


def _worker_namespace() -> dict:
    """The worker-side functions, executed from ``_dask_worker.py``'s source into a namespace
    of their own, so that Dask pickles them by value (see that file's docstring)."""
    if not _WORKER:
        path = Path(__file__).with_name("_dask_worker.py")
        namespace = {"__name__": "symgrad_dask_worker"}
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # noqa: S102
        _WORKER.update(namespace)
    return _WORKER


_WORKER: dict = {}


def _shipped(fn) -> tuple:
    """``(source, arrays, function name)`` of a compiled function, to run on a worker.

    The cache entry's first line (its HMAC tag under this user's key) stays here: the rest
    is the module, which imports numpy only (the allowlist checked it before it ran here).
    """
    source = fn.source
    if source.startswith("# symgrad-entry "):
        source = source.split("\n", 1)[1]
    arrays = {k: np.array(v) for k, v in fn._module.arrays.items()}
    return source, arrays, fn._fn_name


# ---------------------------------------------------------------------------------------
# Checking the data
# ---------------------------------------------------------------------------------------


def _check_batch_input(leaf: TensorSymbol, value) -> None:
    """A Dask array fit for batch input ``leaf``: dtype, rank, fixed dims, chunks."""
    name = leaf.name
    if not leaf.shape or not isinstance(leaf.shape[0], Dim):
        raise ValueError(f"DataParallel: input {name!r} is a Dask array, so it is split along "
                         f"its first axis, but it is declared with shape "
                         f"{format_shape(leaf.shape)}; declare its batch axis symbolic "
                         f"(sg.input({name!r}, ('N', ...)))")
    if value.ndim != len(leaf.shape):
        raise ValueError(f"DataParallel: input {name!r} must have {len(leaf.shape)} axes "
                         f"(shape {format_shape(leaf.shape)}), got shape {value.shape}")
    if value.dtype != leaf.dtype:
        raise TypeError(f"DataParallel: input {name!r} must be {leaf.dtype}, got {value.dtype}")
    for axis, (want, got) in enumerate(zip(leaf.shape, value.shape)):
        if axis and not isinstance(want, Dim) and want != got:
            raise ValueError(f"DataParallel: input {name!r} must have shape "
                             f"{format_shape(leaf.shape)}, got {value.shape}")
    split = [axis for axis in range(1, value.ndim) if len(value.chunks[axis]) > 1]
    if split:
        raise ValueError(
            f"DataParallel: input {name!r} (shape {value.shape}) is chunked along axis "
            f"{split[0]} (chunks {value.chunks}); chunk it along the batch axis (axis 0) only, "
            f"e.g. {name}.rechunk({{{', '.join(f'{a}: -1' for a in split)}}})")


def _split_data(data: Mapping, data_leaves: list) -> tuple:
    """``(batch leaves, their Dask arrays, constant leaves, their arrays)`` from ``data``."""
    import dask.array as da
    if not isinstance(data, Mapping):
        raise TypeError("DataParallel: give the data as a dict {input name: Dask array}")
    names = [leaf.name for leaf in data_leaves]
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"DataParallel: no data for input(s) {missing}; the loss reads "
                         f"{names}")
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ValueError(f"DataParallel: the loss reads no input named {unknown}; its inputs "
                         f"are {names}")
    batch, arrays, const, values = [], [], [], []
    for leaf in data_leaves:
        value = data[leaf.name]
        if isinstance(value, da.Array):
            _check_batch_input(leaf, value)
            batch.append(leaf)
            arrays.append(value)
        else:  # no batch axis: the same array goes to every chunk
            const.append(leaf)
            values.append(np.asarray(value, dtype=leaf.dtype))
    if not batch:
        raise ValueError(f"DataParallel: none of the inputs {names} is a Dask array; give "
                         f"the data as Dask arrays chunked along the batch axis")
    rows = arrays[0].shape[0]
    for leaf, a in zip(batch[1:], arrays[1:]):
        if a.shape[0] != rows:
            raise ValueError(f"DataParallel: input {leaf.name!r} has {a.shape[0]} rows but "
                             f"{batch[0].name!r} has {rows}")
    # every input's chunk i must hold the same rows: follow the first input's chunks
    arrays = [a if a.chunks[0] == arrays[0].chunks[0] else a.rechunk({0: arrays[0].chunks[0]})
              for a in arrays]
    return batch, arrays, const, values


# ---------------------------------------------------------------------------------------
# The update, applied on the client by a generated training step
# ---------------------------------------------------------------------------------------


def _update_step(plist: list, optimizer: Optimizer):
    """A training step whose gradient of each parameter is an input: the update rule of
    ``optimizer`` (with its clipping and weight decay) applied to a given gradient.

    The surrogate loss ``sum(g_p * p)`` over the parameters has gradient exactly ``g_p``
    with respect to ``p``, so ``sg.train_step`` on it updates the parameters from the
    gradients the workers computed, in the same generated code as a single-process step.
    """
    taken = {p.name for p in plist}
    grads = []
    for p in plist:
        name = f"dask_grad_{p.name}"
        while name in taken:
            name += "_"
        taken.add(name)
        grads.append(_input(name, p.shape, p.dtype_name))
    params = [Tensor(p, p.shape, p.dtype) for p in plist]
    terms = [(g * p).sum() for g, p in zip(grads, params)]
    surrogate = terms[0]
    for term in terms[1:]:
        surrogate = surrogate + term
    return train_step(surrogate, optimizer, params=params, inputs=grads)


# ---------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------


class DataParallel:
    """Data-parallel full-batch training of ``loss`` on a Dask cluster.

    Parameters
    ----------
    loss : Tensor
        A scalar loss (a non-scalar one is summed, as in ``sg.train_step``).
    optimizer : symgrad.optim.Optimizer
        ``SGD``, ``Momentum``, ``Adam``, ``RMSProp`` or ``AdaGrad``, with its options.
    data : dict
        Input name to value. A batch input is a ``dask.array.Array`` chunked along axis 0
        only (its declared first dimension must be symbolic, ``sg.input("x", ("N", 784))``);
        every batch input has the same rows (they are rechunked to the first one's chunks if
        they differ). An input given as a numpy array has no batch axis: every chunk sees it
        whole.
    reduction : {"mean", "sum"}
        What ``loss`` is over a batch's rows: their mean (chunks weighted by their rows) or
        their sum. Required: symgrad cannot tell from the expression (see the module
        docstring).
    params : list of Tensor, optional
        What to train; default every ``sg.param`` the loss reads, sorted by name.
    client : distributed.Client, optional
        The cluster's client; default the current one (``distributed.get_client()``).
    check_reduction : bool
        At the first step or evaluation, compute the loss on a few rows and on the same rows
        taken twice, on a worker: a mean must stay the same and a sum must double, or
        ValueError says which the loss looks like (default True; it costs one small extra
        loss evaluation, once).

    Attributes
    ----------
    optimizer : symgrad.optim.Optimizer
        Read at every step (``trainer.optimizer.lr = 1e-4`` takes effect at the next).
    params, inputs : list of str
        The trained parameters and the data inputs, by name.
    rows : int
        The rows of the dataset.
    chunks : int
        The number of chunks (of any size, empty ones included).

    Raises
    ------
    ValueError, TypeError
        For data that does not fit the loss's inputs (missing, unknown, wrong dtype or rank,
        chunked along another axis than the batch axis), naming the input; at the first
        step or evaluation, for a loss that is not what ``reduction`` says.
    ImportError
        Without ``dask[distributed]``.
    """

    def __init__(self, loss, optimizer: Optimizer, data: Mapping, *, reduction: str,
                 params=None, client=None, check_reduction: bool = True):
        distributed = _require_distributed()
        if reduction not in REDUCTIONS:
            raise ValueError(f"DataParallel: reduction must be one of {REDUCTIONS} (what the "
                             f"loss is over a batch's rows), got {reduction!r}")
        self.reduction = reduction
        self._unchecked = bool(check_reduction)
        self._client = client if client is not None else distributed.get_client()
        self._worker = _worker_namespace()
        loss = as_tensor(loss)
        if loss.shape != ():
            loss = loss.sum()
        # the update step checks the optimizer and the parameters (floating, fixed shapes)
        self._update = _update_step(self._param_leaves(loss, params), optimizer)
        plist = self._plist
        data_leaves = [leaf for leaf in default_input_order(leaves_of([loss]))
                       if leaf not in plist]
        batch, arrays, const, values = _split_data(data, data_leaves)
        self.params = [p.name for p in plist]
        self.inputs = [leaf.name for leaf in batch + const]
        self.rows = int(arrays[0].shape[0])
        self.chunks = len(arrays[0].chunks[0])
        self._dtype = np.result_type(*[p.dtype for p in plist])
        order = [leaf.name for leaf in batch + const + plist]
        grad_fn = _compile([loss, *grad(loss, [Tensor(p, p.shape, p.dtype) for p in plist])],
                           inputs=order, target="numpy")
        loss_fn = _compile([loss], inputs=order, target="numpy")
        self._futures = []
        self._plugin = None
        try:
            self._install({"grad": _shipped(grad_fn), "loss": _shipped(loss_fn)})
            self._place(arrays, values)
        except BaseException:
            self.close()
            raise

    def _param_leaves(self, loss, params) -> list:
        if params is None:
            plist = [leaf for leaf in default_input_order(leaves_of([loss]))
                     if leaf.role == "param"]
        else:
            plist = []
            for p in params:
                if not isinstance(p, Tensor) or not isinstance(p.expr, TensorSymbol) \
                        or p.expr.role != "param":
                    raise TypeError("DataParallel: params must be sg.param leaves")
                plist.append(p.expr)
        if not plist:
            raise ValueError("DataParallel: the loss reads no sg.param; nothing to train")
        self._plist = plist
        return plist

    # -- setting up the workers --------------------------------------------------------
    def _install(self, specs: dict) -> None:
        """Register the generated modules as a worker plugin: every worker (and any that
        joins later) executes them once."""
        digest = hashlib.sha256(repr(sorted((k, v[0]) for k, v in specs.items())).encode())
        name = f"symgrad-{digest.hexdigest()[:16]}-{id(self):x}"
        self._client.register_plugin(self._worker["Modules"](specs), name=name)
        self._plugin = name

    def _check_reduction(self, sent) -> None:
        """Once, at the first step or evaluation: the loss on some rows and on the same rows
        taken twice must be equal for a mean and double for a sum; else raise.

        That is the property the chunked reduction relies on: a loss that is neither (a sum
        plus a regularizer, a mean declared as a sum) would train on wrong gradients silently.
        """
        chunk = next(f for f, n in zip(self._chunk_futures, self._chunk_rows) if n)
        rows = min(PROBE_ROWS, max(self._chunk_rows))
        once, twice = self._client.submit(
            self._worker["reduction_probe"], self._plugin, sent, self._constants, chunk, rows,
            pure=False).result()
        want = once if self.reduction == "mean" else 2 * once
        rtol = 1e-4 if self._dtype == np.float32 else 1e-9
        if not np.isfinite(once) or abs(twice - want) <= rtol * max(abs(want), abs(twice)):
            self._unchecked = False  # checked once; a failed check is made again next time
            return
        looks = ("a sum over them (it doubled)" if abs(twice - 2 * once) <= rtol * abs(twice)
                 else "a mean over them (it stayed the same)" if abs(twice - once) <=
                 rtol * abs(twice) else "neither a mean nor a sum over them")
        other = {"mean": "sum", "sum": "mean"}[self.reduction]
        hint = (f"use reduction={other!r}" if looks.startswith(f"a {other}") else
                "write the loss as a mean or a sum over the rows")
        raise ValueError(
            f"DataParallel: reduction={self.reduction!r}, but the loss is {looks}: on {rows} "
            f"rows it is {once!r}, and on the same rows taken twice {twice!r}. Chunks combine "
            f"exactly only for a loss that is a mean (reduction='mean') or a sum "
            f"(reduction='sum') over the batch's rows; {hint} (check_reduction=False skips "
            f"this check)")

    def _place(self, arrays: list, values: list) -> None:
        """Compute every chunk once onto the workers (all inputs' blocks of a chunk on one
        worker) and remember which worker holds which chunks."""
        import dask
        from distributed import wait
        client = self._client
        blocks = [a.to_delayed().reshape(-1) for a in arrays]  # one block per chunk
        gather = dask.delayed(self._worker["gather_chunk"], pure=True)
        chunk_futures = client.compute([gather(*parts) for parts in zip(*blocks)])
        self._futures = list(chunk_futures)
        self._chunk_futures = list(chunk_futures)
        self._chunk_rows = list(arrays[0].chunks[0])
        wait(chunk_futures)
        holders = client.who_has(chunk_futures)
        by_worker: dict = {}
        for f in chunk_futures:  # chunk order is kept within each worker
            by_worker.setdefault(sorted(holders[f.key])[0], []).append(f)
        self._by_worker = dict(sorted(by_worker.items()))
        [self._constants] = client.scatter([tuple(values)], broadcast=True, hash=False)
        self._futures.append(self._constants)

    # -- training ------------------------------------------------------------------------
    @property
    def optimizer(self) -> Optimizer:
        """The optimizer whose hyperparameters the next step reads."""
        return self._update.optimizer

    @optimizer.setter
    def optimizer(self, value: Optimizer) -> None:
        self._update.optimizer = value

    @property
    def workers(self) -> list:
        """The addresses of the workers holding chunks of the data."""
        return list(self._by_worker)

    def init(self, values: Mapping):
        """A fresh training state from initial parameter values (name to array).

        Returns
        -------
        symgrad.TrainState
            On the client: copies of ``values``, zero optimizer slots, step 0.
        """
        return self._update.init(values)

    def _param_values(self, params) -> tuple:
        """The parameter arrays, in the modules' order, from a TrainState or a dict (names,
        shapes and dtypes checked here, as ``step.init`` checks them, not on a worker)."""
        if hasattr(params, "params") and not isinstance(params, Mapping):  # a TrainState
            params = params.params
        if not isinstance(params, Mapping):
            raise TypeError(f"DataParallel: give a TrainState or a dict of parameter values, "
                            f"got {type(params).__name__}")
        return tuple(_check_values(self._update._param_specs, params, "DataParallel"))

    def _reduce(self, label: str, params: tuple) -> list:
        """Run ``label``'s function on every chunk; the outputs summed over the dataset
        (divided by its rows for a mean loss)."""
        if self._plugin is None:
            raise RuntimeError("DataParallel: closed (its data and modules on the workers were "
                               "released); make a new one to train again")
        client, worker = self._client, self._worker
        [sent] = client.scatter([params], broadcast=True, hash=False)
        if self._unchecked and self.rows:
            self._check_reduction(sent)
        weighted = self.reduction == "mean"
        parts = [client.submit(worker["partial_sums"], self._plugin, label, weighted, sent,
                               self._constants, *chunks, workers=[addr],
                               allow_other_workers=True, pure=False)
                 for addr, chunks in self._by_worker.items()]
        while len(parts) > 1:  # pairwise, one round per level of the tree
            paired = [client.submit(worker["combine"], a, b, pure=False)
                      for a, b in zip(parts[::2], parts[1::2])]
            parts = paired + parts[len(paired) * 2:]
        rows, total = parts[0].result()
        if total is None:
            raise ValueError("DataParallel: the dataset has no rows")
        if weighted:
            total = [v / rows for v in total]
        return total

    def step(self, state) -> float:
        """One full-batch step: loss and gradients over the whole dataset, then the update.

        Parameters
        ----------
        state : symgrad.TrainState
            Made by :meth:`init` (or ``TrainState.load(path, trainer.update_step)``);
            updated in place.

        Returns
        -------
        float
            The loss over the whole dataset at the parameters before the update.
        """
        loss, *grads = self._reduce("grad", self._param_values(state))
        self._update(state, *[np.asarray(g) for g in grads])
        return float(loss)

    def evaluate(self, params) -> float:
        """The loss over the whole dataset, computed on the workers.

        Parameters
        ----------
        params : symgrad.TrainState or dict
            The parameter values (name to array).

        Returns
        -------
        float
        """
        [loss] = self._reduce("loss", self._param_values(params))
        return float(loss)

    def fit(self, state, steps: int) -> list:
        """``steps`` calls of :meth:`step`; the list of their losses."""
        return [self.step(state) for _ in range(int(steps))]

    @property
    def update_step(self):
        """The generated training step that applies the update on the client (what
        ``TrainState.load(path, ...)`` takes to resume a state saved from this trainer)."""
        return self._update

    # -- cleaning up ---------------------------------------------------------------------
    def close(self) -> None:
        """Release the data on the workers and remove the modules' plugin (idempotent)."""
        futures, self._futures = self._futures, []
        if futures:
            self._client.cancel(futures)
        if self._plugin is not None:
            name, self._plugin = self._plugin, None
            try:
                self._client.unregister_worker_plugin(name)
            except Exception:  # noqa: BLE001 - the cluster may already be gone
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"<symgrad.dask.DataParallel params={self.params} inputs={self.inputs} "
                f"rows={self.rows} chunks={self.chunks} workers={len(self._by_worker)} "
                f"reduction={self.reduction!r}>")


def fit(loss, optimizer: Optimizer, values: Mapping, data: Mapping, steps: int, *,
        reduction: str, params=None, client=None, check_reduction: bool = True) -> tuple:
    """Train ``loss`` for ``steps`` full-batch steps on a Dask cluster.

    Parameters
    ----------
    loss, optimizer, data, reduction, params, client, check_reduction
        As for :class:`DataParallel`.
    values : dict
        Initial parameter values, name to array.
    steps : int
        How many steps.

    Returns
    -------
    tuple
        ``(state, losses)``: the trained :class:`~symgrad.train.TrainState` and the loss of
        each step (over the whole dataset, before its update).
    """
    with DataParallel(loss, optimizer, data, reduction=reduction, params=params,
                      client=client, check_reduction=check_reduction) as trainer:
        state = trainer.init(values)
        return state, trainer.fit(state, steps)
