"""Subprocess helper: build a variant, load weights, run inference, save the outputs.

Usage: python -m tests.helpers.run_tiny WEIGHTS INPUTS OUTPUT_DIR VARIANT DATA_FORMAT...
(KERAS_BACKEND chosen by the caller). Inputs are NHWC; channels_first transposes.
Writes OUTPUT_DIR/out-DATA_FORMAT.npy for each format: one process for all of
them, since each start of Keras and a backend costs seconds (jax: tens of them).
"""

import pathlib
import sys

import keras
import numpy as np

from keras_gdfr import GDFRNet


def run(weights, images, data_format, variant):
    keras.config.set_image_data_format(data_format)  # read by the layers as they are built
    if data_format == "channels_first":
        images = images.transpose(0, 3, 1, 2)
    model = GDFRNet(variant, input_shape=images.shape[1:], num_classes=10)
    model.load_weights(weights)
    return keras.ops.convert_to_numpy(model(images, training=False))


def main(weights, inputs, output_dir, variant, *data_formats):
    images = np.load(inputs)
    for data_format in data_formats:
        np.save(pathlib.Path(output_dir) / f"out-{data_format}.npy", run(weights, images, data_format, variant))


if __name__ == "__main__":
    main(*sys.argv[1:])
