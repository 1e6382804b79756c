"""A stand-in accelerator for a CPU-only PyTorch: real tensors on a device that is not the CPU.

Why. A GPU is rarely at hand here, and what breaks only on a GPU is a tensor made on the
CPU and mixed with the model's (`torch.tensor(...)` without `device=`): PyTorch then
raises "Expected all tensors to be on the same device". On a CPU-only build every tensor
is on the CPU, so such a mistake passes every test. The known stand-ins fall short:
`meta` tensors hold no values (and Keras itself uses `meta` for shape inference, where our
layers take other code paths), and `FakeTensorMode`'s fake `cuda` tensors hold no values
and fail inside Keras at the first `.contiguous()` or `.to("cuda")` ("PyTorch is not
linked with support for cuda devices": those ops look up the CUDA device guard).

What this is. PyTorch's PrivateUse1 device, registered from Python under the name
`gdfrdev` (`torch.utils.backend_registration._setup_privateuseone_for_python_backend`:
a Python device guard, so device-guarded ops work), and a tensor subclass
`StandInTensor` that reports `device == gdfrdev:0` and holds a real CPU tensor. A
dispatch mode runs every ATen op that touches such a tensor (or asks for `device=gdfrdev`)
on the held CPU tensors and wraps the results back; autograd, in-place updates and views
behave as on any device. Before running an op it checks its tensor arguments exactly as
a GPU would: a CPU tensor of one or more dimensions beside stand-in tensors raises
`DeviceMismatch` naming the op (0-dim CPU tensors are allowed, as CUDA allows them).
Leaving the device (`.cpu()`, `.numpy()` through it, `.item()`) works as on a GPU.

Keras's torch `convert_to_tensor` moves a CPU tensor to its device without a word, so a
CPU tensor handed to `keras.ops` does not fail on a GPU: it is copied host-to-device on
every call (a transfer and a wait). `record_uploads` lists every such copy onto the
stand-in with the innermost `keras_gdfr` frame that caused it, so a test can require
none from our code in a steady-state train step, evaluation step or input batch.

Two gaps, both PyTorch's construction and not our code's:
- `torch.tensor`/`as_tensor` of Python or NumPy data copy to the device below the
  dispatcher; `_NewFromData` (a function mode) builds them on the CPU and moves them
  with a dispatched copy instead.
- A `torch.Generator` cannot be made for a Python-registered device: under
  `keras_on_standin` Keras's torch random ops get a CPU generator seeded as Keras seeds
  the device's, so the stand-in draws the same numbers as a CPU run.
While a `FakeTensorMode` is active (make_fx, dynamo) the mode stands aside; the compiled
step cannot run on the stand-in (fake tensors' constant folding runs real ops below the
dispatcher), so it is not covered here (docs/performance.md).

Usage::

    with keras_on_standin():      # Keras's device is gdfrdev:0 inside
        model = GDFRNet(...)       # variables on the stand-in
        model.fit(...)             # DeviceMismatch on the first CPU tensor mixed in
"""

from __future__ import annotations

import contextlib
import dataclasses
import traceback

import torch
import torch.utils._pytree as pytree
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode_stack, return_and_correct_aliasing

NAME = "gdfrdev"
_registered = False


class DeviceMismatch(RuntimeError):
    """A CPU tensor met stand-in tensors in one op: on a GPU, "Expected all tensors to be on the same device"."""


def register() -> None:
    """Register the stand-in device: once per process (PyTorch allows one PrivateUse1 name), and before the
    process's first backward pass (autograd sizes its per-device queues once, at that pass)."""
    global _registered
    if _registered:
        return
    from torch.utils.backend_registration import _setup_privateuseone_for_python_backend

    _setup_privateuseone_for_python_backend(NAME)
    _registered = True


class StandInTensor(torch.Tensor):
    """A tensor on `gdfrdev:0` whose values live in `self.elem`, a CPU tensor of the same layout."""

    @staticmethod
    def __new__(cls, elem):
        return torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=torch.device(NAME, 0), requires_grad=elem.requires_grad)

    def __init__(self, elem):
        self.elem = elem

    def __repr__(self):
        return f"StandInTensor({self.elem!r})"

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run_on_cpu(func, args, kwargs or {})


def _on_standin(device) -> bool:
    return device is not None and torch.device(device).type == NAME


def _check_devices(func, tensors) -> None:
    if not any(isinstance(t, StandInTensor) for t in tensors):
        return
    if func is torch.ops.aten.copy_.default:  # dst.copy_(src) crosses devices on a GPU too: an upload
        if not isinstance(tensors[1], StandInTensor):
            _note_upload(tensors[1])
        return
    for t in tensors:
        if not isinstance(t, StandInTensor) and t.device.type == "cpu" and t.dim() > 0:
            raise DeviceMismatch(f"{func}: a {tuple(t.shape)} {t.dtype} CPU tensor mixed with {NAME} tensors "
                                 "(on a GPU: Expected all tensors to be on the same device)")


@dataclasses.dataclass
class Upload:
    """One host-to-device copy onto the stand-in: what, and the code that asked for it."""

    shape: tuple
    dtype: str
    origin: str  # "path:line in function" of the innermost keras_gdfr frame, else of the innermost frame
    ours: bool  # a keras_gdfr frame is on the stack


_UPLOADS: list[list[Upload]] = []  # one list per active record_uploads


def _note_upload(source: torch.Tensor) -> None:
    if not _UPLOADS:
        return
    frames = [f for f in traceback.extract_stack() if "device_standin" not in f.filename]
    ours = [f for f in frames if "/keras_gdfr/" in f.filename]
    frame = (ours or frames)[-1]
    where = frame.filename.split("/keras_gdfr/")[-1] if ours else frame.filename
    upload = Upload(tuple(source.shape), str(source.dtype), f"{where}:{frame.lineno} in {frame.name}", bool(ours))
    for uploads in _UPLOADS:
        uploads.append(upload)


@contextlib.contextmanager
def record_uploads():
    """Yield the list of host-to-device copies made while inside (see the module docstring)."""
    uploads: list[Upload] = []
    _UPLOADS.append(uploads)
    try:
        yield uploads
    finally:
        _UPLOADS.remove(uploads)


def _run_on_cpu(func, args, kwargs):
    tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    _check_devices(func, tensors)
    device = kwargs.get("device")
    to_standin = _on_standin(device)
    if to_standin and func is torch.ops.aten._to_copy.default and not isinstance(args[0], StandInTensor):
        _note_upload(args[0])
    if to_standin:
        kwargs = dict(kwargs, device=torch.device("cpu"))
    inner_args, inner_kwargs = pytree.tree_map_only(StandInTensor, lambda t: t.elem, (args, kwargs))
    out = func(*inner_args, **inner_kwargs)
    if device is not None and not to_standin:
        return out  # leaves the device (`.cpu()`, `.to("cpu")`)
    if not (to_standin or any(isinstance(t, StandInTensor) for t in tensors)):
        return out
    wrapped = pytree.tree_map_only(torch.Tensor, lambda t: t if isinstance(t, StandInTensor) else StandInTensor(t), out)
    return return_and_correct_aliasing(func, args, kwargs, wrapped)


class _Dispatch(TorchDispatchMode):
    """Routes factory calls with ``device=gdfrdev`` (no tensor argument to dispatch on) to the stand-in."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        from torch._subclasses.fake_tensor import FakeTensorMode

        if any(isinstance(mode, FakeTensorMode) for mode in _get_current_dispatch_mode_stack()):
            return func(*args, **kwargs)  # tracing: fake tensors keep their device, FakeTensorMode checks it
        tensors = pytree.tree_leaves((args, kwargs))
        if _on_standin(kwargs.get("device")) or any(isinstance(t, StandInTensor) for t in tensors):
            return _run_on_cpu(func, args, kwargs)
        return func(*args, **kwargs)


class _NewFromData(TorchFunctionMode):
    """`torch.tensor(data, device=gdfrdev)` and kin: built on the CPU, then moved by a dispatched copy."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        data = args[1 if func is torch.Tensor.new_tensor else 0] if args else kwargs.get("data")
        if (func in (torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor)
                and _on_standin(kwargs.get("device")) and not isinstance(data, torch.Tensor)):
            return func(*args, **dict(kwargs, device="cpu")).to(NAME)
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_standin():
    """Tensors on `gdfrdev` behave as on a device of their own (see the module docstring)."""
    register()
    with _Dispatch(), _NewFromData():
        yield


@contextlib.contextmanager
def keras_on_standin():
    """`on_standin`, with Keras's torch device set to it and its random ops given CPU generators."""
    import keras
    from keras.src.backend.torch import random as keras_random

    original = keras_random.torch_seed_generator

    def cpu_generator(seed):
        first, second = keras_random.draw_seed(seed)
        generator = torch.Generator(device="cpu")
        generator.manual_seed(int(first + second) & 0xFFFFFFFF)  # as Keras seeds the device's generator
        return generator

    keras_random.torch_seed_generator = cpu_generator
    try:
        with on_standin(), keras.device(f"{NAME}:0"):
            yield
    finally:
        keras_random.torch_seed_generator = original
