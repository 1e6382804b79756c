"""`train.jit_compile` on torch: the whole train step traced once and compiled by `torch.compile`.

Why not Keras's own path. Keras 3.15's torch trainer hands its Python `train_step`
to `torch.compile`. Dynamo then traces Keras's layer machinery, not just the maths:
`Layer.__call__` binds arguments with `inspect.signature` (a graph break per layer:
"mapping proxy affected by dictionary mutation"), and `TorchLayer._setattr_hook`,
called for every attribute a layer sets, is guarded on the attribute's name and the
layer's type, so it recompiles once per (name, type) until dynamo's recompile limit
(8) and then runs eagerly; `Functional.call` and `Operation.__call__` hit the limit
the same way. Measured on the 2-core CPU: 17 graphs and 16 breaks for the forward
pass alone of a narrow `tiny`, and no first epoch within 5 minutes through `fit`.

What this module does instead (an adapter installed on the model by
`compile_for_training`; layers, losses and the optimizer are unchanged):

1. The step is a pure function of the state values, written with Keras's stateless
   API as Keras's own JAX trainer does: forward (`stateless_call`), loss,
   `torch.autograd.grad`, `optimizer.stateless_apply`, metric updates.
2. `make_fx` traces it once into ONE graph of ATen ops (forward, backward, SGD
   update, BatchNorm statistics, metrics). `make_fx` runs the Python, so Keras's
   layer bookkeeping happens at trace time and leaves nothing in the graph. The
   batch dimension of every input is symbolic: one graph serves every batch size,
   the partial last batch included (no padding, no dropped samples).
3. `torch.compile(graph, fullgraph=True)` compiles it (inductor by default), with
   the batch dimension marked dynamic: one compiled frame.
4. The trace records the shape assumptions it made (its guards: e.g. PyTorch's CPU
   convolution picks another kernel, with other output strides, for batches of 16
   and more when it runs on one thread). They are checked once per new batch shape;
   a batch that breaks them gets a graph of its own (a second compile, which the
   counters show), never a wrong result.

One Keras detail would pin the batch size into the graph: its torch
`convert_to_tensor` turns a symbolic size (`ops.shape(x)[0]`, used by the loss's
mean and by the `Mean` metrics' sample count) into a tensor with `torch.as_tensor`,
which specialises it. While tracing (and only then) `_symbolic_sizes` makes it use
`torch.full`, which keeps the size symbolic; the values are the same.

The compiled step is used by `fit`/`train_on_batch` (train) and `evaluate` (test);
`predict` stays eager. `COMPILER` (env `GDFR_TORCH_COMPILER`, default `inductor`)
names the `torch.compile` backend; tests use `eager`, which compiles nothing but
counts frames, guards and recompiles exactly as inductor does.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types

COMPILER = os.environ.get("GDFR_TORCH_COMPILER", "inductor")


def install(model) -> bool:
    """Make `model`'s train and test functions the compiled step (torch backend only).

    Returns whether it was installed. Call after `model.compile(..., jit_compile=True)`.
    """
    import keras

    if keras.backend.backend() != "torch":
        return False
    for kind in ("train", "test", "predict"):
        setattr(model, f"make_{kind}_function", types.MethodType(_maker(kind), model))
        setattr(model, f"{kind}_function", None)
    return True


def _maker(kind: str):
    def make(self, force=False):
        attribute = f"{kind}_function"
        if getattr(self, attribute) is not None and not force:
            return getattr(self, attribute)
        if self.steps_per_execution > 1:
            raise ValueError(
                "`steps_per_execution` must be 1 with the PyTorch backend. "
                f"Received: steps_per_execution={self.steps_per_execution}"
            )
        setattr(self, attribute, _eager_predict(self) if kind == "predict" else CompiledStep(self, kind))
        return getattr(self, attribute)

    return make


def _eager_predict(model):
    import torch

    def one_step_on_data(data):
        with torch.no_grad():
            return model.predict_step(data[0])

    return one_step_on_data


class _Graph:
    """One traced and compiled step: valid for the batch sizes its guards accept."""

    def __init__(self, fn, guards, log_keys, changed, dynamic):
        self.fn, self.guards, self.log_keys, self.changed, self.dynamic = fn, guards, log_keys, changed, dynamic


class CompiledStep:
    """`model.train_function` / `test_function`: `step([data])` -> logs, state written back."""

    def __init__(self, model, kind: str):
        self.model, self.kind = model, kind
        self.graphs: dict[tuple, list[_Graph]] = {}  # inputs' layout -> graphs traced for it
        self.warmups: list[dict] = []  # per graph: {"kind", "batch", "trace_s", "seconds"} (trace + compile + first run)
        self._by_shape: dict[tuple, _Graph] = {}  # exact input shapes -> the graph that accepts them

    def state_variables(self) -> list:
        model = self.model
        groups = [model.trainable_variables, model.non_trainable_variables]
        if self.kind == "train":
            groups.append(model.optimizer.variables)
        groups.append(model.metrics_variables)
        seen, variables = set(), []
        for v in (v for group in groups for v in group):
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
        return variables

    def __call__(self, data):
        import torch
        from keras.src import tree
        from keras.src.backend.torch.core import convert_to_tensor
        from keras.src.trainers.data_adapters import data_adapter_utils

        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data[0])
        # train_on_batch hands NumPy arrays over as they are; the graph takes tensors.
        structure = tree.map_structure(lambda t: None if t is None else convert_to_tensor(t), (x, y, sample_weight))
        inputs = [t for t in tree.flatten(structure) if t is not None]
        variables = self.state_variables()
        layout = (self._structure_key(structure), tuple((t.dtype, tuple(t.shape[1:]), t.device) for t in inputs),
                  tuple(id(v) for v in variables))
        shapes = (layout, tuple(int(t.shape[0]) for t in inputs))
        graph = self._by_shape.get(shapes)
        started = new = None
        with torch.no_grad():
            values = [v.value.detach() for v in variables]
            if graph is None:
                started = time.perf_counter()
                graph = self._find(layout, values + inputs)
                if graph is None:
                    graph = new = self._trace(layout, variables, values, structure)
                    traced = time.perf_counter() - started
                self._by_shape[shapes] = graph
            if graph.dynamic:
                for t in inputs:
                    torch._dynamo.maybe_mark_dynamic(t, 0)
            out = graph.fn(*values, *inputs)
            logs = dict(zip(graph.log_keys, out[: len(graph.log_keys)]))
            updated = out[len(graph.log_keys):]
            if updated:
                torch._foreach_copy_([variables[i].value for i in graph.changed], list(updated))
        if new is not None:  # inductor compiles on the first call: the warm-up ends here
            self._report_warmup(int(inputs[0].shape[0]), traced, time.perf_counter() - started)
        return logs

    def _report_warmup(self, batch: int, trace_s: float, seconds: float) -> None:
        """Record and print (stderr, one line) what compiling a graph cost."""
        self.warmups.append({"kind": self.kind, "batch": batch, "trace_s": trace_s, "seconds": seconds})
        print(f"jit_compile: {self.kind} step compiled in {seconds:.1f} s (trace {trace_s:.1f} s, {COMPILER}; "
              f"batch {batch})", file=sys.stderr, flush=True)

    @staticmethod
    def _structure_key(structure):
        from keras.src import tree

        return repr(tree.map_structure(lambda t: None if t is None else 0, structure))

    def _find(self, layout, args):
        for graph in self.graphs.get(layout, []):
            if graph.guards(args):
                return graph
        return None

    def _trace(self, layout, variables, values, structure) -> _Graph:
        import torch

        record = {}
        n = len(values)

        def flat_step(*args):
            from keras.src import tree

            state, inputs = list(args[:n]), iter(args[n:])
            x, y, sample_weight = tree.map_structure(lambda t: None if t is None else next(inputs), structure)
            step = _train_step if self.kind == "train" else _test_step
            logs, new_state = step(self.model, variables, state, x, y, sample_weight)
            record["log_keys"] = list(logs)
            record["changed"] = [i for i, (new, old) in enumerate(zip(new_state, state)) if new is not old]
            return [logs[k] for k in record["log_keys"]] + [new_state[i] for i in record["changed"]]

        graph_module, guards, dynamic = self._make_fx(flat_step, values, structure, symbolic_batch=True)
        if not dynamic:
            # The trace pinned the batch size (e.g. a batch of 1, which PyTorch specialises):
            # a graph of static shapes for exactly these inputs.
            graph_module, guards, dynamic = self._make_fx(flat_step, values, structure, symbolic_batch=False)
        fn = torch.compile(graph_module, backend=COMPILER, fullgraph=True, dynamic=None)
        graph = _Graph(fn, guards, record["log_keys"], record["changed"], dynamic)
        self.graphs.setdefault(layout, []).append(graph)
        return graph

    def _make_fx(self, flat_step, values, structure, symbolic_batch: bool):
        """`flat_step` traced on fake inputs -> (graph module, guards(args) -> bool, batch is symbolic)."""
        import torch
        from keras.src import tree
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.proxy_tensor import make_fx
        from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

        shape_env = ShapeEnv()
        fake_mode = FakeTensorMode(shape_env=shape_env)

        def fake_input(t):
            if not symbolic_batch:
                return fake_mode.from_tensor(t, static_shapes=True)
            sizes = [DimDynamic.DYNAMIC] + [DimDynamic.STATIC] * (t.ndim - 1)
            return fake_mode.from_tensor(t, symbolic_context=StatelessSymbolicContext(dynamic_sizes=sizes))

        fake_values = [fake_mode.from_tensor(v, static_shapes=True) for v in values]
        fake_inputs = [fake_input(t) for t in tree.flatten(structure) if t is not None]
        try:
            with _symbolic_sizes():
                graph_module = make_fx(flat_step, tracing_mode="symbolic" if symbolic_batch else "fake")(
                    *fake_values, *fake_inputs)
        except Exception as error:
            raise RuntimeError(
                f"train.jit_compile on torch: the {self.kind} step could not be traced into one graph "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                "run without jit_compile"
            ) from error
        placeholders = [node.meta["val"] for node in graph_module.graph.nodes if node.op == "placeholder"]
        if not symbolic_batch:
            shapes = [tuple(t.shape) for t in placeholders]
            return graph_module, lambda args: [tuple(t.shape) for t in args] == shapes, False
        # Every size is checked (ignore_static=False): a batch size the trace pinned to a
        # constant counts as static there and would otherwise go unchecked.
        code = shape_env.produce_guards_expression(placeholders, ignore_static=False)

        def guards(args):
            return code is None or shape_env.evaluate_guards_expression(code, args)

        def symbolic(size):
            return isinstance(size, torch.SymInt) and bool(shape_env.replace(size.node.expr).free_symbols)

        return graph_module, guards, all(symbolic(t.shape[0]) for t in placeholders[len(values):])


def _loss_and_updates(model, trainable, non_trainable, metrics, x, y, sample_weight, training, optimizer_values=None):
    """Keras's JAX trainer's `compute_loss_and_updates`, on torch tensors."""
    from keras.src import backend

    kwargs = {"training": training} if model._call_has_training_arg else {}
    y_pred, non_trainable, losses = model.stateless_call(trainable, non_trainable, x, return_losses=True, **kwargs)
    if losses:
        model._losses_override.clear()
        model._losses_override = losses
    loss, (trainable, non_trainable, metrics) = model.stateless_compute_loss(
        trainable, non_trainable, metrics, x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
    )
    if losses:
        model._losses_override.clear()
    unscaled = loss
    if training and model.optimizer is not None:
        with backend.StatelessScope(state_mapping=list(zip(model.optimizer.variables, optimizer_values))):
            loss = model.optimizer.scale_loss(loss)
    return loss, unscaled, y_pred, non_trainable, metrics


def _metrics_update(model, metrics, unscaled, x, y, y_pred, sample_weight):
    from keras.src import backend, tree

    with backend.StatelessScope(state_mapping=list(zip(model.metrics_variables, metrics))) as scope:
        model._loss_tracker.update_state(unscaled, sample_weight=next(i for i in tree.flatten(x) if i is not None).shape[0])
        logs = model.compute_metrics(x, y, y_pred, sample_weight)
    new = [scope.get_current_value(v) for v in model.metrics_variables]
    return logs, [m if n is None else n for n, m in zip(new, metrics)]


def _split(variables, state, groups):
    """The state list cut into the model's variable groups (by identity, in each group's order)."""
    index = {id(v): i for i, v in enumerate(variables)}
    return [[state[index[id(v)]] for v in group] for group in groups]


def _join(variables, state, groups, values):
    index = {id(v): i for i, v in enumerate(variables)}
    state = list(state)
    for group, group_values in zip(groups, values):
        for v, value in zip(group, group_values):
            state[index[id(v)]] = value
    return state


def _train_step(model, variables, state, x, y, sample_weight):
    import torch

    optimizer = model.optimizer
    groups = [model.trainable_variables, model.non_trainable_variables, optimizer.variables, model.metrics_variables]
    trainable, non_trainable, optimizer_values, metrics = _split(variables, state, groups)
    leaves = [t.detach().requires_grad_(True) for t in trainable]
    with torch.enable_grad():
        loss, unscaled, y_pred, non_trainable, metrics = _loss_and_updates(
            model, leaves, non_trainable, metrics, x, y, sample_weight, True, optimizer_values
        )
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    unscaled, y_pred = unscaled.detach(), y_pred.detach()
    new_trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, list(grads), trainable)
    logs, metrics = _metrics_update(model, metrics, unscaled, x, y, y_pred, sample_weight)
    return logs, _join(variables, state, groups, [new_trainable, non_trainable, optimizer_values, metrics])


def _test_step(model, variables, state, x, y, sample_weight):
    groups = [model.trainable_variables, model.non_trainable_variables, model.metrics_variables]
    trainable, non_trainable, metrics = _split(variables, state, groups)
    _, unscaled, y_pred, non_trainable, metrics = _loss_and_updates(
        model, trainable, non_trainable, metrics, x, y, sample_weight, False
    )
    logs, metrics = _metrics_update(model, metrics, unscaled, x, y, y_pred, sample_weight)
    return logs, _join(variables, state, groups, [trainable, non_trainable, metrics])


@contextlib.contextmanager
def _symbolic_sizes():
    """While tracing: Keras's torch `convert_to_tensor` keeps symbolic sizes symbolic (see the module doc)."""
    import torch
    from keras.src.backend.torch import core

    original = core.convert_to_tensor
    symbolic = (torch.SymInt, torch.SymFloat)

    def scalar(value, dtype):
        if dtype is None:
            dtype = torch.int64 if isinstance(value, torch.SymInt) else torch.get_default_dtype()
        return torch.full((), value, dtype=dtype, device=core.get_device())

    def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
        if isinstance(x, symbolic) or (isinstance(x, (list, tuple)) and any(isinstance(e, symbolic) for e in x)):
            torch_dtype = core.to_torch_dtype(dtype) if dtype is not None else None
            if isinstance(x, symbolic):
                return scalar(x, torch_dtype)
            return torch.stack([scalar(e, torch_dtype) if isinstance(e, symbolic) else
                                torch.as_tensor(e, dtype=torch_dtype or torch.int64, device=core.get_device()) for e in x])
        return original(x, dtype=dtype, sparse=sparse, ragged=ragged)

    core.convert_to_tensor = convert_to_tensor
    try:
        yield
    finally:
        core.convert_to_tensor = original
