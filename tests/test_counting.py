"""Parameter and MAC counts against the known ResNet-34 figures and the paper's Table 8."""

from __future__ import annotations

import math

import pytest

from keras_gdfr import GDFRNet, count_model, count_variant


@pytest.fixture(scope="module")
def counts():
    names = ("net1", "net2", "gdfrnet", "gdfrnet-dense", "tiny")
    return {name: count_variant(name, image_size=32, num_classes=10) for name in names}


def test_net2_is_the_cifar_resnet34(counts):
    # The paper's ResNet-34 row (Table 8): 21.28 M parameters, 1.16 G MACs at 32x32.
    net2 = counts["net2"]
    assert net2.params == pytest.approx(21.28e6, rel=0.005)
    assert net2.macs == pytest.approx(1.16e9, rel=0.005)
    assert net2.params == 21_282_122  # torchvision-style CIFAR ResNet-34, conv bias off, FC bias on


def test_net1_differs_only_by_its_stem(counts):
    # 7x7x3x64 - 3x3x3x64 = 7,680 more weights; the stride-2 stem + max-pool
    # shrink every later map 4x per side, so MACs fall ~16x.
    assert counts["net1"].params - counts["net2"].params == (49 - 9) * 3 * 64
    net1_rows = {row.path: row for row in counts["net1"].layers}
    assert net1_rows["stem/conv"].output_shape[1:3] == (16, 16)
    assert net1_rows["stage1_block1/conv1"].output_shape[1:3] == (8, 8)
    assert counts["net1"].macs == 74_765_312


def test_gdfrnet_counts_exact(counts):
    # The faithful (depthwise) reading; see docs/architecture.md, "Table 8".
    gdfr = counts["gdfrnet"]
    assert gdfr.params == 43_139_772
    assert gdfr.macs == 1_523_338_240
    assert gdfr.macs_tconv_output_convention == 2_328_644_608


def test_dense_reading_approaches_table8(counts):
    dense = counts["gdfrnet-dense"]
    assert dense.params == 54_423_036
    assert dense.macs == 1_673_319_424
    assert dense.macs_tconv_output_convention == 2_478_625_792
    # Table 8: 56.45 M / 2.56 G; the dense reading with output-pixel MACs is within 4%.
    assert abs(dense.params / 56.45e6 - 1) < 0.04
    assert abs(dense.macs_tconv_output_convention / 2.56e9 - 1) < 0.04


def test_dense_minus_depthwise_is_exactly_the_frm_downsampling(counts):
    # Each of the 16 FRMs swaps a 3x3 depthwise conv (9C) for a full one (9C^2).
    widths = [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    expected = sum(9 * c * c - 9 * c for c in widths)
    assert counts["gdfrnet-dense"].params - counts["gdfrnet"].params == expected


def test_transposed_conv_macs_by_hand():
    model = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10)
    rows = {row.path: row for row in count_model(model).layers}
    up = rows["stage1_block1/frm/up"]  # 16x16 input, 16 -> 16 channels, k=4
    assert up.macs == 16 * 16 * 16 * 16 * 4 * 4
    assert up.macs_tconv_output_convention == 4 * up.macs
    conv = rows["stage2_block1/conv1"]  # 3x3 stride 2, 16 -> 32 channels, out 16x16
    assert conv.macs == 16 * 16 * 32 * 9 * 16
    assert rows["branch1_fgcm"].macs == 32 * 32 * 16 * 49
    assert rows["head"].macs == 128 * 10


def test_tiny_is_small(counts):
    assert 0.6e6 < counts["tiny"].params < 0.8e6
    assert counts["tiny"].params == sum(row.params for row in counts["tiny"].layers)


def test_counts_scale_with_input_area():
    small = count_variant("net2", image_size=32).macs
    big = count_variant("net2", image_size=64).macs
    head = 512 * 10
    assert big - head == 4 * (small - head)
    assert math.isclose(count_variant("net2", image_size=64).params, count_variant("net2", image_size=32).params)
