"""A native PyTorch ResNet-34 train step: the yardstick for Keras's overhead on the same GPU.

No torchvision (the device image's version may differ, and the point is a small,
known model): BasicBlock ResNet-34 ([3, 4, 6, 3], widths 64-512), with the CIFAR
3x3 stem (= keras_gdfr's `net2`, 21.28 M parameters, 1.16 G MACs at 32 px) or the
7x7 stride-2 stem + max-pool (= `net1`). The step is the paper's: SGD momentum 0.9,
weight decay 5e-4 (PyTorch's coupled L2), label smoothing 0.1, on device-resident
synthetic batches; channels_last memory, bf16 autocast and torch.compile are flags.

    python bench/torch_resnet34.py --stem 3x3 --batch 128 --steps 50 --compile --amp bf16 --channels-last

Prints one JSON line: images/s, step time, compile (warm-up) time, peak memory,
MACs (counted by forward hooks) and achieved TFLOP/s (3 x 2 x MACs per image).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet34(nn.Module):
    def __init__(self, num_classes: int = 10, stem: str = "3x3", width: int = 64, depths=(3, 4, 6, 3)):
        super().__init__()
        widths = [width * 2**i for i in range(4)]
        if stem == "3x3":
            self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], widths[0]
        for stage, (depth, cout) in enumerate(zip(depths, widths)):
            for i in range(depth):
                blocks.append(BasicBlock(cin, cout, 2 if (i == 0 and stage > 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def count_macs(model: nn.Module, size: int, device) -> int:
    """True MACs per image of the convs and the linear layer, by forward hooks."""
    total = [0]

    def conv_hook(module, inputs, output):
        kh, kw = module.kernel_size
        total[0] += output.shape[2] * output.shape[3] * module.out_channels * kh * kw * module.in_channels // module.groups

    def linear_hook(module, inputs, output):
        total[0] += module.in_features * module.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 3, size, size, device=device))
        model.train()
    for hook in hooks:
        hook.remove()
    return total[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stem", choices=["3x3", "7x7"], default="3x3")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=int, default=64, help="first stage width (64: ResNet-34)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="bf16")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = ResNet34(stem=args.stem, width=args.width).to(device)
    macs = count_macs(model, args.size, device)
    params = sum(p.numel() for p in model.parameters())
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    batches = [(torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=memory_format),
                torch.randint(0, 10, (args.batch,), device=device)) for _ in range(4)]

    def step(x, y):
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    if args.compile:
        step = torch.compile(step)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for i in range(args.warmup):
        loss = step(*batches[i % 4])
    sync()
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(args.steps):
        loss = step(*batches[i % 4])
    sync()
    elapsed = time.perf_counter() - started
    img_s = args.steps * args.batch / elapsed
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(json.dumps({
        "model": f"native torch ResNet-34 ({args.stem} stem, width {args.width})", "stem": args.stem,
        "batch": args.batch, "size": args.size, "amp": args.amp, "channels_last": args.channels_last,
        "compile": args.compile, "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "params": params, "macs": macs, "warmup_s": warmup_s,
        "train_step_s": elapsed / args.steps, "train_img_s": img_s, "train_tflops": img_s * 6 * macs / 1e12,
        "peak_memory_mib": peak, "final_loss": float(loss), "load_avg": list(os.getloadavg()),
    }), flush=True)


if __name__ == "__main__":
    main()
