"""GDFRNet models: the builder `GDFRNet`, and the keras-hub style backbone and preprocessor.

`GDFRNetImageClassifier` is in `keras_gdfr.models.classifier` (not imported here): its
`compile()` defaults to the paper's optimizer of `keras_gdfr.training`, a layer above
the models (tests/test_import_layers.py).
"""

from keras_gdfr.models.backbone import GDFRNetBackbone
from keras_gdfr.models.gdfrnet import GDFRNet, normalization_stats, pyramid_outputs
from keras_gdfr.models.preprocessor import GDFRNetImageClassifierPreprocessor, GDFRNetImageConverter

__all__ = [
    "GDFRNet", "GDFRNetBackbone", "GDFRNetImageClassifierPreprocessor", "GDFRNetImageConverter",
    "normalization_stats", "pyramid_outputs",
]
