#!/usr/bin/env python3
"""Where a GDFRNet's signal goes: each FRRB's terms and the branch merge, on real images.

A diagnostic for docs/results.md ("why GDFRNet-tiny trails its plain twin"), not part of CI.
For every FRRB (FRM at position C) it prints the root mean square of the block's conv path
F(x), of FRM's reconstruction X1 and attention X2 = F(x) * A_w * A_h, and of the shortcut;
for every FOM how saturated its similarity logits are and where its mix M_sim2 sits; at the
branch merge the stage-4 output against the branch. Batch statistics (training-mode BN), as
in training. Then, in inference, the test accuracy with one input of the branch merge replaced
by its mean over the images (how much the head relies on stage 4 and on the branch). From the
repository root, with the project's venv:

    KERAS_BACKEND=torch python tools/signal_paths.py --variant tiny-net5 \\
        --data ../shared/data/cifar10-jpeg.zip [--weights gdfrnet_tiny_cifar10 | RUN/checkpoints/best.weights.h5]

Without --weights the network is at its initialisation (seed --seed, as `gdfr train` seeds it).
"""

from __future__ import annotations

import argparse

import numpy as np


def rms(tensor) -> float:
    from keras import ops

    return float(ops.convert_to_numpy(ops.sqrt(ops.mean(ops.square(tensor)))))


def layer_inputs(model, images):
    """{layer name: [its input tensors]} for one forward pass of `images` in training mode."""
    import keras

    layers = model.layers[1:]
    outputs = keras.Model(model.inputs, [layer.output for layer in layers])([images], training=True)
    by_name = {layer.name: out for layer, out in zip(layers, outputs)}
    inputs = {}
    for layer in layers:
        tensors = layer._inbound_nodes[0].input_tensors
        inputs[layer.name] = [by_name.get(t._keras_history[0].name, images) for t in tensors]
    return inputs


def frrb_line(block, x) -> str:
    conv = block.second_conv(block.first_conv(x, True), True)
    x1, x2 = block.frm.reconstruct(conv, True), block.frm.attend(conv, True)
    gamma = float(np.mean(np.asarray(block.frm.up_bn.gamma.numpy())))
    return (f"{block.name}: conv path F(x) {rms(conv):.3f} | FRM X1 {rms(x1):.3f} (up_bn gamma {gamma:.2f}) "
            f"| X2 {rms(x2):.3f} ({rms(x2) / rms(conv):.2f} of F(x)) | shortcut {rms(block.shortcut_features(x, True)):.3f}")


def fom_line(fom, high, low) -> str:
    from keras import ops

    logits = fom.similarity_logits(high, fom.project_low(low, True))
    mix = ops.sigmoid(fom.refine(fom._prior(ops.sigmoid(logits))))
    logits = np.abs(np.asarray(ops.convert_to_numpy(logits)))
    mix = np.asarray(ops.convert_to_numpy(mix))
    return (f"{fom.name}: |similarity logit| median {np.median(logits):.2f}, {np.mean(logits > 5):.0%} saturated (>5) "
            f"| M_sim2 mean {mix.mean():.3f}, std over pixels {mix.std():.3f}")


def merge_probe(model, images, labels, batch: int = 250) -> dict:
    """Inference top-1 with the merge's inputs as they are, and with either one replaced by its mean."""
    import keras
    from keras import ops

    stage4_t, branch_t = model.get_layer("branch_merge")._inbound_nodes[0].input_tensors
    features = keras.Model(model.inputs, [stage4_t, branch_t])
    parts = [features([images[i : i + batch]], training=False) for i in range(0, len(images), batch)]
    stage4 = np.concatenate([ops.convert_to_numpy(a) for a, _ in parts])
    branch = np.concatenate([ops.convert_to_numpy(b) for _, b in parts])
    head = lambda f: np.asarray(ops.convert_to_numpy(model.get_layer("head")(model.get_layer("avg_pool")(f))))  # noqa: E731
    mean = lambda f: f.mean(axis=0, keepdims=True)  # noqa: E731
    cases = {"as trained": stage4 + branch, "branch -> its mean": stage4 + mean(branch),
             "stage 4 -> its mean": mean(stage4) + branch}
    return {name: float(np.mean(head(f).argmax(-1) == labels)) for name, f in cases.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny-net5")
    parser.add_argument("--data", required=True, help="CIFAR-10 source (ImageFolder zip, packed .npz, ...)")
    parser.add_argument("--weights", default=None, help="a preset name or a .weights.h5 of the same variant")
    parser.add_argument("--images", type=int, default=256, help="test images (class-balanced subset)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from keras_gdfr import GDFRNet
    from keras_gdfr.data.sources import load_dataset
    from keras_gdfr.data.specs import DATASETS

    spec = DATASETS["cifar10"]
    test = load_dataset("cifar10", "test", data_dir=args.data, limit=args.images)
    images = ((test.images.astype("float32") / 255.0 - np.array(spec.mean)) / np.array(spec.std)).astype("float32")
    if keras.config.image_data_format() == "channels_first":
        images = images.transpose(0, 3, 1, 2)
    keras.utils.set_random_seed(args.seed)
    model = GDFRNet(args.variant, input_shape=images.shape[1:], num_classes=10, weights=args.weights)
    print(f"{args.variant}, {'weights ' + args.weights if args.weights else f'initialisation (seed {args.seed})'}, "
          f"{len(images)} test images, batch statistics")
    inputs = layer_inputs(model, images)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "FRRB":
            print("  " + frrb_line(layer, inputs[layer.name][0]))
        elif kind == "FOM":
            print("  " + fom_line(layer, *inputs[layer.name]))
        elif layer.name == "branch_merge":
            stage4, branch = inputs[layer.name]
            print(f"  branch_merge: stage-4 output {rms(stage4):.3f} | branch {rms(branch):.3f}")
    if any(layer.name == "branch_merge" for layer in model.layers):
        probe = merge_probe(model, images, test.labels)
        print(f"  inference top-1 on the {len(images)} images: " + ", ".join(f"{k} {v:.1%}" for k, v in probe.items()))


if __name__ == "__main__":
    main()
