"""A reverse-mode, tape-based automatic differentiator over numpy arrays (TensorFlow-style).

This package is the comparison baseline and an independent oracle for the symbolic compiler
in the rest of :mod:`symgrad`, so it shares no code with it: it imports only numpy and the
standard library, and states every vector-Jacobian rule itself.

* :mod:`.values`: :class:`Tensor`, :class:`Variable`, :func:`constant`, :func:`one_hot`,
  :func:`stop_gradient`.
* :mod:`.engine`: :class:`GradientTape` (recording, ``watch``, ``stop_recording``,
  persistent and non-persistent tapes, the iterative backward walk) and
  :func:`custom_gradient`.
* :mod:`.rules`: :data:`OPS`, one entry per op (its forward in numpy and its
  vector-Jacobian rule); every op function here (``exp``, ``matmul``, ``sum``, ...) is
  derived from its entry.

Usage: ``from symgrad import tape as tp``; ``with tp.GradientTape() as t: loss = ...``;
``t.gradient(loss, variables)``. What each part promises is stated in its module.
"""

from __future__ import annotations

from .engine import GradientTape, custom_gradient
from .rules import FUNCTIONS as _FUNCTIONS
from .rules import OPS, OpRule, unbroadcast
from .values import Tensor, TensorLike, Variable, constant, one_hot, stop_gradient

#: The public names that are not ops: the value types, the tape, and the helpers that make
#: tensors without recording (every other public function is an entry of :data:`OPS`).
NOT_OPS = ("Tensor", "Variable", "GradientTape", "TensorLike", "constant", "unbroadcast",
           "one_hot", "stop_gradient", "custom_gradient", "OPS", "OpRule", "NOT_OPS")

# tp.exp, tp.matmul, ...: one function per public entry of the table
globals().update({name: _FUNCTIONS[name] for name, rule in OPS.items() if rule.public})

__all__ = list(NOT_OPS) + [name for name, rule in OPS.items() if rule.public]
