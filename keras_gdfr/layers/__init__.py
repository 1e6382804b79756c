"""The paper's layers, one module a file, all `keras.ops`, both image data formats."""

from keras_gdfr.layers.fgcm import FGCM
from keras_gdfr.layers.fom import FOM
from keras_gdfr.layers.frm import FRM
from keras_gdfr.layers.frrb import FRRB
from keras_gdfr.layers.preprocessing import ImageNormalization
from keras_gdfr.layers.residual_block import ResidualBlock
from keras_gdfr.layers.separable_down import SeparableDown
from keras_gdfr.layers.stem import Stem

__all__ = ["FGCM", "FOM", "FRM", "FRRB", "ImageNormalization", "ResidualBlock", "SeparableDown", "Stem"]
