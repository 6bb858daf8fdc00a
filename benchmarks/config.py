"""What a benchmark run runs: its settings and the implementations it can time.

:class:`Config` holds the settings of one run (the quick and full modes fill in the
defaults); :data:`IMPLEMENTATIONS` names the adapter of every implementation, in report
order; :func:`impl_classes` loads them and :func:`probe` says which are installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Optional

#: ``--impl`` name -> adapter class ("module:Class" under ``benchmarks``), in report order.
IMPLEMENTATIONS = {
    "hand": "impl_hand:HandImpl",
    "floats": "impl_floats:FloatsImpl",
    "symgrad": "impl_symgrad:SymgradImpl",
    "symgrad-unchecked": "impl_symgrad:SymgradUncheckedImpl",
    "tape": "impl_tape:TapeImpl",
    "torch": "impl_torch:TorchImpl",
    "jax": "impl_jax:JaxImpl",
    "autograd": "impl_autograd:AutogradImpl",
    "pytensor": "impl_pytensor:PytensorImpl",
    "pytensor-trust": "impl_pytensor:PytensorTrustImpl",
}

#: This project's own implementations: a WRONG or failing one makes the run exit 1.
PROJECT_IMPLS = ("hand", "floats", "symgrad", "symgrad-unchecked", "tape")

#: The implementation every other one is checked against.
REFERENCE = "hand"


@dataclass
class Config:
    """What to run and how long. ``None`` fields take the defaults of the mode.

    ``repeat``: interleaved timing repetitions (15; quick 5, stopping after
    ``time_budget`` seconds of timing); ``block_time``: seconds of steps per block (50 ms;
    quick 5 ms); ``memory_steps``: steps under tracemalloc; ``compile_repeat``: pairs of
    cold/warm processes per main workload; ``targets``: print the generated-code issue's
    performance goals as a PASS/MISS checklist; ``extra_impls``: more adapter classes by name
    (tests use it for deliberately wrong implementations; an isolated run imports them in its
    processes from their module's folder). ``isolated``: time every implementation in its own
    processes (:mod:`benchmarks.isolated`), ``passes`` of them (5; quick 3), each timing up to
    ``repeat`` blocks, stopped after ``process_timeout`` seconds; ``threads``: the BLAS
    threads the processes apply (``None``: their environment's).
    """

    quick: bool = False
    repeat: Optional[int] = None
    only: Optional[list] = None
    impls: Optional[list] = None
    optimizer: str = "sgd"
    seed: int = 0
    compile: bool = True
    memory: bool = True
    block_time: Optional[float] = None
    memory_steps: Optional[int] = None
    compile_repeat: Optional[int] = None
    time_budget: Optional[float] = None
    progress: bool = True
    targets: bool = False
    command: str = "python -m benchmarks"
    extra_impls: dict = field(default_factory=dict)
    isolated: bool = False
    passes: Optional[int] = None
    threads: Optional[int] = None
    process_timeout: float = 900.0

    def __post_init__(self):
        q = self.quick
        if self.time_budget is None and q and self.repeat is None:
            self.time_budget = 1.5  # quick: stop repeating after ~1.5 s (3 repetitions at least)
        defaults = {"repeat": 5 if q else 15, "block_time": 0.005 if q else 0.05,
                    "memory_steps": 2 if q else 5, "compile_repeat": 1 if q else 3,
                    "passes": 3 if q else 5}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if min(self.repeat, self.compile_repeat, self.memory_steps, self.passes) < 1:
            raise ValueError("repeat, compile_repeat, memory_steps and passes must be at "
                             "least 1")


def impl_classes(extra: Optional[dict] = None) -> dict:
    """The adapter class of every known implementation.

    Parameters
    ----------
    extra : dict, optional
        More ``{name: adapter class}`` (``Config.extra_impls``), added after the registered
        ones.

    Returns
    -------
    dict
        ``{name: adapter class}``, in report order.
    """
    out = {}
    for name, target in IMPLEMENTATIONS.items():
        module, cls = target.split(":")
        out[name] = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    out.update(extra or {})
    return out


def probe(classes: dict, wanted: list) -> tuple:
    """Which of the ``wanted`` implementations can run here.

    Parameters
    ----------
    classes : dict
        ``{name: adapter class}``, as from :func:`impl_classes`.
    wanted : list of str
        The names to probe.

    Returns
    -------
    tuple of dict
        ``(available {name: version}, skipped {name: reason})``.
    """
    available, skipped = {}, {}
    for name in wanted:
        try:
            available[name] = str(classes[name].version())
        except ImportError as err:
            skipped[name] = f"not installed ({err})"
        except Exception as err:  # a broken install is a skip, not a crash
            skipped[name] = f"unusable ({type(err).__name__}: {err})"
    return available, skipped
