"""Plain numpy references for the convolution family, written the obvious way (a loop over
output pixels and one window at a time), for the spec rows of tests/test_op_spec.py: slow,
but nothing in them is shared with symgrad's helpers or the tape's rules."""

import numpy as np


def _pad(x, pad, fill=0.0):
    t, b, l, r = pad
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)


def conv2d(x, w, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """NCHW x, OIHW w; pad is (top, bottom, left, right)."""
    xp = _pad(x, pad)
    n, c, h, wd = xp.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    ho = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * stride[0], j * stride[1]
            win = xp[:, :, r0:r0 + dilation[0] * (kh - 1) + 1:dilation[0],
                     c0:c0 + dilation[1] * (kw - 1) + 1:dilation[1]]
            for g in range(groups):
                y[:, g * og:(g + 1) * og, i, j] = np.einsum(
                    "nckl,ockl->no", win[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og])
    return y


def conv_transpose2d(x, w, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                     dilation=(1, 1), groups=1):
    """NCHW x, weight (C, out/groups, kh, kw): each input pixel scatters a scaled kernel."""
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    full = ((h - 1) * stride[0] + dilation[0] * (kh - 1) + 1 + output_padding[0],
            (wd - 1) * stride[1] + dilation[1] * (kw - 1) + 1 + output_padding[1])
    y = np.zeros((n, og * groups) + full)
    for i in range(h):
        for j in range(wd):
            r0, c0 = i * stride[0], j * stride[1]
            for g in range(groups):
                y[:, g * og:(g + 1) * og, r0:r0 + dilation[0] * (kh - 1) + 1:dilation[0],
                  c0:c0 + dilation[1] * (kw - 1) + 1:dilation[1]] += np.einsum(
                    "nc,cokl->nokl", x[:, g * cg:(g + 1) * cg, i, j], w[g * cg:(g + 1) * cg])
    ph, pw = padding
    return y[:, :, ph:full[0] - ph, pw:full[1] - pw]


def _pool(x, kernel, stride, pad, fill, reduce):
    xp = _pad(x, pad, fill)
    n, c, h, wd = xp.shape
    ho = (h - kernel[0]) // stride[0] + 1
    wo = (wd - kernel[1]) // stride[1] + 1
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * stride[0], j * stride[1]
            y[:, :, i, j] = reduce(xp[:, :, r0:r0 + kernel[0], c0:c0 + kernel[1]], axis=(2, 3))
    return y


def max_pool2d(x, kernel, stride, pad=(0, 0, 0, 0)):
    return _pool(x, kernel, stride, pad, -np.inf, np.max)


def avg_pool2d(x, kernel, stride, pad=(0, 0, 0, 0)):
    return _pool(x, kernel, stride, pad, 0.0, np.mean)


def layer_norm(x, k, weight=1.0, bias=0.0, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight + bias
