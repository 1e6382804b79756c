"""keras-gdfr: GDFRNet (Acta Electronica Sinica 2026) for Keras 3, on torch, tensorflow and jax."""

from keras_gdfr.variants import list_variants, variant_config, VARIANTS

__version__ = "0.1.0"
