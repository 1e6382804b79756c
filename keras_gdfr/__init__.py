"""keras-gdfr: GDFRNet (Acta Electronica Sinica 2026) for Keras 3, on torch, tensorflow and jax.

>>> import keras_gdfr
>>> model = keras_gdfr.GDFRNet(input_shape=(32, 32, 3), num_classes=10)
>>> keras_gdfr.list_variants()["net3"]
'net2 + FRRB (FRM at C), no branch'
"""

from keras_gdfr import layers
from keras_gdfr.counting import count_model, count_variant
from keras_gdfr.models import GDFRNet
from keras_gdfr.variants import VARIANTS, list_variants, variant_config

__version__ = "0.1.0"

__all__ = ["GDFRNet", "VARIANTS", "count_model", "count_variant", "layers", "list_variants", "variant_config"]
