"""GDFRNetImageClassifier: a backbone, a pooled dense head and an optional preprocessor, as keras-hub's."""

from __future__ import annotations

import numbers

import keras

from keras_gdfr.models.backbone import GDFRNetBackbone
from keras_gdfr.models.gdfrnet import head_dtype_policy
from keras_gdfr.models.preprocessor import GDFRNetImageClassifierPreprocessor, GDFRNetImageConverter

HEAD_POOLINGS = ("avg", "max")


@keras.saving.register_keras_serializable(package="keras_gdfr")
class GDFRNetImageClassifier(keras.Model):
    """Image classification with a `GDFRNetBackbone`, shaped as keras-hub's `ImageClassifier`.

    The backbone's feature map is pooled (`pooler`), dropped out (`output_dropout`) and
    classified (`predictions`, a Dense of `num_classes`). With a `preprocessor` the
    classifier takes raw 0-255 images of any size (resized and normalised inside its
    graph; keras-hub maps its preprocessor over the data instead, which needs tf.data).

    `compile()` with no arguments trains out of the box: the paper's optimizer
    (`TorchSGD`, learning rate 0.1, momentum 0.9, weight decay 5e-4, no schedule), and
    keras-hub's loss and metric (sparse cross-entropy on integer labels, from logits
    unless the activation is softmax; sparse categorical accuracy). The constructor
    compiles with these defaults, as keras-hub's tasks do.

    Args:
        backbone: a `GDFRNetBackbone` (or any functional `keras.Model` giving a 4-D feature map).
        num_classes: int, the number of classes.
        preprocessor: `None` or a `GDFRNetImageClassifierPreprocessor`.
        pooling: `"avg"` (the paper's) or `"max"`. Defaults to `"avg"`.
        activation: the head's activation; `None` (the default) gives logits.
        dropout: dropout rate before the head. Defaults to `0.0`.
        head_dtype: the head's dtype policy. Defaults to float32 when the backbone's
            policy is mixed (float32 logits, as Keras's mixed-precision guide advises),
            else the backbone's policy. keras-hub 0.32 keeps the backbone's policy even
            when mixed; pass `head_dtype=backbone.dtype_policy` for that.
        class_names: `None` or `num_classes` readable names (a preset gives them).
        compile: compile with the defaults above. Defaults to `True`.

    Example:
    >>> classifier = GDFRNetImageClassifier.from_preset("gdfrnet_tiny_cifar10")   # doctest: +SKIP
    >>> classifier.predict(images)                                                  # doctest: +SKIP
    >>> backbone = GDFRNetBackbone("tiny")
    >>> GDFRNetImageClassifier(backbone, num_classes=5).output_shape
    (None, 5)
    """

    backbone_cls = GDFRNetBackbone
    preprocessor_cls = GDFRNetImageClassifierPreprocessor

    def __init__(self, backbone, num_classes, preprocessor=None, pooling="avg", activation=None, dropout=0.0,
                 head_dtype=None, class_names=None, compile=True, **kwargs):
        _check_arguments(num_classes, pooling, class_names)
        head_dtype = head_dtype_policy(head_dtype, backbone.dtype_policy)
        data_format = getattr(backbone, "data_format", None)
        if preprocessor is None:
            inputs = backbone.input
            x = inputs
        else:
            channels = backbone.input.shape[-1 if data_format != "channels_first" else 1]
            shape = (None, None, channels) if data_format != "channels_first" else (channels, None, None)
            inputs = keras.Input(shape=shape, name="image")
            x = preprocessor(inputs)
        x = backbone(x)
        pool_class = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        x = pool_class(data_format=data_format, dtype=head_dtype, name="pooler")(x)
        x = keras.layers.Dropout(dropout, dtype=head_dtype, name="output_dropout")(x)
        outputs = keras.layers.Dense(int(num_classes), activation=activation, dtype=head_dtype, name="predictions")(x)
        kwargs.setdefault("name", "gdfrnet_image_classifier")
        super().__init__(inputs, outputs, **kwargs)
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.activation = activation
        self.dropout = dropout
        self.head_dtype = keras.dtype_policies.get(head_dtype).name
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        if compile:
            self.compile()

    @property
    def pyramid_outputs(self):
        return self.backbone.pyramid_outputs

    def head_layers(self) -> list:
        """The layers outside the backbone and the preprocessor (what task.weights.h5 stores)."""
        return [self.get_layer(name) for name in ("pooler", "output_dropout", "predictions")]

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """`keras.Model.compile` with defaults: see the class docstring."""
        if optimizer == "auto":
            from keras_gdfr.training.optimizer import TorchSGD

            optimizer = TorchSGD(0.1)
        if loss == "auto":
            from_logits = keras.activations.get(self.activation) is not keras.activations.softmax
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Keras's, for this custom `compile` (a loaded `.keras` file keeps its compile arguments)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
            "preprocessor": keras.layers.serialize(self.preprocessor) if self.preprocessor is not None else None,
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "activation": keras.activations.serialize(self.activation) if callable(self.activation) else self.activation,
            "dropout": self.dropout,
            "head_dtype": self.head_dtype,
            "class_names": self.class_names,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, load_weights: bool = True, file_hash: str | None = None, **kwargs):
        """A classifier from a preset: a shipped name (`keras_gdfr.list_presets()`), a preset
        directory, or the URL of a zipped one (checked against `file_hash`, a sha256).

        With `num_classes` other than the preset's, the backbone's weights load and the head
        is new (fine-tuning, as keras-hub does); other `kwargs` (`activation`, `dropout`,
        `preprocessor`, ...) override the saved arguments.
        """
        from keras_gdfr.presets.store import load_classifier

        return load_classifier(cls, preset, load_weights, file_hash, **kwargs)

    def save_to_preset(self, preset_dir, weights_dtype: str | None = None, metadata: dict | None = None):
        """Write this classifier as a preset directory (see `keras_gdfr.presets`).

        `metadata` is merged into metadata.json (dataset, test_top1, recipe, ...);
        `weights_dtype="float16"` stores the weights in half precision.
        """
        from keras_gdfr.presets.store import save_classifier_preset

        save_classifier_preset(self, preset_dir, weights_dtype, metadata)


def default_preprocessor(image_size, mean=None, std=None, data_format=None) -> GDFRNetImageClassifierPreprocessor:
    """Resize to `image_size` (an int or (h, w)) and normalise with (mean, std)."""
    if isinstance(image_size, numbers.Integral):
        image_size = (int(image_size), int(image_size))
    converter = GDFRNetImageConverter(image_size=image_size, mean=mean, std=std, data_format=data_format)
    return GDFRNetImageClassifierPreprocessor(converter)


def _check_arguments(num_classes, pooling, class_names) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer. Received: num_classes={num_classes!r}")
    if pooling not in HEAD_POOLINGS:
        raise ValueError(f"pooling must be 'avg' or 'max'. Received: pooling={pooling!r}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have num_classes={num_classes} names. Received: {len(class_names)} class_names"
        )
