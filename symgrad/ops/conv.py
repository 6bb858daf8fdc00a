"""Convolutions, pooling and the other layers of convolutional networks.

Three structural nodes carry the convolutions, in PyTorch's NCHW layout with a weight of
shape ``(out_channels, in_channels / groups, kh, kw)``:

* :class:`Conv2d`, the forward convolution (cross-correlation, as every framework);
* :class:`ConvTranspose2d`, its adjoint in the input (``conv_transpose2d`` is this node);
* :class:`Conv2dFilterGrad`, its adjoint in the weight.

Each is bilinear and the vector-Jacobian rule of each is written with the other two, so
gradients of any order stay in these three nodes. :class:`MaxPool2d`,
:class:`MaxPool2dGrad` and :class:`MaxPool2dGather` do the same for max pooling.
``avg_pool2d``, ``dropout`` and ``layer_norm`` are composites of other ops.

The generated code calls the helpers of ``templates/helpers.py.j2`` (block ``conv``): an
im2col that copies one strided slice per kernel tap into a channel-major
``(C * kh * kw, N * Ho * Wo)`` matrix (a loop over the ``kh * kw`` taps, never over
pixels), one ``np.matmul`` per forward or adjoint (one GEMM per group for the whole batch),
and the matching scatter (one strided ``+=`` per tap; at stride 1 one contiguous run per
tap) for the adjoint in the input. Max pooling is a running ``np.maximum`` over the taps'
strided views; its adjoint marks, tap by tap, the first maximum of each window. The NHWC
layout is a transpose on each side of the NCHW node.

Where a program holds both a convolution and its weight gradient over the same input (a
training step), the planner lowers the two (``shared_part`` / ``lower``, see
:func:`symgrad.compiler.optimize.plan`) to :class:`Conv2dFromWindows` and
:class:`Conv2dFilterGradFromWindows` over one :class:`Conv2dWindows`: the im2col is built
once, in the forward pass, and read again by the backward one. The results of these nodes
are new arrays the step owns (``owned_result``), so the bias, relu and mask that follow run
in their buffers.
"""

from __future__ import annotations

import numpy as np
import sympy

from .. import expr as tensors
from ..nodes import TensorOp, info, shape_of
from ..shapes import ShapeError, format_shape
from .elementwise import sqrt
from .reductions import mean
from .record import public
from .shape import ensure_shape, reshape, transpose
from .static import ints, tuple_axes

__all__ = ["Conv2d", "ConvTranspose2d", "Conv2dFilterGrad", "MaxPool2d", "MaxPool2dGrad",
           "MaxPool2dGather", "Conv2dWindows", "Conv2dFromWindows",
           "Conv2dFilterGradFromWindows"]

_LAYOUTS = ("NCHW", "NHWC")


# ---------------------------------------------------------------------------------------
# Shape rules shared by the nodes
# ---------------------------------------------------------------------------------------


def _spatial_out(size: int, lo: int, hi: int, k: int, stride: int, dilation: int) -> int:
    """Output length of a window of ``k`` taps, ``dilation`` apart, moved by ``stride``."""
    return (size + lo + hi - dilation * (k - 1) - 1) // stride + 1


def _static_ints(op: str, shape: tuple, axes: tuple, what: str) -> tuple:
    out = []
    for a in axes:
        d = shape[a]
        if not isinstance(d, int):
            raise ShapeError(f"{op}: {what} of shape {format_shape(shape)} must have a known "
                             f"length along axis {a}, got {d}")
        out.append(d)
    return tuple(out)


def _conv_geometry(op, x_shape, w_shape, stride, pad, dilation, groups):
    """Check an NCHW operand against an OIHW weight; return ``(Ho, Wo)``."""
    if len(x_shape) != 4:
        raise ShapeError(f"{op}: input must be 4-D (N, C, H, W), got shape "
                         f"{format_shape(x_shape)}")
    if len(w_shape) != 4:
        raise ShapeError(f"{op}: weight must be 4-D (out, in/groups, kh, kw), got shape "
                         f"{format_shape(w_shape)}")
    c, h, w = _static_ints(op, x_shape, (1, 2, 3), "input")
    o, cg, kh, kw = _static_ints(op, w_shape, (0, 1, 2, 3), "weight")
    if cg * groups != c or o % groups:
        raise ShapeError(f"{op}: weight of shape {format_shape(w_shape)} does not fit an input "
                         f"of shape {format_shape(x_shape)} with groups={groups} (need "
                         f"in_channels = {c} = weight.shape[1] * groups and out_channels "
                         f"divisible by groups)")
    ho = _spatial_out(h, pad[0], pad[1], kh, stride[0], dilation[0])
    wo = _spatial_out(w, pad[2], pad[3], kw, stride[1], dilation[1])
    if ho < 1 or wo < 1:
        raise ShapeError(f"{op}: kernel {kh}x{kw} (dilation {dilation}) is larger than the "
                         f"padded input of shape {format_shape(x_shape)} (padding {pad})")
    return ho, wo


class _ConvBase(TensorOp):
    """Args: two operands, stride (2), padding (top, bottom, left, right), dilation (2),
    groups, and a spatial size (2) where the node needs one."""

    operands = (0, 1)
    fresh_result = True
    #: the helper returns a new array of exactly the node's shape and dtype that nothing
    #: else references: the step may compute the next elementwise op in its buffer
    owned_result = True
    numpy_calls = ("np.matmul", "np.zeros", "np.full", "np.concatenate")

    def __new__(cls, a, b, stride, pad, dilation, groups, size=(0, 0)):
        return TensorOp.__new__(cls, a, b, ints(stride), ints(pad), ints(dilation),
                                sympy.Integer(groups), ints(size))

    @property
    def geometry(self):
        """``(stride, pad, dilation, groups)`` as Python ints."""
        a = self.args
        return tuple_axes(a[2]), tuple_axes(a[3]), tuple_axes(a[4]), int(a[5])

    @property
    def size(self):
        return tuple_axes(self.args[6])

    def _call(self, p, helper, ops, *extra):
        p.need_helper("conv")
        stride, pad, dilation, groups = self.geometry
        rest = "".join(f", {e}" for e in extra)
        return f"{helper}({ops[0]}, {ops[1]}, {stride}, {pad}, {dilation}, {groups}{rest})"

    def print_array_api(self, p, ops):
        # a helper of templates/helpers_array_api.py.j2 (block "conv") named after the op
        p.need_helper("conv")
        p.need_helper("pad")
        stride, pad, dilation, groups = self.geometry
        size = "".join(f", {s}" for s in self.size) if self.op_name != "conv2d" else ""
        return (f"_{self.op_name}(xp, {ops[0]}, {ops[1]}, {stride}, {pad}, {dilation}, "
                f"{groups}{size})")

    def formula(self, ops):
        stride, pad, dilation, groups = self.geometry
        return (f"{self.op_name}({ops[0]}, {ops[1]}, stride={stride}, padding={pad}, "
                f"dilation={dilation}, groups={groups})")


def _dtype(a, b):
    dtypes = [d for d in (info(a)[1], info(b)[1]) if d is not None]
    return np.result_type(*dtypes) if dtypes else None


class Conv2d(_ConvBase):
    """2-D cross-correlation of an NCHW input with an OIHW weight."""

    op_name = "conv2d"

    @classmethod
    def infer(cls, x, w, stride, pad, dilation, groups, size):
        sx, sw = shape_of(x), shape_of(w)
        ho, wo = _conv_geometry("conv2d", sx, sw, tuple_axes(stride), tuple_axes(pad),
                                tuple_axes(dilation), int(groups))
        return (sx[0], sw[0], ho, wo), _dtype(x, w)

    def vjp(self, g):
        x, w = self.args[:2]
        g = ensure_shape(g, self.shape, self.dtype)
        geo = self.geometry
        sx, sw = shape_of(x), shape_of(w)
        return [ConvTranspose2d(g, w, *geo, sx[2:]),
                Conv2dFilterGrad(x, g, *geo, sw[2:])]

    def shared_part(self):
        """The windows of x this convolution reads (its weight gradient reads them too)."""
        stride, pad, dilation, _ = self.geometry
        return Conv2dWindows(self.args[0], shape_of(self.args[1])[2:], stride, pad, dilation)

    def lower(self):
        """This node as a product with :meth:`shared_part`."""
        return Conv2dFromWindows(self.shared_part(), self.args[1], self.geometry[3])

    def print_numpy(self, p, ops):
        return self._call(p, "_conv2d", ops)


class ConvTranspose2d(_ConvBase):
    """The adjoint of :class:`Conv2d` in its input: ``(g, w)`` to an input of spatial size
    ``size``; rows and columns no window reaches get 0."""

    op_name = "conv_transpose2d"

    @classmethod
    def infer(cls, g, w, stride, pad, dilation, groups, size):
        sg_, sw = shape_of(g), shape_of(w)
        groups = int(groups)
        h, wd = tuple_axes(size)
        if len(sg_) != 4 or len(sw) != 4:
            raise ShapeError(f"conv_transpose2d: input and weight must be 4-D, got shapes "
                             f"{format_shape(sg_)} and {format_shape(sw)}")
        c_in = _static_ints("conv_transpose2d", sg_, (1,), "input")[0]
        if sw[0] != c_in:
            raise ShapeError(f"conv_transpose2d: weight of shape {format_shape(sw)} does not "
                             f"fit an input of shape {format_shape(sg_)} (weight.shape[0] must "
                             f"be the input's {c_in} channels)")
        c_out = sw[1] * groups
        x_shape = (sg_[0], c_out, h, wd)
        ho, wo = _conv_geometry("conv_transpose2d", x_shape, sw, tuple_axes(stride),
                                tuple_axes(pad), tuple_axes(dilation), groups)
        if (ho, wo) != tuple(sg_[2:]):
            raise ShapeError(f"conv_transpose2d: an output of size {h}x{wd} does not match "
                             f"the input of shape {format_shape(sg_)} (it convolves to "
                             f"{ho}x{wo})")
        return x_shape, _dtype(g, w)

    def vjp(self, h):
        g, w = self.args[:2]
        h = ensure_shape(h, self.shape, self.dtype)
        geo = self.geometry
        return [Conv2d(h, w, *geo), Conv2dFilterGrad(h, g, *geo, shape_of(w)[2:])]

    def print_numpy(self, p, ops):
        return self._call(p, "_conv2d_input_grad", ops, *self.size)


class Conv2dFilterGrad(_ConvBase):
    """The adjoint of :class:`Conv2d` in its weight: ``(x, g)`` to a weight with a kernel of
    ``size``."""

    op_name = "conv2d_filter_grad"

    @classmethod
    def infer(cls, x, g, stride, pad, dilation, groups, size):
        sx, sg_ = shape_of(x), shape_of(g)
        groups = int(groups)
        kh, kw = tuple_axes(size)
        c = _static_ints("conv2d_filter_grad", sx, (1,), "input")[0]
        o = _static_ints("conv2d_filter_grad", sg_, (1,), "adjoint")[0]
        w_shape = (o, c // groups, kh, kw)
        ho, wo = _conv_geometry("conv2d_filter_grad", sx, w_shape, tuple_axes(stride),
                                tuple_axes(pad), tuple_axes(dilation), groups)
        if (ho, wo) != tuple(sg_[2:]):
            raise ShapeError(f"conv2d_filter_grad: adjoint of shape {format_shape(sg_)} does "
                             f"not match the input of shape {format_shape(sx)}")
        return w_shape, _dtype(x, g)

    def vjp(self, hw):
        x, g = self.args[:2]
        hw = ensure_shape(hw, self.shape, self.dtype)
        geo = self.geometry
        return [ConvTranspose2d(g, hw, *geo, shape_of(x)[2:]), Conv2d(x, hw, *geo)]

    def shared_part(self):
        """The windows of x this gradient reads (the forward convolution reads them too)."""
        stride, pad, dilation, _ = self.geometry
        return Conv2dWindows(self.args[0], self.size, stride, pad, dilation)

    def lower(self):
        """This node as a product with :meth:`shared_part`."""
        return Conv2dFilterGradFromWindows(self.shared_part(), self.args[1], self.geometry[3])

    def print_numpy(self, p, ops):
        return self._call(p, "_conv2d_filter_grad", ops, *self.size)


# ---------------------------------------------------------------------------------------
# The lowered forms: a convolution and its weight gradient sharing one im2col
# ---------------------------------------------------------------------------------------


class Conv2dWindows(TensorOp):
    """The im2col of an NCHW input, ``(C, kh, kw, N, Ho, Wo)``: each kernel tap's strided
    view of the zero-padded input, channel-major (args: x, kernel (2), stride (2), padding
    (4), dilation (2)).

    Only the planner makes it (:func:`symgrad.compiler.optimize.plan`, from the
    ``shared_part`` of :class:`Conv2d` and :class:`Conv2dFilterGrad`), after
    differentiation: where a convolution and its weight gradient read the same windows,
    the step builds them once. It has no gradient rule of its own.
    """

    op_name = "conv2d_im2col"
    array_api = False  # as the nodes it stands in for
    operands = (0,)
    fresh_result = True
    numpy_calls = ("np.concatenate", "np.full")

    def __new__(cls, x, kernel, stride, pad, dilation):
        return TensorOp.__new__(cls, x, ints(kernel), ints(stride), ints(pad), ints(dilation))

    @classmethod
    def infer(cls, x, kernel, stride, pad, dilation):
        sx = shape_of(x)
        kh, kw = tuple_axes(kernel)
        c = _static_ints("conv2d_im2col", sx, (1,), "input")[0]
        ho, wo = _conv_geometry("conv2d_im2col", sx, (c, c, kh, kw), tuple_axes(stride),
                                tuple_axes(pad), tuple_axes(dilation), 1)
        return (c, kh, kw, sx[0], ho, wo), info(x)[1]

    def print_numpy(self, p, ops):
        p.need_helper("conv")
        kernel, stride, pad, dilation = (tuple_axes(a) for a in self.args[1:5])
        return f"_conv_cols({ops[0]}, {kernel[0]}, {kernel[1]}, {stride}, {pad}, {dilation})"


class _FromWindows(TensorOp):
    """Args: the windows (a :class:`Conv2dWindows`), a second operand, groups."""

    array_api = False
    operands = (0, 1)
    fresh_result = True
    owned_result = True  # as _ConvBase's
    numpy_calls = ("np.matmul",)

    def __new__(cls, cols, b, groups):
        return TensorOp.__new__(cls, cols, b, sympy.Integer(groups))

    def print_numpy(self, p, ops):
        p.need_helper("conv")
        return f"{self.helper}({ops[0]}, {ops[1]}, {int(self.args[2])})"


class Conv2dFromWindows(_FromWindows):
    """:class:`Conv2d` computed from the input's windows: ``(cols, w, groups)``."""

    op_name = "conv2d_cols"
    helper = "_conv2d_from_cols"

    @classmethod
    def infer(cls, cols, w, groups):
        c, _, _, n, ho, wo = shape_of(cols)
        return (n, shape_of(w)[0], ho, wo), _dtype(cols, w)


class Conv2dFilterGradFromWindows(_FromWindows):
    """:class:`Conv2dFilterGrad` computed from the input's windows: ``(cols, g, groups)``."""

    op_name = "conv2d_filter_grad_cols"
    helper = "_conv2d_filter_grad_from_cols"

    @classmethod
    def infer(cls, cols, g, groups):
        c, kh, kw = shape_of(cols)[:3]
        return (shape_of(g)[1], c // int(groups), kh, kw), _dtype(cols, g)


# ---------------------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------------------


class _PoolBase(TensorOp):
    """Args: operands, kernel (2), stride (2), padding (4), dilation (2)."""

    fresh_result = True
    owned_result = True  # as _ConvBase's
    numpy_calls = ("np.zeros", "np.zeros_like", "np.full", "np.array", "np.maximum", "np.inf",
                   "np.equal", "np.greater", "np.logical_or", "np.multiply", "np.result_type")

    @property
    def window(self):
        n = len(self.operands)
        return tuple(tuple_axes(a) for a in self.args[n:n + 4])

    def _call(self, p, helper, ops):
        p.need_helper("conv")
        kernel, stride, pad, dilation = self.window
        return f"{helper}({', '.join(ops)}, {kernel}, {stride}, {pad}, {dilation})"

    def print_array_api(self, p, ops):
        # a helper of templates/helpers_array_api.py.j2 (block "conv") named after the op
        p.need_helper("conv")
        p.need_helper("pad")
        kernel, stride, pad, dilation = self.window
        return (f"_{self.op_name}(xp, {', '.join(ops)}, {kernel}, {stride}, {pad}, "
                f"{dilation})")

    def formula(self, ops):
        kernel, stride, pad, dilation = self.window
        return (f"{self.op_name}({', '.join(ops)}, kernel={kernel}, stride={stride}, "
                f"padding={pad}, dilation={dilation})")

    @classmethod
    def _out(cls, x, kernel, stride, pad, dilation):
        sx = shape_of(x)
        if len(sx) != 4:
            raise ShapeError(f"max_pool2d: input must be 4-D (N, C, H, W), got shape "
                             f"{format_shape(sx)}")
        h, w = _static_ints("max_pool2d", sx, (2, 3), "input")
        (kh, kw), (s0, s1), pad, (d0, d1) = (tuple_axes(kernel), tuple_axes(stride),
                                             tuple_axes(pad), tuple_axes(dilation))
        ho = _spatial_out(h, pad[0], pad[1], kh, s0, d0)
        wo = _spatial_out(w, pad[2], pad[3], kw, s1, d1)
        if ho < 1 or wo < 1:
            raise ShapeError(f"max_pool2d: window {kh}x{kw} is larger than the padded input "
                             f"of shape {format_shape(sx)}")
        return (sx[0], sx[1], ho, wo)


class MaxPool2d(_PoolBase):
    """Max over each window of an NCHW input (padding counts as -inf)."""

    op_name = "max_pool2d"
    operands = (0,)

    def __new__(cls, x, kernel, stride, pad, dilation):
        return TensorOp.__new__(cls, x, ints(kernel), ints(stride), ints(pad), ints(dilation))

    @classmethod
    def infer(cls, x, kernel, stride, pad, dilation):
        return cls._out(x, kernel, stride, pad, dilation), info(x)[1]

    def vjp(self, g):
        x = self.args[0]
        g = ensure_shape(g, self.shape, self.dtype)
        return [MaxPool2dGrad(x, self, g, *self.window)]

    def print_numpy(self, p, ops):
        return self._call(p, "_max_pool2d", ops)


class MaxPool2dGrad(_PoolBase):
    """The adjoint of :class:`MaxPool2d` (args: x, its pooled ``y``, the adjoint ``g``): each
    window's adjoint goes to the first maximum of the window (row-major), as PyTorch's;
    windows that overlap add up. ``y`` is the forward node itself, so the step reuses the
    forward's value."""

    op_name = "max_pool2d_grad"
    operands = (0, 1, 2)

    def __new__(cls, x, y, g, kernel, stride, pad, dilation):
        return TensorOp.__new__(cls, x, y, g, ints(kernel), ints(stride), ints(pad),
                                ints(dilation))

    @classmethod
    def infer(cls, x, y, g, kernel, stride, pad, dilation):
        out = cls._out(x, kernel, stride, pad, dilation)
        for name, v in (("pooled value", y), ("adjoint", g)):
            if tuple(shape_of(v)) != out:
                raise ShapeError(f"max_pool2d_grad: {name} of shape "
                                 f"{format_shape(shape_of(v))} does not match the pooled shape "
                                 f"{format_shape(out)}")
        return shape_of(x), _dtype(x, g)

    def vjp(self, h):
        x, y, g = self.args[:3]
        # piecewise constant in x (and y), linear in g
        h = ensure_shape(h, self.shape, self.dtype)
        return [None, None, MaxPool2dGather(x, y, h, *self.window)]

    def print_numpy(self, p, ops):
        return self._call(p, "_max_pool2d_grad", ops)


class MaxPool2dGather(_PoolBase):
    """The adjoint of :class:`MaxPool2dGrad` in its adjoint (args: x, its pooled ``y``, ``h``
    of x's shape): ``h`` read at the first maximum of each window of ``x``."""

    op_name = "max_pool2d_gather"
    operands = (0, 1, 2)

    def __new__(cls, x, y, h, kernel, stride, pad, dilation):
        return TensorOp.__new__(cls, x, y, h, ints(kernel), ints(stride), ints(pad),
                                ints(dilation))

    @classmethod
    def infer(cls, x, y, h, kernel, stride, pad, dilation):
        if tuple(shape_of(h)) != tuple(shape_of(x)):
            raise ShapeError(f"max_pool2d_gather: operands of shape "
                             f"{format_shape(shape_of(x))} and {format_shape(shape_of(h))}")
        return cls._out(x, kernel, stride, pad, dilation), _dtype(x, h)

    def vjp(self, g):
        x, y, h = self.args[:3]
        g = ensure_shape(g, self.shape, self.dtype)
        return [None, None, MaxPool2dGrad(x, y, g, *self.window)]

    def print_numpy(self, p, ops):
        return self._call(p, "_max_pool2d_gather", ops)


# ---------------------------------------------------------------------------------------
# Argument normalization
# ---------------------------------------------------------------------------------------


def _pair(value, name: str, op: str, minimum: int = 1) -> tuple:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        a, b = value
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") \
            from None
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise ValueError(f"{op}: {name} must be ints >= {minimum}, got {value!r}")
    return int(a), int(b)


def _padding(padding, size, kernel, stride, dilation, op: str) -> tuple:
    """``(top, bottom, left, right)`` from "valid", "same", an int, a pair or two pairs."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode != "same":
            raise ValueError(f"{op}: padding must be 'same', 'valid', an int or pairs, got "
                             f"{padding!r}")
        out = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            # TensorFlow's rule (PyTorch's for stride 1): ceil(n / s) outputs, the odd
            # padding element at the end
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            out += [total // 2, total - total // 2]
        return tuple(out)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 \
            and all(isinstance(p, (tuple, list)) for p in padding):
        (t, b), (l, r) = _pair(padding[0], "padding", op, 0), _pair(padding[1], "padding",
                                                                   op, 0)
        return (t, b, l, r)
    ph, pw = _pair(padding, "padding", op, 0)
    return (ph, ph, pw, pw)


def _nchw(t, data_format: str, op: str):
    if data_format not in _LAYOUTS:
        raise ValueError(f"{op}: data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    if t.ndim != 4:
        raise ShapeError(f"{op}: input must be 4-D ({data_format}), got shape "
                         f"{format_shape(t.shape)}")
    return transpose(t, (0, 3, 1, 2)) if data_format == "NHWC" else t


def _back(t, data_format: str):
    return transpose(t, (0, 2, 3, 1)) if data_format == "NHWC" else t


def _tensor(node):
    return tensors.Tensor(node, node.shape, node.dtype)


def _add_bias(y, bias, op: str):
    if bias is None:
        return y
    b = tensors.as_tensor(bias)
    if b.shape != (y.shape[1],):
        raise ShapeError(f"{op}: bias must have shape ({y.shape[1]},), got "
                         f"{format_shape(b.shape)}")
    return y + reshape(b, (y.shape[1], 1, 1))


# ---------------------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------------------


@public("structural", node=Conv2d)
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           data_format="NCHW"):
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : Tensor or array_like
        The input, ``(N, C, H, W)`` (or ``(N, H, W, C)`` with ``data_format="NHWC"``).
    weight : Tensor or array_like
        ``(out_channels, C / groups, kh, kw)`` in either layout.
    bias : Tensor or array_like, optional
        ``(out_channels,)``, added to every output position.
    stride, dilation : int or pair of int
        Step between windows; spacing between kernel taps.
    padding : int, pair, pair of pairs, "valid" or "same"
        Zeros added around the input: the same on both sides of each axis (an int or
        ``(ph, pw)``), per side (``((top, bottom), (left, right))``), none (``"valid"``) or
        enough for ``ceil(H / stride)`` outputs (``"same"``, TensorFlow's rule; the odd
        element goes at the end).
    groups : int
        Channel groups: group ``i`` of the outputs sees group ``i`` of the inputs.
    data_format : {"NCHW", "NHWC"}
        The layout of ``x`` and of the result.

    Returns
    -------
    Tensor
        ``(N, out_channels, Ho, Wo)`` (``(N, Ho, Wo, out_channels)`` for NHWC), with
        ``Ho = (H + pads - dilation * (kh - 1) - 1) // stride + 1``.

    Raises
    ------
    ShapeError
        When the weight does not fit the input's channels and groups, or the kernel is
        larger than the padded input.
    """
    t = _nchw(tensors.as_tensor(x), data_format, "conv2d")
    w = tensors.as_tensor(weight)
    if w.ndim != 4:
        raise ShapeError(f"conv2d: weight must be 4-D (out, in/groups, kh, kw), got shape "
                         f"{format_shape(w.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be an int >= 1, got {groups!r}")
    stride = _pair(stride, "stride", "conv2d")
    dilation = _pair(dilation, "dilation", "conv2d")
    size = _static_ints("conv2d", t.shape, (2, 3), "input")
    kernel = _static_ints("conv2d", w.shape, (2, 3), "weight")
    pad = _padding(padding, size, kernel, stride, dilation, "conv2d")
    y = _tensor(Conv2d(t.expr, w.expr, stride, pad, dilation, int(groups)))
    return _back(_add_bias(y, bias, "conv2d"), data_format)


@public("structural", node=ConvTranspose2d)
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, data_format="NCHW"):
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``: the
    gradient of :func:`conv2d` in its input.

    Parameters
    ----------
    x : Tensor or array_like
        The input, ``(N, C, H, W)`` (or ``(N, H, W, C)`` with ``data_format="NHWC"``).
    weight : Tensor or array_like
        ``(C, out_channels / groups, kh, kw)``, PyTorch's layout.
    bias : Tensor or array_like, optional
        ``(out_channels,)``.
    stride, dilation : int or pair of int
        Those of the convolution this one transposes.
    padding : int or pair of int
        The padding of the convolution this one transposes (it crops the result).
    output_padding : int or pair of int
        Extra rows and columns at the bottom and right of the result (smaller than the
        stride or the dilation), to pick among the sizes that convolve back to ``H``.
    groups : int
        Channel groups.
    data_format : {"NCHW", "NHWC"}
        The layout of ``x`` and of the result.

    Returns
    -------
    Tensor
        ``(N, out_channels, Ho, Wo)``, ``Ho = (H - 1) * stride - 2 * padding +
        dilation * (kh - 1) + output_padding + 1``.

    Raises
    ------
    ShapeError
        When the weight does not fit the input's channels, or the result would be empty.
    """
    op = "conv_transpose2d"
    t = _nchw(tensors.as_tensor(x), data_format, op)
    w = tensors.as_tensor(weight)
    if w.ndim != 4:
        raise ShapeError(f"{op}: weight must be 4-D (in, out/groups, kh, kw), got shape "
                         f"{format_shape(w.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be an int >= 1, got {groups!r}")
    stride = _pair(stride, "stride", op)
    dilation = _pair(dilation, "dilation", op)
    ph, pw = _pair(padding, "padding", op, 0)
    oph, opw = _pair(output_padding, "output_padding", op, 0)
    if not (oph < max(stride[0], dilation[0]) and opw < max(stride[1], dilation[1])):
        raise ValueError(f"{op}: output_padding {output_padding!r} must be smaller than the "
                         f"stride or the dilation")
    h, wd = _static_ints(op, t.shape, (2, 3), "input")
    kh, kw = _static_ints(op, w.shape, (2, 3), "weight")
    out = ((h - 1) * stride[0] - 2 * ph + dilation[0] * (kh - 1) + oph + 1,
           (wd - 1) * stride[1] - 2 * pw + dilation[1] * (kw - 1) + opw + 1)
    if min(out) < 1:
        raise ShapeError(f"{op}: padding {padding!r} leaves an empty result for an input of "
                         f"shape {format_shape(t.shape)}")
    y = _tensor(ConvTranspose2d(t.expr, w.expr, stride, (ph, ph, pw, pw), dilation,
                                int(groups), out))
    return _back(_add_bias(y, bias, op), data_format)


def _pool_args(op, t, kernel_size, stride, padding, dilation):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else _pair(stride, "stride", op)
    dilation = _pair(dilation, "dilation", op)
    size = _static_ints(op, t.shape, (2, 3), "input")
    pad = _padding(padding, size, kernel, stride, dilation, op)
    # PyTorch's bound: no window may lie entirely in the padding
    half = [(d * (k - 1) + 1) // 2 for k, d in zip(kernel, dilation)]
    if max(pad[:2]) > half[0] or max(pad[2:]) > half[1]:
        raise ValueError(f"{op}: padding {pad} exceeds half the window {kernel} "
                         f"(dilation {dilation})")
    return kernel, stride, pad, dilation


@public("structural", node=MaxPool2d)
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, data_format="NCHW"):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    The gradient of each window goes to its first maximum (row-major), as PyTorch's;
    padding counts as ``-inf``.

    Parameters
    ----------
    x : Tensor or array_like
        A floating input, ``(N, C, H, W)`` (or ``(N, H, W, C)`` with NHWC).
    kernel_size : int or pair of int
        The window.
    stride : int or pair of int, optional
        Step between windows (default: the window).
    padding : int, pair, pair of pairs, "valid" or "same"
        As in :func:`conv2d`.
    dilation : int or pair of int
        Spacing between the window's taps.
    data_format : {"NCHW", "NHWC"}
        The layout of ``x`` and of the result.

    Returns
    -------
    Tensor
        ``(N, C, Ho, Wo)`` (or NHWC).
    """
    t = _nchw(tensors.as_tensor(x), data_format, "max_pool2d")
    if t.dtype is not None and t.dtype.kind != "f":
        raise TypeError(f"max_pool2d: input must be floating, got dtype {t.dtype}")
    window = _pool_args("max_pool2d", t, kernel_size, stride, padding, dilation)
    return _back(_tensor(MaxPool2d(t.expr, *window)), data_format)


@public("composite")
def avg_pool2d(x, kernel_size, stride=None, padding=0, data_format="NCHW"):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d`` (padding zeros count in
    the average, PyTorch's default ``count_include_pad=True``).

    A depthwise :func:`conv2d` with a constant kernel of ``1 / (kh * kw)``.

    Parameters
    ----------
    x : Tensor or array_like
        The input, ``(N, C, H, W)`` (or ``(N, H, W, C)`` with NHWC).
    kernel_size : int or pair of int
        The window.
    stride : int or pair of int, optional
        Step between windows (default: the window).
    padding : int, pair, pair of pairs, "valid" or "same"
        As in :func:`conv2d`.
    data_format : {"NCHW", "NHWC"}
        The layout of ``x`` and of the result.

    Returns
    -------
    Tensor
        ``(N, C, Ho, Wo)`` (or NHWC).
    """
    t = _nchw(tensors.as_tensor(x), data_format, "avg_pool2d")
    kernel, stride, pad, dilation = _pool_args("avg_pool2d", t, kernel_size, stride, padding, 1)
    c = _static_ints("avg_pool2d", t.shape, (1,), "input")[0]
    dtype = t.dtype if t.dtype is not None and t.dtype.kind == "f" else np.float64
    w = tensors.constant(np.full((c, 1) + kernel, 1.0 / (kernel[0] * kernel[1]), dtype=dtype),
                         name="avg_kernel")
    y = _tensor(Conv2d(t.expr, w.expr, stride, pad, dilation, c))
    return _back(y, data_format)


@public("composite")
def dropout(x, mask, keep_prob):
    """Inverted dropout with the mask given: ``x * mask / keep_prob``.

    Parameters
    ----------
    x : Tensor or array_like
        The activations.
    mask : Tensor or array_like
        1 where a unit is kept, 0 where it is dropped (broadcastable to ``x``); an input
        of the step, drawn by the caller (``rng.random(shape) < keep_prob``).
    keep_prob : float
        The probability of keeping a unit, in (0, 1].

    Returns
    -------
    Tensor
        Of the broadcast shape; its expectation over masks is ``x``.
    """
    if not isinstance(keep_prob, (int, float)) or not 0 < keep_prob <= 1:
        raise ValueError(f"dropout: keep_prob must be a number in (0, 1], got {keep_prob!r}")
    return tensors.as_tensor(x) * tensors.as_tensor(mask) * (1.0 / keep_prob)


@public("composite")
def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization over the last axes, as ``torch.nn.functional.layer_norm``.

    ``(x - mean) / sqrt(var + eps) * weight + bias``, the mean and the (biased) variance
    taken over the last ``len(normalized_shape)`` axes; the variance is the mean of the
    squared deviations (never ``E[x**2] - E[x]**2``, which cancels).

    Parameters
    ----------
    x : Tensor or array_like
        The input; its trailing axes are ``normalized_shape``.
    normalized_shape : int or tuple of int
        The shape of the normalized trailing axes.
    weight, bias : Tensor or array_like, optional
        Of ``normalized_shape``: the elementwise scale and shift.
    eps : float
        Added to the variance.

    Returns
    -------
    Tensor
        Of ``x``'s shape.
    """
    t = tensors.as_tensor(x)
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or k > t.ndim or tuple(t.shape[t.ndim - k:]) != tuple(shape):
        raise ShapeError(f"layer_norm: normalized_shape {shape} is not the trailing shape of "
                         f"the input of shape {format_shape(t.shape)}")
    axes = tuple(range(t.ndim - k, t.ndim))
    centered = t - mean(t, axes, keepdims=True)
    var = mean(centered * centered, axes, keepdims=True)
    y = centered / sqrt(var + eps)
    for name, v in (("weight", weight), ("bias", bias)):
        if v is not None and tuple(tensors.as_tensor(v).shape) != shape:
            raise ShapeError(f"layer_norm: {name} must have shape {format_shape(shape)}, got "
                             f"{format_shape(tensors.as_tensor(v).shape)}")
    if weight is not None:
        y = y * tensors.as_tensor(weight)
    if bias is not None:
        y = y + tensors.as_tensor(bias)
    return y
