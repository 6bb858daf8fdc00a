"""symgrad's generated, fused training step (``sg.train_step``)."""

from __future__ import annotations


from .impl_base import Implementation, OptimizerSpec, make_ops

__all__ = ["SymgradImpl", "SymgradUncheckedImpl", "build_step"]


def _ops():
    import symgrad as sg
    return make_ops(sg.mean, sg.sum, sg.relu, conv2d=sg.conv2d, max_pool2d=sg.max_pool2d,
                    reshape=sg.reshape, softmax_cross_entropy=sg.softmax_cross_entropy)


def build_step(workload, optimizer: OptimizerSpec, check_inputs: bool = True):
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
                         inputs=[inputs[n] for n in workload.input_names],
                         check_inputs=check_inputs)


class SymgradImpl(Implementation):
    name = "symgrad"
    description = "symgrad generated train step (sg.train_step)"

    @classmethod
    def version(cls) -> str:
        import symgrad
        return symgrad.__version__

    #: sg.train_step's check_inputs
    check_inputs = True

    def setup(self, workload, init, optimizer):
        self._step = build_step(workload, optimizer, self.check_inputs)
        self._state = self._step.init({n: init[n] for n in workload.param_shapes})
        # the state bound once (step.bound: a bound method), as the hand-written adapters
        # call a bound method: the adapters then cost the same per call
        self._call = self._step.bound(self._state)

    def step(self, batch):
        return self._call(*batch)

    def params(self):
        return {n: v.copy() for n, v in self._state.params.items()}

    @property
    def source(self) -> str:
        """The generated module's source."""
        return self._step.source


class SymgradUncheckedImpl(SymgradImpl):
    """The same step built with ``check_inputs=False``: no per-call test of the batch's
    types, dtypes and shapes (the counterpart of PyTensor's ``trust_input``)."""

    name = "symgrad-unchecked"
    description = "symgrad generated train step, check_inputs=False"
    check_inputs = False
