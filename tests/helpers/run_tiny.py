"""Subprocess helper: build a variant, load weights, run inference, save the outputs.

Usage: python -m tests.helpers.run_tiny WEIGHTS INPUTS OUTPUT DATA_FORMAT VARIANT
(KERAS_BACKEND chosen by the caller). Inputs are NHWC; channels_first transposes.
"""

import sys

import keras
import numpy as np

from keras_gdfr import GDFRNet


def main(weights, inputs, output, data_format, variant):
    keras.config.set_image_data_format(data_format)
    images = np.load(inputs)
    shape = images.shape[1:]
    if data_format == "channels_first":
        images = images.transpose(0, 3, 1, 2)
        shape = images.shape[1:]
    model = GDFRNet(variant, input_shape=shape, num_classes=10)
    model.load_weights(weights)
    np.save(output, keras.ops.convert_to_numpy(model(images, training=False)))


if __name__ == "__main__":
    main(*sys.argv[1:])
