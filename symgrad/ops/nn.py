"""Normalizations and losses, each a composition of other ops in its stable form."""

from __future__ import annotations

from .. import expr as tensors
from ..shapes import broadcast_shapes
from .elementwise import exp, softplus
from .reductions import logsumexp, sum
from .record import public


@public("composite")
def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis, keepdims=True)``: stable for any magnitude of ``x``.

    Parameters
    ----------
    x : Tensor or array_like
        The logits.
    axis : int
        The axis to normalize along.

    Returns
    -------
    Tensor
        Of ``x``'s shape.
    """
    t = tensors.as_tensor(x)
    return t - logsumexp(t, axis, keepdims=True)


@public("composite")
def softmax(x, axis=-1):
    """``exp(log_softmax(x))``: shifted by the max, it never overflows.

    Parameters
    ----------
    x : Tensor or array_like
        The logits.
    axis : int
        The axis to normalize along.

    Returns
    -------
    Tensor
        Of ``x``'s shape; it sums to 1 along ``axis``.
    """
    return exp(log_softmax(x, axis))


@public("composite")
def softmax_cross_entropy(logits, onehot, axis=-1):
    """Per-example ``-sum(onehot * log_softmax(logits), axis)``.

    TensorFlow's ``softmax_cross_entropy_with_logits``: its gradient in the logits is
    ``softmax(logits) - onehot``; ``onehot`` may be any distribution.

    Parameters
    ----------
    logits : Tensor or array_like
        Unnormalized log-probabilities.
    onehot : Tensor or array_like
        Labels, broadcastable to ``logits``.
    axis : int
        The class axis.

    Returns
    -------
    Tensor
        ``logits``' shape without ``axis``.
    """
    z, y = tensors.as_tensor(logits), tensors.as_tensor(onehot)
    broadcast_shapes(z.shape, y.shape, op="softmax_cross_entropy")  # errors name this op
    return -sum(y * log_softmax(z, axis), axis)


@public("composite")
def sigmoid_cross_entropy(logits, labels):
    """Elementwise binary cross-entropy with logits, ``softplus(x) - x*z``, stable for any x.

    Parameters
    ----------
    logits : Tensor or array_like
        Unnormalized log-odds ``x``.
    labels : Tensor or array_like
        Targets ``z`` in [0, 1], broadcastable to ``logits``.

    Returns
    -------
    Tensor
        Of the broadcast shape.
    """
    x, z = tensors.as_tensor(logits), tensors.as_tensor(labels)
    broadcast_shapes(x.shape, z.shape, op="sigmoid_cross_entropy")  # errors name this op
    return softplus(x) - x * z
