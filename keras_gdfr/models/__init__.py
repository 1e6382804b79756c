"""GDFRNet models."""

from keras_gdfr.models.gdfrnet import GDFRNet, normalization_stats, pyramid_outputs

__all__ = ["GDFRNet", "normalization_stats", "pyramid_outputs"]
