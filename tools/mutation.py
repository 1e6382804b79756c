#!/usr/bin/env python3
"""Mutation run over the model and the training: how many deliberate mistakes the suite catches.

Not part of CI. One command (from the repository root, with the project's venv):

    nice -n 15 python tools/mutation.py                 # every mutant against HEAD's tests
    python tools/mutation.py --list                     # the table
    python tools/mutation.py --only frrb-d-as-c,bn-momentum-0.99
    python tools/mutation.py --ref issue-14-values      # another branch, code and tests (--tests-from R: tests/ + bench/ only)
    python tools/mutation.py --check                    # every snippet found exactly once (tests/test_mutation_table.py)

Why a table and not mutmut: mutmut 3 generates hundreds of operator mutants (most in
error messages, logging, CLI text) and runs the suite for each; with a 15-minute suite
on 2 shared cores that is days. Each mutant here is one stated mistake that breaks a
fact of the paper or of the training recipe, with the few test files that should see it.

How it runs: `git archive REF` (default HEAD) is unpacked into a temporary folder (the
working tree is never touched); with `--tests-from R`, that folder's `tests/` and
`bench/` come from R instead. Every mutant's snippet is checked first: found exactly
once in its file and the mutated file still compiles (a stale entry fails loudly).
Then the mapped tests run once unmutated (they must pass), and for each mutant: the
file is rewritten, `pytest -x -q` runs its selection under a timeout, the file is
restored. PYTHONDONTWRITEBYTECODE=1 keeps a stale .pyc from hiding a same-size edit.

Outcomes: `caught` (a test failed), `survived` (all passed), `timeout` (reported
apart, not counted as caught), `broken` (pytest could not collect or run: the mutant
or the selection is invalid; not counted). Caught fraction = caught / (caught +
survived + timeout). The tool lowers its own priority (nice 15) and waits while the
1-minute load average is above `--max-load` (the shared machine's rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to the repository root
    old: str  # exact snippet, must occur exactly once in `file`
    new: str
    breaks: str  # the paper/training fact it breaks
    tests: tuple[str, ...]  # pytest arguments: paths, node ids, or "@group"


# Test selections shared by several mutants. Node ids keep the slow files narrow
# (tests/test_variants.py's 96 forward passes, the end-to-end trainings); "?path" is
# optional (run where the tree has it, e.g. a branch's new test file).
GROUPS: dict[str, tuple[str, ...]] = {
    "twin": ("tests/test_native_twin.py", "tests/test_variants.py::test_every_variant_equals_its_twin"),
    "layers": ("tests/test_layers_reference.py", "tests/test_fgcm.py"),
    "model": (
        "tests/test_backbone.py",
        "tests/test_counting.py",
        "tests/test_variants.py::test_gdfrnet_is_the_papers_configuration",
        "tests/test_variants.py::test_variants_differ_only_in_their_knob",
        "tests/test_variants.py::test_layer_classes_follow_the_variant",
        "tests/test_variants.py::test_224_gives_7x7_stage4_maps_and_branch_matches_them",
        "tests/test_variants.py::test_odd_input_size_keeps_every_map_consistent",
    ),
    "bn": ("tests/test_fast_layers.py",),
    "train": (
        "tests/test_schedule.py",
        "tests/test_optimizer.py",
        "tests/test_recipe.py",
        "tests/test_integrity_inputs.py::test_the_evaluation_loss_is_the_validation_loss_even_for_extreme_logits",
        "tests/test_integrity_inputs.py::test_the_schedule_is_printed_epoch_by_epoch",
        "?tests/test_training_semantics.py",  # issue 14's training-semantics tests, where present
    ),
    "augment": (
        "tests/test_augment.py",
        "tests/test_pipeline.py",
        "tests/test_device_pipeline.py::test_same_batches_as_tf_pipeline",
        "tests/test_device_pipeline.py::test_resume_from_an_epoch_gives_the_same_batches",
        "tests/test_device_pipeline.py::test_drop_remainder_and_memory_format",
        "tests/test_device_pipeline.py::test_auto_choice_follows_the_memory_budget",
        "?tests/test_training_semantics.py",
    ),
    "checkpoints": ("tests/test_integrity_checkpoints.py",),
    "resume": ("tests/test_training.py::test_resume_after_sigkill_matches_uninterrupted_run",),
    "eval": ("tests/test_evaluation.py",),
}

L = "keras_gdfr/layers/"
M = "keras_gdfr/models/gdfrnet.py"
V = "keras_gdfr/variants.py"
T = "keras_gdfr/training/"
D = "keras_gdfr/data/"

MUTANTS: tuple[Mutant, ...] = (
    # --- the examples -------------------------------------------------------
    Mutant("loss-smoothing-0", T + "run.py",
           "label_smoothing=recipe.train.label_smoothing, jit_compile",
           "label_smoothing=0.0, jit_compile",
           "gdfr train compiles plain cross-entropy: the paper's label smoothing 0.1 (Table 2) is lost",
           ("@train",)),
    Mutant("frrb-frm-after-add", L + "frrb.py",
           "        if position == \"C\":\n            y = self.frm_features(y, training)\n"
           "        shortcut = self.shortcut_features(inputs, training)\n",
           "        shortcut = self.shortcut_features(inputs, training)\n"
           "        if position == \"C\":\n            return ops.relu(self.frm_features(y + shortcut, training))\n",
           "eq. 14: H(x) = M(F(x)) + x, FRM before the residual addition, not after it",
           ("@twin",)),
    Mutant("frrb-d-as-c", L + "frrb.py",
           "        if position == \"D\":\n            shortcut = self.frm_features(shortcut, training)\n",
           "        if position == \"D\":\n            y = self.frm_features(y, training)\n",
           "Table 4 scheme D puts FRM on the shortcut path, not after the second conv (scheme C)",
           ("@twin",)),
    Mutant("frrb-final-relu", L + "frrb.py",
           "        return ops.relu(y + shortcut)\n",
           "        return y + shortcut\n",
           "FRRB ends with ReLU after the addition (eq. 14, Fig. 3b)",
           ("@twin",)),
    Mutant("stem-final-relu", L + "stem.py",
           "x = ops.relu(self.bn(x, training=training))",
           "x = self.bn(x, training=training)",
           "the stem is conv-BN-ReLU (ResNet-34's stem, Table 9)",
           ("@twin",)),
    Mutant("branch-merge-multiply", M,
           "keras.layers.Add(name=\"branch_merge\")",
           "keras.layers.Multiply(name=\"branch_merge\")",
           "the branch joins stage 4 by addition (section 1.3.4, docs/architecture.md)",
           ("@twin",)),
    Mutant("bn-momentum-0.99", L + "_utils.py",
           "momentum=0.9, epsilon=1e-5",
           "momentum=0.99, epsilon=1e-5",
           "BatchNorm moving averages follow PyTorch's momentum 0.1 (Keras 0.9), the paper's framework",
           ("@bn", "@twin", "@layers")),
    Mutant("flip-svhn-spec", D + "specs.py",
           "(\"train\", \"test\"), False,\n            (0.4377",
           "(\"train\", \"test\"), True,\n            (0.4377",
           "no horizontal flip for SVHN: a mirrored digit changes meaning",
           ("@augment", "tests/test_recipe.py")),
    Mutant("flip-gtsrb-spec", D + "specs.py",
           "(\"train\", \"test\"), False,\n            (0.3403",
           "(\"train\", \"test\"), True,\n            (0.3403",
           "no horizontal flip for GTSRB: a mirrored sign changes meaning",
           ("@augment", "tests/test_recipe.py")),
    Mutant("flip-svhn-recipe", "recipes/svhn.toml",
           "flip = false                # no flip: a mirrored digit",
           "flip = true                 # no flip: a mirrored digit",
           "the shipped SVHN recipe must not flip",
           ("tests/test_recipe.py", "@augment")),
    # --- layers: FRM (eqs. 1-12) ------------------------------------------------------
    Mutant("frm-sum-to-product", L + "frm.py",
           "return self.reconstruct(inputs, training) + self.attend(inputs, training)",
           "return self.reconstruct(inputs, training) * self.attend(inputs, training)",
           "eq. 12: X_out = X1 + X2",
           ("@layers",)),
    Mutant("frm-drop-a_h", L + "frm.py",
           "return x * a_w * a_h", "return x * a_w",
           "eq. 11: X2 = X * A_w * A_h (both directions)",
           ("@layers",)),
    Mutant("frm-crop-offset", L + "frm.py",
           "crop = (self.upsample_kernel - 2) // 2",
           "crop = 0",
           "the transposed conv's padding (k-2)/2 is cropped symmetrically (Table 3)",
           ("@layers",)),
    Mutant("frm-reduction-ignored", L + "frm.py",
           "mid = max(1, channels // self.reduction)",
           "mid = max(1, channels // 4)",
           "the attention's width is C/r with the configured r (Fig. 8, r = 32)",
           ("@layers", "@model")),
    # --- FOM (eqs. 24-29) -------------------------------------------------------------
    Mutant("fom-fusion-swapped", L + "fom.py",
           "m_sim2 * self._upsample(f_low, size) + (1.0 - m_sim2) * f_high",
           "(1.0 - m_sim2) * self._upsample(f_low, size) + m_sim2 * f_high",
           "eq. 29: F = M * Up(F_l) + (1 - M) * F_h",
           ("@layers",)),
    Mutant("fom-refine-kernel-3", L + "fom.py",
           "DirectConv2D(1, 7, padding=\"same\"",
           "DirectConv2D(1, 3, padding=\"same\"",
           "eq. 28: the similarity refinement is a 7x7 conv",
           ("@layers", "@model")),
    # --- FGCM (eqs. 15-23) ------------------------------------------------------------
    Mutant("fgcm-laplacian-4", L + "fgcm.py",
           "np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]]",
           "np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]",
           "eq. 21: the 8-neighbour Laplacian",
           ("@layers",)),
    Mutant("fgcm-sigma-2", L + "fgcm.py",
           "gaussian_size: int = 5, sigma: float = 1.0, data_format",
           "gaussian_size: int = 5, sigma: float = 2.0, data_format",
           "eq. 16: the Gaussian has sigma 1 (5x5)",
           ("@layers", "@twin")),
    Mutant("fgcm-relu-between", L + "fgcm.py",
           "y = self.bn1(self.conv1(self.detail(inputs)), training=training)",
           "y = ops.relu(self.bn1(self.conv1(self.detail(inputs)), training=training))",
           "eq. 23 names no activation between the two 1x1 conv-BN",
           ("@layers", "@twin")),
    # --- ResidualBlock, SeparableDown, padding, BN ------------------------------------
    Mutant("block-first-relu", L + "residual_block.py",
           "return ops.relu(self.bn1(y, training=training))",
           "return self.bn1(y, training=training)",
           "F(x) = BN(conv(ReLU(BN(conv(x))))) (eq. 13)",
           ("@twin",)),
    Mutant("block-final-relu", L + "residual_block.py",
           "return ops.relu(self.residual_features(inputs, training) + self.shortcut_features(inputs, training))",
           "return self.residual_features(inputs, training) + self.shortcut_features(inputs, training)",
           "the plain block ends with ReLU after the addition (eq. 13)",
           ("@twin",)),
    Mutant("block-projection-always", L + "residual_block.py",
           "if self.strides != 1 or U.channels_of(input_shape, df) != self.filters:",
           "if True:",
           "the shortcut is the identity where the shape is kept (ResNet-34 option B)",
           ("@twin", "@model")),
    Mutant("block-shortcut-phase", L + "residual_block.py",
           "x = x[:, ::s, ::s, :] if self.data_format",
           "x = x[:, 1::s, 1::s, :] if self.data_format",
           "the 1x1 stride-2 shortcut samples pixels 0, 2, 4... as PyTorch's strided conv",
           ("@bn", "@twin")),
    Mutant("pad-end-only", L + "_utils.py",
           "widths = [[0, 0], [pad, pad], [pad, pad], [0, 0]]",
           "widths = [[0, 0], [0, 2 * pad], [0, 2 * pad], [0, 0]]",
           "stride-2 convs pad both sides as PyTorch (channels_last path)",
           ("@layers", "@bn", "@model")),
    Mutant("bn-eps-1e-3", L + "_utils.py",
           "epsilon=1e-5, dtype=dtype", "epsilon=1e-3, dtype=dtype",
           "BatchNorm eps is PyTorch's 1e-5",
           ("@layers", "@twin")),
    Mutant("sepdown-final-relu", L + "separable_down.py",
           "return ops.relu(self.pointwise_bn(self.pointwise(x), training=training))",
           "return self.pointwise_bn(self.pointwise(x), training=training)",
           "the branch's down-sampling is depthwise-BN-ReLU, pointwise-BN-ReLU (section 1.3.4)",
           ("@twin",)),
    # --- the model builder and the variants ------------------------------------------
    Mutant("head-max-pool", M,
           "x = keras.layers.GlobalAveragePooling2D(data_format=df, name=\"avg_pool\")(x)",
           "x = keras.layers.GlobalMaxPooling2D(data_format=df, name=\"avg_pool\")(x)",
           "the head pools by global average (ResNet)",
           ("@model", "@twin")),
    Mutant("depths-stage4-2", V,
           "depths=(3, 4, 6, 3),", "depths=(3, 4, 6, 2),",
           "ResNet-34 stage depths 3-4-6-3",
           ("@model",)),
    Mutant("default-frm-position-b", V,
           "frm_position=\"C\",", "frm_position=\"B\",",
           "GDFRNet uses FRM position C (Table 4, eq. 14)",
           ("@model", "@twin")),
    Mutant("fgcm-layouts-b-c-swapped", M,
           "\"B\": {1}, \"C\": {2}", "\"B\": {2}, \"C\": {1}",
           "Table 5: layout B puts FGCM before the first FOM only, C before the second only",
           ("@model", "@twin")),
    Mutant("fgcm-layout-a-two-levels", M,
           "levels = {\"A\": {1, 2, 3},", "levels = {\"A\": {1, 2},",
           "layout A: an FGCM before every FOM level (depth 3 included)",
           ("@model", "@twin")),
    Mutant("fgcm-path-on-c", M,
           "layout == \"D\"\n", "layout in (\"C\", \"D\")\n",
           "only layout D adds an FGCM on the stage-3 down-sampling path",
           ("@model", "@twin")),
    Mutant("branch-low-from-next-stage", M,
           "([high, stage_outputs[level]])", "([high, stage_outputs[min(level + 1, 3)]])",
           "branch level l fuses stage l+1's output (Fig. 7)",
           ("@model", "@twin")),
    Mutant("stage-strides", M,
           "1 if stage == 1 else 2, block_args", "1 if stage <= 2 else 2, block_args",
           "stages 2-4 halve the resolution",
           ("@model",)),
    # --- training: schedule, optimizer, loss, checkpoints, seed, metrics ---------------
    Mutant("milestone-last-180", T + "schedule.py",
           "PAPER_MILESTONES = (60, 120, 160)", "PAPER_MILESTONES = (60, 120, 180)",
           "the schedule decays at epochs 60, 120, 160 (SPEC.md)",
           ("@train",)),
    Mutant("gamma-0.1", T + "schedule.py",
           "PAPER_GAMMA = 0.2", "PAPER_GAMMA = 0.1",
           "learning rate x0.2 at each milestone (Table 2, 'Ld 0.2')",
           ("@train",)),
    Mutant("multistep-off-by-one", T + "optimizer.py",
           "ops.greater_equal(step, boundaries)", "ops.greater(step, boundaries)",
           "the rate changes on the first step of the milestone epoch (PyTorch MultiStepLR)",
           ("@train",)),
    Mutant("weight-decay-twice", T + "optimizer.py",
           "        # into the gradient in update_step instead, so nothing happens here.\n        return\n",
           "        # into the gradient in update_step instead, so nothing happens here.\n"
           "        return super()._apply_weight_decay(variables)\n",
           "weight decay is coupled L2 only (PyTorch SGD), not also Keras's decoupled decay",
           ("@train",)),
    Mutant("nesterov-swapped", T + "optimizer.py",
           "step = ops.add(gradient, ops.multiply(buffer, self.momentum))",
           "step = ops.add(buffer, ops.multiply(gradient, self.momentum))",
           "PyTorch's Nesterov step is g' + momentum * buf",
           ("@train",)),
    Mutant("recipe-momentum-ignored", T + "optimizer.py",
           "momentum=train.momentum,", "momentum=MOMENTUM,",
           "the recipe's train.momentum reaches the optimizer",
           ("@train",)),
    Mutant("recipe-weight-decay-ignored", T + "optimizer.py",
           "weight_decay=train.weight_decay,", "weight_decay=WEIGHT_DECAY,",
           "the recipe's train.weight_decay reaches the optimizer",
           ("@train",)),
    Mutant("eval-loss-smoothing", T + "run.py",
           "targets = np.full(log_probs.shape, smoothing / k)",
           "targets = np.full(log_probs.shape, smoothing / (k - 1))",
           "eval.json's loss is the training loss (label smoothing spread over all K classes)",
           ("@train",)),
    Mutant("best-on-ties-last", T + "run.py",
           "is_best = float(logs[\"val_accuracy\"]) > self.best_val_accuracy",
           "is_best = float(logs[\"val_accuracy\"]) >= self.best_val_accuracy",
           "best.weights.h5 holds the first epoch of equal best accuracy (as best_epoch reports)",
           ("@checkpoints", "tests/test_tui_monitor.py::test_best_epoch_is_the_first_epoch_that_reached_the_best_accuracy")),
    Mutant("checkpoint-prunes-newer", T + "checkpoints.py",
           "if number is not None and number < epoch:", "if number is not None and number != epoch:",
           "a newer epoch directory is never deleted",
           ("@checkpoints",)),
    Mutant("resume-skips-optimizer", T + "checkpoints.py",
           "    _load_optimizer(optimizer, model, path / \"optimizer.npz\")\n    return state",
           "    return state",
           "resume restores the momentum buffers and the iteration counter (schedule position)",
           ("@checkpoints", "@resume")),
    Mutant("resume-redoes-epoch", T + "run.py",
           "initial_epoch, best = int(state[\"epoch\"]), float(",
           "initial_epoch, best = int(state[\"epoch\"]) - 1, float(",
           "a resumed run continues after its last checkpointed epoch",
           ("@resume",)),
    Mutant("seed-ignored", T + "run.py",
           "keras.utils.set_random_seed(recipe.train.seed)", "keras.utils.set_random_seed(0)",
           "train.seed sets the weight initialisation (runs with different seeds differ)",
           ("@train", "@resume")),
    Mutant("confusion-transposed", "keras_gdfr/evaluation.py",
           "flat = y_true * num_classes + y_pred", "flat = y_pred * num_classes + y_true",
           "confusion_matrix[i, j] counts true class i predicted as j (Fig. 14)",
           ("@eval",)),
    # --- augmentation and pipeline flags ----------------------------------------------
    Mutant("pad-2", D + "augment.py",
           "PAD = 4  #", "PAD = 2  #",
           "32-px images are padded by 4 before the random crop (Table 2)",
           ("@augment", "tests/test_recipe.py")),
    Mutant("crop-room", D + "augment.py",
           'x = ops.np.floor(u * ops.const(float(room + 1), "float32"))',
           'x = ops.np.floor(u * ops.const(float(room), "float32"))',
           "crop offsets are uniform over 0..room (the last offset included)",
           ("@augment",)),
    Mutant("flip-probability", D + "augment.py",
           "np_.where(draws[:, 2:3] < 0.5,", "np_.where(draws[:, 2:3] < 0.25,",
           "horizontal flip with probability 0.5",
           ("@augment",)),
    Mutant("cifar10-mean", D + "specs.py",
           "(0.4914, 0.4822, 0.4465)", "(0.4914, 0.4822, 0.4822)",
           "CIFAR-10's per-channel mean (blue 0.4465)",
           ("@augment", "@model", "tests/test_recipe.py")),
    Mutant("eval-crop-corner", D + "augment.py",
           "offset = (resize - size) // 2", "offset = 0",
           "evaluation takes the centre crop of the resized image",
           ("@augment",)),
    Mutant("epoch-plan-same-every-epoch", D + "augment.py",
           "rng = np.random.default_rng([int(seed), int(epoch)])", "rng = np.random.default_rng([int(seed)])",
           "each epoch has its own order and draws (a function of seed and epoch)",
           ("@augment",)),
    Mutant("recipe-flip-ignored", T + "run.py",
           "pad=a.pad, resize=a.resize, flip=a.flip, normalize=a.normalize)",
           "pad=a.pad, resize=a.resize, flip=None, normalize=a.normalize)",
           "the recipe's augment.flip reaches the batches of gdfr train",
           ("@augment", "@train")),
    Mutant("device-train-unaugmented", D + "device_pipeline.py",
           "return self.data.batch(order[start:stop], draws[start:stop], self.augment)",
           "return self.data.batch(order[start:stop], draws[start:stop], False)",
           "the device pipeline's training batches are augmented",
           ("@augment",)),
    Mutant("auto-pipeline-inverted", D + "device_pipeline.py",
           "if nbytes <= budget:", "if nbytes > budget:",
           "data.pipeline = auto keeps the splits on the device when they fit the budget",
           ("@augment",)),
)


class TableError(Exception):
    """A mutant that no longer applies: snippet missing or ambiguous, or the result does not compile."""


def apply(mutant: Mutant, text: str) -> str:
    """`text` with the mutant's snippet replaced; TableError unless it occurs exactly once."""
    count = text.count(mutant.old)
    if count != 1:
        raise TableError(f"{mutant.id}: snippet found {count} times in {mutant.file} (must be exactly once): {mutant.old!r}")
    return text.replace(mutant.old, mutant.new)


def check_compiles(mutant: Mutant, text: str) -> None:
    if mutant.file.endswith(".py"):
        try:
            compile(text, mutant.file, "exec")
        except SyntaxError as error:
            raise TableError(f"{mutant.id}: mutated {mutant.file} does not compile: {error}") from None
    elif mutant.file.endswith(".toml"):
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise TableError(f"{mutant.id}: mutated {mutant.file} is not TOML: {error}") from None


def selection(mutant: Mutant, extra: tuple[str, ...] = (), root: pathlib.Path | None = None) -> list[str]:
    """The pytest arguments of a mutant: groups expanded, duplicates dropped, order kept.

    "?path" entries are optional: kept when `root` holds the file (or when no `root` is given).
    """
    out: list[str] = []
    for item in (*mutant.tests, *extra):
        for arg in GROUPS[item[1:]] if item.startswith("@") else (item,):
            if arg.startswith("?"):
                arg = arg[1:]
                if root is not None and not (root / arg.split("::")[0]).is_file():
                    continue
            if arg not in out:
                out.append(arg)
    return out


def check_table(root: pathlib.Path = REPO, mutants=MUTANTS) -> list[str]:
    """Every problem of the table against the tree at `root` (empty when all mutants apply)."""
    problems = []
    ids = [m.id for m in mutants]
    problems += [f"duplicate id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for mutant in mutants:
        path = root / mutant.file
        if not path.is_file():
            problems.append(f"{mutant.id}: no file {mutant.file}")
            continue
        if mutant.old == mutant.new:
            problems.append(f"{mutant.id}: old and new snippets are equal")
        try:
            check_compiles(mutant, apply(mutant, path.read_text(encoding="utf-8")))
        except TableError as error:
            problems.append(str(error))
        for item in mutant.tests:
            if item.startswith("@") and item[1:] not in GROUPS:
                problems.append(f"{mutant.id}: unknown test group {item!r}")
    for name, args in GROUPS.items():
        for arg in args:
            if not arg.startswith("?") and not (root / arg.split("::")[0]).is_file():
                problems.append(f"group {name}: no test file {arg.split('::')[0]}")
    return problems


# ---------------------------------------------------------------------------
# Running.


def _git(*args, cwd=REPO) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True).stdout


def make_tree(ref: str, tests_from: str | None) -> pathlib.Path:
    """A throwaway copy of `ref` (tests/ and bench/ from `tests_from` when given)."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="gdfr-mutation-"))
    subprocess.run(f"git archive {ref} | tar -x -C {tmp}", shell=True, cwd=REPO, check=True)
    if tests_from:
        for part in ("tests", "bench"):
            shutil.rmtree(tmp / part, ignore_errors=True)
        subprocess.run(f"git archive {tests_from} tests bench | tar -x -C {tmp}", shell=True, cwd=REPO, check=True)
    return tmp


def _environment(tree: pathlib.Path) -> dict:
    shared = os.environ.get("GDFR_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
            "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch"), "GDFR_SHARED_DATA": shared}


def wait_for_load(max_load: float) -> float:
    """Sleep while the 1-minute load average is above `max_load`; the seconds waited."""
    waited = 0.0
    while max_load > 0 and os.getloadavg()[0] > max_load:
        if waited == 0:
            print(f"  (load {os.getloadavg()[0]:.1f} > {max_load}: waiting)", flush=True)
        time.sleep(30)
        waited += 30
    return waited


def run_pytest(tree: pathlib.Path, args: list[str], timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, first failure line) of `pytest -x -q args` in `tree`."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=tree, env=_environment(tree), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the test's own subprocesses too
        process.communicate()
        return "timeout", time.perf_counter() - started, f"no result after {timeout:.0f} s"
    seconds = time.perf_counter() - started
    failed = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    if process.returncode == 0:
        return "survived", seconds, ""
    if process.returncode == 1 and failed:
        return "caught", seconds, failed[0][:200]
    reasons = [line for line in output.splitlines() if re.match(r"^E\s+\S", line)]  # e.g. an ImportError
    last = (reasons or failed or output.strip().splitlines() or ["(no output)"])[0 if reasons else -1]
    return "broken", seconds, f"pytest exit {process.returncode}: {last[:200]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    parser.add_argument("--check", action="store_true", help="check every snippet applies exactly once, and exit")
    parser.add_argument("--only", default="", help="comma-separated mutant ids")
    parser.add_argument("--ref", default="HEAD", help="the code to mutate (a git ref; default HEAD)")
    parser.add_argument("--tests-from", default=None, help="take tests/ and bench/ from this git ref")
    parser.add_argument("--extra-tests", nargs="*", default=(), help="pytest arguments added to every selection")
    parser.add_argument("--timeout", type=float, default=420, help="seconds per mutant (default 420)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selections")
    parser.add_argument("--max-load", type=float, default=4.0, help="wait while the 1-min load is above this (0: never)")
    parser.add_argument("--json", type=pathlib.Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    options = parser.parse_args(argv)

    mutants = MUTANTS
    if options.only:
        wanted = [i.strip() for i in options.only.split(",") if i.strip()]
        unknown = sorted(set(wanted) - {m.id for m in MUTANTS})
        if unknown:
            parser.error(f"--only: unknown mutant id(s) {', '.join(unknown)} (see --list)")
        mutants = tuple(m for m in MUTANTS if m.id in wanted)
    if options.list:
        for m in mutants:
            print(f"{m.id:30s} {m.file:40s} {m.breaks}")
        print(f"{len(mutants)} mutants")
        return 0
    if options.check:
        problems = check_table(REPO, mutants)
        print("\n".join(problems) or f"all {len(mutants)} mutants apply exactly once and compile")
        return 1 if problems else 0

    try:
        os.nice(15)
    except OSError:
        pass
    extra = tuple(options.extra_tests)
    tree = make_tree(options.ref, options.tests_from)
    commit = _git("rev-parse", "--short", options.ref).decode().strip()
    tests_commit = _git("rev-parse", "--short", options.tests_from).decode().strip() if options.tests_from else commit
    print(f"mutation run: code {options.ref} ({commit}), tests {options.tests_from or options.ref} ({tests_commit}), "
          f"{len(mutants)} mutants, tree {tree}", flush=True)
    results = []
    started = time.perf_counter()
    try:
        problems = check_table(tree, mutants)
        if problems:
            print("the mutant table does not apply to this tree:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 2
        if not options.no_baseline:
            union: list[str] = []
            for m in mutants:
                union += [a for a in selection(m, extra, tree) if a not in union]
            wait_for_load(options.max_load)
            outcome, seconds, detail = run_pytest(tree, union, options.timeout * 3)
            print(f"baseline (unmutated, {len(union)} selections): {outcome} in {seconds:.0f} s {detail}", flush=True)
            if outcome != "survived":
                print("the unmutated tests do not pass: no mutant result would mean anything", file=sys.stderr)
                return 2
        for m in mutants:
            path = tree / m.file
            original = path.read_text(encoding="utf-8")
            wait_for_load(options.max_load)
            path.write_text(apply(m, original), encoding="utf-8")
            try:
                outcome, seconds, detail = run_pytest(tree, selection(m, extra, tree), options.timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            results.append(dict(id=m.id, outcome=outcome, seconds=round(seconds, 1), detail=detail,
                                file=m.file, breaks=m.breaks))
            print(f"{outcome.upper():9s} {m.id:30s} {seconds:6.0f} s  {detail or m.breaks}", flush=True)
    finally:
        if not options.keep:
            shutil.rmtree(tree, ignore_errors=True)
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("caught", "survived", "timeout", "broken")}
    scored = counts["caught"] + counts["survived"] + counts["timeout"]
    fraction = counts["caught"] / scored if scored else 0.0
    print(f"caught {counts['caught']}/{scored} = {fraction:.0%} (survived {counts['survived']}, timeout "
          f"{counts['timeout']}, broken {counts['broken']}) in {(time.perf_counter() - started) / 60:.1f} min; "
          f"code {commit}, tests {tests_commit}")
    survivors = [r["id"] for r in results if r["outcome"] == "survived"]
    if survivors:
        print("survivors: " + ", ".join(survivors))
    if options.json:
        options.json.write_text(json.dumps(dict(code=commit, tests=tests_commit, counts=counts, fraction=fraction,
                                                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                results=results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
