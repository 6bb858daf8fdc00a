"""symgrad's generated, fused training step (``sg.train_step``)."""

from __future__ import annotations

import functools

from .impl_base import Implementation, OptimizerSpec, make_ops

__all__ = ["SymgradImpl", "build_step"]


def _ops():
    import symgrad as sg
    return make_ops(sg.mean, sg.sum, sg.relu, conv2d=sg.conv2d, max_pool2d=sg.max_pool2d,
                    reshape=sg.reshape, softmax_cross_entropy=sg.softmax_cross_entropy)


def build_step(workload, optimizer: OptimizerSpec):
    """Build the workload's loss as symgrad expressions and compile its train step.

    The step takes the batch positionally, in the order of ``workload.input_names``. This
    is all a new process does to get a step, so the runner times exactly this call for
    the cold-compile and warm-load measurements.
    """
    import symgrad as sg
    inputs = {name: sg.input(name, shape=shape, dtype=dtype)
              for name, shape, dtype in workload.inputs}
    # shared=True: the runner rebuilds the same model for every run in one process, on purpose
    params = {name: sg.param(name, shape, workload.dtype, shared=True)
              for name, shape in workload.param_shapes.items()}
    loss = workload.loss(_ops(), params, inputs)
    return sg.train_step(loss, optimizer.symgrad(),
                         params=[params[n] for n in workload.param_shapes],
                         inputs=[inputs[n] for n in workload.input_names])


class SymgradImpl(Implementation):
    name = "symgrad"
    description = "symgrad generated train step (sg.train_step)"

    @classmethod
    def version(cls) -> str:
        import symgrad
        return symgrad.__version__

    def setup(self, workload, init, optimizer):
        self._step = build_step(workload, optimizer)
        self._state = self._step.init({n: init[n] for n in workload.param_shapes})
        # the state bound once, as the hand-written adapters call a bound method: the
        # adapters then cost the same per call (no argument tuple built here only)
        self._call = functools.partial(self._step, self._state)

    def step(self, batch):
        return self._call(*batch)

    def params(self):
        return {n: v.copy() for n, v in self._state.params.items()}

    @property
    def source(self) -> str:
        """The generated module's source."""
        return self._step.source
