"""Compare a Keras block or model with its native PyTorch twin (bench/native_gdfrnet.py), by value.

`assert_twin_matches` loads the Keras weights into the twin by variable path, then checks
  1. inference: the same outputs with randomised BatchNorm statistics (moving averages used);
  2. training: the same outputs (batch statistics), and after that one training-mode call
     every BatchNorm's moving mean equal to PyTorch's running mean (Keras momentum 0.9 is
     PyTorch's 0.1). The moving variance follows Keras's rule with the *biased* batch
     variance where PyTorch's running variance takes the unbiased one, so it is compared
     with PyTorch's update rescaled by (n - 1) / n, n = values per channel in that batch.
"""

from __future__ import annotations

import pathlib
import sys

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))

KERAS_MOMENTUM = 0.9  # what PyTorch calls momentum 0.1


def _numpy(outputs):
    return [keras.ops.convert_to_numpy(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def assert_twin_matches(keras_obj, twin, keras_call, twin_call, *, tol=1e-4):
    """`keras_call(training)` and `twin_call()` (the twin in the same mode) agree; BN moving stats follow PyTorch's.

    Returns the Keras inference-mode outputs (a list of arrays).
    """
    import torch
    from native_gdfrnet import load_keras_weights

    assert load_keras_weights(twin, keras_obj) == len(keras_obj.weights)
    twin.eval()
    with torch.no_grad():
        mine = _numpy(twin_call())
    theirs = inference = _numpy(keras_call(False))
    for a, b in zip(mine, theirs, strict=True):
        assert a.shape == b.shape and np.abs(b).max() > 0.05
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg="inference mode")

    bns = {m.keras_name: m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    counts = {}
    hooks = [m.register_forward_pre_hook(lambda m, args: counts.__setitem__(m.keras_name, args[0].numel() // args[0].shape[1]))
             for m in bns.values()]
    moving = {w.path: (w, keras.ops.convert_to_numpy(w.value).copy()) for w in keras_obj.weights
              if w.path.endswith(("/moving_mean", "/moving_variance"))}
    twin.train()
    with torch.no_grad():
        mine = _numpy(twin_call())
    for hook in hooks:
        hook.remove()
    theirs = _numpy(keras_call(True))
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg="training mode (batch statistics)")

    assert len(moving) == 2 * len(bns) and set(counts) == set(bns)
    for path, (weight, before) in moving.items():
        layer, attr = path.rsplit("/", 1)
        after = keras.ops.convert_to_numpy(weight.value)
        assert not np.allclose(after, before), f"{path} did not move in a training-mode call"
        if attr == "moving_mean":
            expected = bns[layer].running_mean.numpy()
        else:
            n = counts[layer]
            torch_step = bns[layer].running_var.numpy() - KERAS_MOMENTUM * before  # 0.1 * unbiased batch var
            expected = KERAS_MOMENTUM * before + torch_step * (n - 1) / n
        np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-4, err_msg=f"{path} after one training call")
    return inference
