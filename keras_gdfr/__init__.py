"""keras-gdfr: GDFRNet (Acta Electronica Sinica 2026) for Keras 3, on torch, tensorflow and jax.

>>> import keras_gdfr
>>> model = keras_gdfr.GDFRNet(input_shape=(32, 32, 3), num_classes=10)
>>> keras_gdfr.list_variants()["net3"]
'net2 + FRRB (FRM at C), no branch'

The Keras-dependent names load on first use, so that `keras_gdfr.variants`,
`keras_gdfr.training.recipe` and the CLI's help stay Keras-free (fast, and the
backend can still be chosen after import).
"""

from keras_gdfr.variants import VARIANTS, list_variants, variant_config

__version__ = "0.1.0"

_LAZY = {
    "GDFRNet": ("keras_gdfr.models", "GDFRNet"),
    "GDFRNetBackbone": ("keras_gdfr.models", "GDFRNetBackbone"),
    "GDFRNetImageClassifier": ("keras_gdfr.models.classifier", "GDFRNetImageClassifier"),
    "GDFRNetImageClassifierPreprocessor": ("keras_gdfr.models", "GDFRNetImageClassifierPreprocessor"),
    "GDFRNetImageConverter": ("keras_gdfr.models", "GDFRNetImageConverter"),
    "count_model": ("keras_gdfr.counting", "count_model"),
    "count_variant": ("keras_gdfr.counting", "count_variant"),
    "layers": ("keras_gdfr.layers", None),
    "list_presets": ("keras_gdfr.presets", "list_presets"),
    "load_model": ("keras_gdfr.saving", "load_model"),
}

__all__ = [
    "GDFRNet", "GDFRNetBackbone", "GDFRNetImageClassifier", "GDFRNetImageClassifierPreprocessor",
    "GDFRNetImageConverter", "VARIANTS", "count_model", "count_variant", "layers", "list_presets", "list_variants",
    "load_model", "variant_config",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_gdfr' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
