"""PyTorch, eager mode on the CPU, with ``torch.optim``."""

from __future__ import annotations

import numpy as np

from .impl_base import Implementation, make_ops

__all__ = ["TorchImpl"]


class TorchImpl(Implementation):
    name = "torch"
    description = "PyTorch eager (CPU), loss.backward() + torch.optim"
    memory_visible = False  # torch's allocator does not report to tracemalloc

    @classmethod
    def version(cls) -> str:
        import torch
        return torch.__version__

    def setup(self, workload, init, optimizer):
        import warnings

        import torch
        # the runner hands out read-only batches; torch only reads them
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self._torch = torch
        F = torch.nn.functional

        def softmax_cross_entropy(logits, onehot):
            return -(onehot * F.log_softmax(logits, dim=-1)).sum(dim=-1)

        self._ops = make_ops(torch.mean, torch.sum, torch.relu, conv2d=F.conv2d,
                             max_pool2d=F.max_pool2d, reshape=torch.reshape,
                             softmax_cross_entropy=softmax_cross_entropy)
        self._loss = workload.loss
        self._names = workload.input_names
        self._params = {n: torch.tensor(np.array(init[n]), requires_grad=True)
                        for n in workload.param_shapes}
        plist, h = list(self._params.values()), optimizer.hyper
        if optimizer.kind == "sgd":
            self._opt = torch.optim.SGD(plist, lr=optimizer.lr)
        elif optimizer.kind == "momentum":
            self._opt = torch.optim.SGD(plist, lr=optimizer.lr, momentum=h["momentum"],
                                        nesterov=h["nesterov"])
        else:
            self._opt = torch.optim.Adam(plist, lr=optimizer.lr, betas=(h["beta1"], h["beta2"]),
                                         eps=h["eps"])

    def step(self, batch):
        from_numpy = self._torch.from_numpy
        b = {n: from_numpy(a) if isinstance(a, np.ndarray) else a
             for n, a in zip(self._names, batch)}
        self._opt.zero_grad(set_to_none=True)
        loss = self._loss(self._ops, self._params, b)
        loss.backward()
        self._opt.step()
        return loss.item()

    def params(self):
        return {n: p.detach().numpy().copy() for n, p in self._params.items()}
