"""numpy's ``np.linalg`` names for symgrad's linear algebra: ``sg.linalg.inv(a)`` is
``sg.inv(a)``, as ``np.linalg.inv(a)`` is on a Tensor (through ``__array_function__``) and
``symgrad.numpy.linalg.inv(a)``.

The functions: ``inv``, ``solve``, ``det``, ``slogdet``, ``cholesky``, ``eigh``, ``svd``
(reduced: ``full_matrices=False``) and ``norm``, each with numpy's signature, over stacks of
matrices ``(..., M, N)``. Their gradients and what they assume (nonsingular, symmetric,
distinct eigenvalues and singular values) are in docs/linalg.md and in each docstring.
"""

from .ops import FUNCTIONS as _FUNCTIONS
from .ops.decompositions import LINALG_FUNCTIONS as _NAMES

globals().update({_name: _FUNCTIONS[_name] for _name in _NAMES})

__all__ = list(_NAMES)
