"""GDFRNet models."""

from keras_gdfr.models.gdfrnet import GDFRNet

__all__ = ["GDFRNet"]
