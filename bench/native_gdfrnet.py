"""GDFRNet in plain PyTorch, written from the paper and ../shared/SPEC.md (not from keras_gdfr.layers).

A benchmark twin: `gdfr bench --against native` times it beside the Keras model to
put a number on Keras's overhead, and tests/test_native_twin.py checks that, loaded
with a Keras model's weights (`load_keras_weights`, by the Keras variable paths),
it gives the Keras model's outputs, in inference and in training mode (batch
statistics) -- the first model-level value test of blocks, FRRB positions, branch
wiring and merge. NCHW; the Keras model to compare with is built channels_first.

The network (SPEC.md; docs/architecture.md for the choices where the paper is silent):
stem (3x3 conv-BN-ReLU, or 7x7 s2 conv-BN-ReLU + 3x3 s2 max-pool); 4 stages of residual
blocks (stride 2 at the first block of stages 2-4, 1x1 conv + BN shortcut where the
shape changes); FRRB = residual block with FRM at position A (block input), B (after
conv1-BN-ReLU), C (after conv2-BN, the paper's) or D (on the shortcut); the feature
optimisation branch: level l takes F_h = FGCM(previous level, stage-1 output first; which
levels get one is the FGCM layout, D adding one before the down-sampling path) and F_l =
the stage-(l+1) output into FOM (global or, the documented option, local similarity); then
one depthwise-separable stride-2 step per remaining stage, added to the stage-4 output;
global average pooling, Dense. Each piece (Stem, Block, FRM, FGCM, FOM, SeparableDown,
Branch) is a module of its own, named as the Keras layer it mirrors, so tests can compare
the Keras blocks one by one.

Run as a script for a quick speed figure:
`python bench/native_gdfrnet.py --variant tiny --batch 64 --steps 5`.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # PyTorch's defaults (the paper used PyTorch)


# ---------------------------------------------------------------------------
# Named building blocks: each remembers the Keras layer path it takes weights from.


class Conv(nn.Conv2d):
    """A conv whose weights come from the Keras layer `keras_name` (kernel (kh, kw, in/groups, out))."""

    def __init__(self, keras_name, cin, cout, k, stride=1, padding=None, bias=False, groups=1):
        super().__init__(cin, cout, k, stride=stride, padding=k // 2 if padding is None else padding, bias=bias,
                         groups=groups)
        self.keras_name = keras_name


class DepthwiseConv(Conv):
    """Depthwise conv; the Keras kernel is (kh, kw, C, 1)."""

    def __init__(self, keras_name, channels, k, stride=1):
        super().__init__(keras_name, channels, channels, k, stride=stride, groups=channels)


class BN(nn.BatchNorm2d):
    def __init__(self, keras_name, channels):
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.keras_name = keras_name


def conv_bn(name, cin, cout, k, stride=1, bn_name=None):
    return Conv(name, cin, cout, k, stride), BN(bn_name or f"{name}_bn", cout)


class FRM(nn.Module):
    """Eqs. 1-12: X_out = X1 (down, squeeze, expand, up) + X * A_w * A_h (direction-aware attention)."""

    def __init__(self, name, c, reduction, upsample="transposed", k=4, downsample="depthwise"):
        super().__init__()
        p = f"{name}/"
        self.down = (DepthwiseConv(p + "down", c, 3, stride=2) if downsample == "depthwise"
                     else Conv(p + "down", c, c, 3, stride=2))
        self.down_bn = BN(p + "down_bn", c)
        self.squeeze, self.squeeze_bn = conv_bn(p + "squeeze", c, c // 2, 1)
        self.expand, self.expand_bn = conv_bn(p + "expand", c // 2, c, 1)
        self.upsample = upsample
        if upsample == "transposed":
            self.up = nn.ConvTranspose2d(c, c, k, stride=2, padding=(k - 2) // 2, bias=False)
            self.up.keras_name = p + "up"
        self.up_bn = BN(p + "up_bn", c)
        hidden = max(1, c // reduction)
        self.attn_reduce = Conv(p + "attn_reduce", c, hidden, 1)
        self.attn_bn = BN(p + "attn_bn", hidden)
        self.attn_h = Conv(p + "attn_h", hidden, c, 1, bias=True)
        self.attn_w = Conv(p + "attn_w", hidden, c, 1, bias=True)

    def reconstruct(self, x):
        h, w = x.shape[-2:]
        y = F.relu(self.down_bn(self.down(x)))
        y = F.relu(self.squeeze_bn(self.squeeze(y)))
        y = F.relu(self.expand_bn(self.expand(y)))
        if self.upsample == "transposed":
            y = self.up(y)[..., :h, :w]  # odd sizes: the extra row/column goes
        else:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return F.relu(self.up_bn(y))

    def attend(self, x):
        h, w = x.shape[-2:]
        x_h = x.mean(dim=2, keepdim=True)  # (B, C, 1, W): mean over H
        x_w = x.mean(dim=3, keepdim=True)  # (B, C, H, 1): mean over W
        joined = torch.cat([x_h.transpose(2, 3), x_w], dim=2)  # (B, C, W + H, 1), spatial join
        y = F.leaky_relu(self.attn_bn(self.attn_reduce(joined)), 0.2)
        y_h, y_w = y[:, :, :w], y[:, :, w:]
        a_h = torch.sigmoid(self.attn_h(y_h)).transpose(2, 3)  # (B, C, 1, W)
        a_w = torch.sigmoid(self.attn_w(y_w))  # (B, C, H, 1)
        return x * a_w * a_h

    def forward(self, x):
        return self.reconstruct(x) + self.attend(x)


class Block(nn.Module):
    """Residual block (eq. 13) or FRRB (eq. 14) with FRM at `frm_position`."""

    def __init__(self, name, cin, cout, stride, frm_kwargs=None, frm_position="C"):
        super().__init__()
        self.stride = stride
        self.conv1, self.bn1 = Conv(f"{name}/conv1", cin, cout, 3, stride), BN(f"{name}/bn1", cout)
        self.conv2, self.bn2 = Conv(f"{name}/conv2", cout, cout, 3), BN(f"{name}/bn2", cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut, self.shortcut_bn = conv_bn(f"{name}/shortcut", cin, cout, 1)
        self.position = frm_position if frm_kwargs is not None else None
        if self.position:
            width = cin if self.position == "A" else cout
            self.frm = FRM(f"{name}/frm", width, **frm_kwargs)

    def forward(self, x):
        skip = x
        if self.position == "A":
            x = self.frm(x)
        y = F.relu(self.bn1(self.conv1(x)))
        if self.position == "B":
            y = self.frm(y)
        y = self.bn2(self.conv2(y))
        if self.position == "C":
            y = self.frm(y)
        if self.shortcut is not None:
            skip = self.shortcut_bn(self.shortcut(skip[:, :, ::self.stride, ::self.stride]))
        if self.position == "D":
            skip = self.frm(skip)
        return F.relu(y + skip)


class FGCM(nn.Module):
    """Eqs. 15-23: fixed 7x7 LoG per channel (loaded as `log_kernel`), then conv1x1-BN-conv1x1-BN."""

    def __init__(self, name, c):
        super().__init__()
        self.keras_name = name
        self.register_buffer("log_kernel", torch.zeros(c, 1, 7, 7))
        self.conv1, self.bn1 = Conv(f"{name}/conv1", c, c, 1), BN(f"{name}/bn1", c)
        self.conv2, self.bn2 = Conv(f"{name}/conv2", c, c, 1), BN(f"{name}/bn2", c)

    def forward(self, x):
        detail = F.conv2d(x, self.log_kernel, padding=3, groups=x.shape[1])
        return self.bn2(self.conv2(self.bn1(self.conv1(detail))))


class FOM(nn.Module):
    """Eqs. 24-29: F = M_sim2 * Up(F_l) + (1 - M_sim2) * F_h, F_l projected to C first where wider.

    `similarity="local"` (the documented option, not the paper): the 7x7 conv reads M_sim1 itself.
    """

    def __init__(self, name, c, c_low, similarity="global"):
        super().__init__()
        self.project = None
        if c_low != c:
            self.project, self.project_bn = conv_bn(f"{name}/project", c_low, c, 1)
        self.conv_high = Conv(f"{name}/conv_high", c, max(1, c // 2), 3, bias=True)
        self.conv_low = Conv(f"{name}/conv_low", c, max(1, c // 2), 3, bias=True)
        self.similarity = similarity
        self.refine = Conv(f"{name}/refine", 2 if similarity == "global" else 1, 1, 7, bias=True)

    def forward(self, high, low):
        size = high.shape[-2:]
        if self.project is not None:
            low = self.project_bn(self.project(low))
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        sim1 = torch.sigmoid((self.conv_high(high) * up(self.conv_low(low))).sum(dim=1, keepdim=True))
        if self.similarity == "global":
            stats = torch.cat([sim1.mean(dim=(2, 3), keepdim=True), sim1.amax(dim=(2, 3), keepdim=True)], dim=1)
            prior = stats.expand(-1, -1, *size)
        else:
            prior = sim1
        sim2 = torch.sigmoid(self.refine(prior))
        return sim2 * up(low) + (1 - sim2) * high


class SeparableDown(nn.Module):
    """3x3 depthwise s2 + BN + ReLU, 1x1 pointwise + BN + ReLU."""

    def __init__(self, name, cin, cout):
        super().__init__()
        self.depthwise, self.depthwise_bn = DepthwiseConv(f"{name}/depthwise", cin, 3, 2), BN(f"{name}/depthwise_bn", cin)
        self.pointwise, self.pointwise_bn = conv_bn(f"{name}/pointwise", cin, cout, 1)

    def forward(self, x):
        x = F.relu(self.depthwise_bn(self.depthwise(x)))
        return F.relu(self.pointwise_bn(self.pointwise(x)))


class Stem(nn.Module):
    """3x3 s1 conv-BN-ReLU, or 7x7 s2 conv-BN-ReLU + 3x3 s2 max-pool (pad 1)."""

    def __init__(self, name, cout, kind="3x3"):
        super().__init__()
        self.kind = kind
        self.conv = Conv(f"{name}/conv", 3, cout, 7 if kind == "7x7" else 3, stride=2 if kind == "7x7" else 1)
        self.bn = BN(f"{name}/bn", cout)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return F.max_pool2d(x, 3, stride=2, padding=1) if self.kind == "7x7" else x


# Branch levels that get an FGCM before their FOM, per FGCM layout (Table 5); D adds one on the path.
FGCM_LEVELS = {"A": (1, 2, 3), "B": (1,), "C": (2,), "D": (1, 2, 3)}


class Branch(nn.Module):
    """The feature optimization branch on the four stage outputs, merged into stage 4's by addition.

    Level l: F_h = FGCM(running map) (per layout; stage-1 output first), F_l = stage (l+1)'s output,
    into FOM. Layout D: one more FGCM on the map before the down-sampling path. Then one
    depthwise-separable stride-2 step per remaining stage; the result is added to stage 4's output.
    """

    def __init__(self, widths, depth, layout="A", similarity="global"):
        super().__init__()
        self.depth = depth
        self.fgcm = nn.ModuleDict({str(level): FGCM(f"branch{level}_fgcm", widths[0])
                                   for level in FGCM_LEVELS[layout] if level <= depth})
        self.fom = nn.ModuleList(FOM(f"branch{level}_fom", widths[0], widths[level], similarity)
                                 for level in range(1, depth + 1))
        self.path_fgcm = FGCM("branch_path_fgcm", widths[0]) if layout == "D" else None
        self.downs = nn.ModuleList(SeparableDown(f"branch_down{i}", widths[i - 1], widths[i])
                                   for i in range(1, len(widths)))

    def forward(self, outputs):
        branch = outputs[0]
        for level in range(1, self.depth + 1):
            high = self.fgcm[str(level)](branch) if str(level) in self.fgcm else branch
            branch = self.fom[level - 1](high, outputs[level])
        if self.path_fgcm is not None:
            branch = self.path_fgcm(branch)
        for down in self.downs:
            branch = down(branch)
        return outputs[-1] + branch


class NativeGDFRNet(nn.Module):
    """GDFRNet from a `keras_gdfr.variants` configuration (the knob table, plain data)."""

    def __init__(self, config: dict, num_classes: int):
        super().__init__()
        widths, depths = tuple(config["widths"]), tuple(config["depths"])
        self.stem = Stem("stem", widths[0], config["stem"])
        frm_kwargs = None
        if config["frm"]:
            frm_kwargs = dict(reduction=config["reduction"], upsample=config["upsample"],
                              k=config["upsample_kernel"], downsample=config["frm_downsample"])
        self.stages = nn.ModuleList()
        cin = widths[0]
        for s, (width, depth) in enumerate(zip(widths, depths), start=1):
            blocks = [Block(f"stage{s}_block{b}", cin if b == 1 else width, width,
                            2 if (b == 1 and s > 1) else 1, frm_kwargs, config["frm_position"])
                      for b in range(1, depth + 1)]
            self.stages.append(nn.Sequential(*blocks))
            cin = width
        depth = int(config["branch_depth"])
        self.branch = (Branch(widths, depth, config.get("fgcm_layout", "A"), config.get("fom_similarity", "global"))
                       if depth else None)
        self.head = nn.Linear(widths[-1], num_classes)
        self.head.keras_name = "head"

    def features(self, x):
        """The final feature map: stage 4's output, plus the branch where there is one."""
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return self.branch(outputs) if self.branch is not None else x

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def build(variant: str, num_classes: int = 10, **overrides) -> NativeGDFRNet:
    from keras_gdfr.variants import variant_config

    config = variant_config(variant)
    config.update(overrides)
    return NativeGDFRNet(config, num_classes)


# ---------------------------------------------------------------------------
# Weights from a Keras model, by variable path.


def _converted(module, attr: str, value):
    """A Keras array in the torch parameter's layout."""
    t = torch.as_tensor(value)
    if attr == "kernel" and isinstance(module, nn.ConvTranspose2d):
        return t.permute(3, 2, 0, 1)  # (kh, kw, out, in) -> (in, out, kh, kw)
    if attr == "kernel" and isinstance(module, nn.Conv2d):
        return t.permute(3, 2, 0, 1) if module.groups == 1 else t.permute(2, 3, 0, 1)
    if attr == "kernel" and isinstance(module, nn.Linear):
        return t.T
    if attr == "log_kernel":
        return t.permute(2, 3, 0, 1)
    return t


TORCH_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
               "moving_mean": "running_mean", "moving_variance": "running_var", "log_kernel": "log_kernel"}


def load_keras_weights(twin: nn.Module, keras_model) -> int:
    """Copy every Keras weight into `twin` by path; returns how many. Raises on any unmatched weight."""
    import keras

    by_name = {m.keras_name: m for m in twin.modules() if hasattr(m, "keras_name")}
    loaded = set()
    for weight in keras_model.weights:
        layer, attr = weight.path.rsplit("/", 1)
        module = by_name.get(layer)
        if module is None:
            raise KeyError(f"native twin has no layer for Keras weight {weight.path}")
        target = getattr(module, TORCH_NAMES[attr])
        value = _converted(module, attr, keras.ops.convert_to_numpy(weight.value))
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{weight.path}: Keras {tuple(value.shape)} vs native {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(value.to(target.dtype))
        loaded.add((id(module), TORCH_NAMES[attr]))
    expected = {(id(m), n) for m in twin.modules() for n, _ in
                list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
                if n != "num_batches_tracked"}
    missing = expected - loaded
    if missing:
        raise KeyError(f"{len(missing)} native weights got no Keras value")
    return len(loaded)


# ---------------------------------------------------------------------------
# A quick standalone speed figure (gdfr bench --against native interleaves it with Keras).


def train_step_fn(model: nn.Module, lr: float = 0.1, label_smoothing: float = 0.1):
    """One SGD (momentum 0.9, weight decay 5e-4, coupled) step with label-smoothed cross-entropy."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
        loss.backward()
        optimizer.step()
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    model = build(args.variant).train()
    step = train_step_fn(model)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    step(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step(x, y)
    elapsed = time.perf_counter() - start
    print(f"native {args.variant} batch {args.batch}: {args.steps * args.batch / elapsed:.1f} img/s, "
          f"loss {float(loss):.3f}, finite {math.isfinite(float(loss))}")


if __name__ == "__main__":
    main()
