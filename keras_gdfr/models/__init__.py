"""GDFRNet models: the builder `GDFRNet`, and the keras-hub style classes."""

from keras_gdfr.models.backbone import GDFRNetBackbone
from keras_gdfr.models.classifier import GDFRNetImageClassifier
from keras_gdfr.models.gdfrnet import GDFRNet, normalization_stats, pyramid_outputs
from keras_gdfr.models.preprocessor import GDFRNetImageClassifierPreprocessor, GDFRNetImageConverter

__all__ = [
    "GDFRNet", "GDFRNetBackbone", "GDFRNetImageClassifier", "GDFRNetImageClassifierPreprocessor",
    "GDFRNetImageConverter", "normalization_stats", "pyramid_outputs",
]
