"""U-Net models for semantic segmentation of aerial photos (Keras 3, any backend).

Every model takes a float photo in 0..255, shape (N, H, W, bands), and returns softmax
probabilities (N, H, W, K): the classic U-Net any number of bands (3 for RGB or IRRG, 4 for
RGBIR), a pretrained encoder 3, the bands its ImageNet weights know. The input scaling lives
inside the model, so training, prediction and a reloaded ``model.keras`` always agree on it.

Two families:

* ``encoder="none"``: the classic U-Net (Ronneberger et al. 2015). Saved through
  :func:`stock_model`, it holds only stock Keras layers, so its ``.keras`` file loads anywhere
  without custom objects. H and W must be multiples of 16 (four 2x2 poolings).
* ``encoder="resnet50" | "mobilenetv2" | "efficientnetb0" | "vgg16"``: a U-Net decoder on a
  ``keras.applications`` backbone (transfer learning). The backbone is the sub-model named
  ``"encoder"`` (freeze it with :func:`set_encoder_trainable`); the backbone's own ImageNet
  preprocessing is the :class:`ImagenetPreprocessing` layer, registered so that
  ``keras.saving.load_model`` restores it once ``aerialseg.train.model`` is imported. H and W must be
  multiples of 32 (the backbone's total stride).

``input_shape=(None, None, bands)`` (the default: 3 bands) accepts any such size: the models are
fully convolutional. The number of bands is part of the saved model, so whatever predicts with it
knows how many bands to give it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers, ops

from aerialseg.errors import InputError, MissingFileError
from aerialseg.pipeline.params import TrainParams

ENCODER_SUBMODEL = "encoder"
SERIALIZATION_PACKAGE = "aerialseg"


class EncoderWeightsError(InputError, ValueError):
    """Pretrained encoder weights could not be obtained or loaded; the message says what to do."""


@dataclass(frozen=True)
class Backbone:
    """How one ``keras.applications`` network serves as a U-Net encoder."""

    constructor: Callable[..., keras.Model]
    preprocess_input: Callable
    skip_layers: tuple[str, ...]  # outputs at strides 2, 4, 8 and 16 (bridged to the decoder)
    bottleneck_layer: str  # output at stride 32
    imagenet_file: str  # name under which Keras caches the ImageNet weights without the top


BACKBONES = {
    "resnet50": Backbone(
        keras.applications.ResNet50,
        keras.applications.resnet50.preprocess_input,
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"),
        "conv5_block3_out",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "mobilenetv2": Backbone(
        keras.applications.MobileNetV2,
        keras.applications.mobilenet_v2.preprocess_input,
        ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu"),
        "out_relu",
        # The backbone is built for any input size, for which Keras picks its 224 px weights.
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    ),
    "efficientnetb0": Backbone(
        keras.applications.EfficientNetB0,
        keras.applications.efficientnet.preprocess_input,
        (
            "block2a_expand_activation",
            "block3a_expand_activation",
            "block4a_expand_activation",
            "block6a_expand_activation",
        ),
        "top_activation",
        "efficientnetb0_notop.h5",
    ),
    "vgg16": Backbone(
        keras.applications.VGG16,
        keras.applications.vgg16.preprocess_input,
        ("block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"),
        "block5_pool",
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
}
ENCODERS = ("none", *BACKBONES)
CLASSIC_DEPTH = 4  # poolings of the classic U-Net


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ImagenetPreprocessing(layers.Layer):
    """The ImageNet input preprocessing a pretrained backbone expects, as a saveable layer.

    Calls the backbone's own ``keras.applications.<net>.preprocess_input`` (``caffe``: RGB->BGR
    and mean subtraction for ResNet50/VGG16, ``tf``: x/127.5-1 for MobileNetV2, identity for
    EfficientNet, which rescales inside itself). A layer, not a ``Lambda``, so the model also
    loads with ``safe_mode=True``.
    """

    def __init__(self, encoder: str, **kwargs):
        super().__init__(**kwargs)
        _check_choice("encoder", encoder, tuple(BACKBONES))
        self.encoder = encoder

    def call(self, inputs):
        return BACKBONES[self.encoder].preprocess_input(keras.ops.cast(inputs, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "encoder": self.encoder}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BatchNormalization(layers.BatchNormalization):
    """Keras' batch normalization, with TensorFlow's fused kernel for the training step.

    Keras 3 normalizes with separate element-wise operations (mean, variance, scale, shift, and
    the gradient of each), each a pass over the features on TensorFlow without XLA;
    ``FusedBatchNormV3`` does the same in one pass forward and one back (1.18 times faster
    training of the default U-Net on a CPU when it came; benchmarks/throughput.py now measures it
    with the one-multiply dropout and the fused Adam against Keras' own three). The same
    statistics, moving averages (of the biased variance, as Keras keeps them) and outputs;
    inference, other backends and the rare cases the fused kernel does not take (masks,
    synchronized statistics, axes other than the last of a 4-D input) go through Keras' own
    code. Same class name, so layer names and weight files match Keras' layer, which
    :func:`stock_model` swaps back in for saving.
    """

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only reached on the TensorFlow backend

        inputs = ops.cast(inputs, "float32")
        channels = inputs.shape[-1]
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=ops.cast(self.gamma, "float32") if self.scale else ops.ones(channels),
            offset=ops.cast(self.beta, "float32") if self.center else ops.zeros(channels),
            mean=ops.zeros(0),
            variance=ops.zeros(0),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        count = ops.cast(ops.size(inputs) // channels, "float32")
        variance = variance * (count - 1) / count  # the kernel returns the unbiased variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)

    def _fused(self, inputs, training, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and bool(training)
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SpatialDropout2D(layers.SpatialDropout2D):
    """Keras' spatial dropout, in one multiplication.

    Keras scales every feature, then selects between it and zero, forward and back: two passes
    over the features each way. This layer draws the (N, 1, 1, C) mask exactly as Keras does
    (the same seed generator, shape and draw), already scaled, and multiplies the features by it:
    the same outputs and gradients, one pass each way. benchmarks/throughput.py measures it
    with the fused batch norm and Adam against Keras' own three. Same class name, swapped for
    Keras' own by :func:`stock_model`.
    """

    def call(self, inputs, training=False):
        if not (training and self.rate > 0):
            return inputs
        ones = ops.ones(self._get_noise_shape(inputs), dtype=inputs.dtype)
        return inputs * keras.random.dropout(ones, self.rate, seed=self.seed_generator)


_STOCK_LAYERS = {BatchNormalization: layers.BatchNormalization, SpatialDropout2D: layers.SpatialDropout2D}


def stock_model(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with Keras' own BatchNormalization and SpatialDropout2D and no compile
    state: what is saved (``models/model.keras``, the MLflow registry), so that a classic U-Net
    loads with plain ``keras.saving.load_model``, without aerialseg, and predicts exactly as
    ``model`` does."""

    def stock_layer(layer):
        return _STOCK_LAYERS.get(type(layer), type(layer)).from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=stock_layer, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def build_unet(
    num_classes: int,
    encoder: str = "none",
    encoder_weights: str = "none",
    base_filters: int = 16,
    batch_norm: bool = True,
    dropout: float = 0.0,
    input_shape: tuple = (None, None, 3),
) -> keras.Model:
    """Build a U-Net returning per-pixel softmax probabilities over ``num_classes`` classes.

    ``encoder_weights`` only applies to a pretrained encoder: ``"imagenet"`` (Keras downloads
    and caches them), ``"none"`` (random initialisation) or the path of a weights file
    (``.weights.h5`` saved from the encoder, or a ``keras.applications`` ``.h5`` file).
    ``dropout`` is the SpatialDropout2D rate between the two convolutions of each block (of the
    decoder only, with a pretrained encoder).
    """
    _check_choice("encoder", encoder, ENCODERS)
    if encoder == "none" and encoder_weights != "none":
        raise ValueError(
            f"encoder_weights={encoder_weights!r} needs a pretrained encoder; "
            f"choose one of {', '.join(BACKBONES)} or set encoder_weights to 'none'"
        )
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    stride = 2**CLASSIC_DEPTH if encoder == "none" else 32
    _check_input_shape(input_shape, stride, encoder)
    block = _ConvBlocks(batch_norm, dropout)
    inputs = keras.Input(shape=input_shape, name="photo")
    if encoder == "none":
        features = _classic_unet_body(inputs, base_filters, block)
    else:
        features = _backbone_unet_body(inputs, encoder, encoder_weights, base_filters, block)
    # float32 softmax keeps the probabilities exact under a mixed-precision policy
    outputs = layers.Conv2D(num_classes, 1, activation="softmax", dtype="float32", name="probabilities")(features)
    name = "unet" if encoder == "none" else f"unet_{encoder}"
    return keras.Model(inputs, outputs, name=name)


def build_model(train: TrainParams, num_classes: int, bands: int) -> keras.Model:
    """The untrained model that the ``train`` params describe, for ``num_classes`` classes and
    photos of ``bands`` bands: the one reading of those params, so the train stage and the
    benchmarks build the same model (params.yaml has checked the names already)."""
    return MODELS[train.model](
        num_classes,
        encoder=train.encoder,
        encoder_weights=train.encoder_weights,
        base_filters=train.base_filters,
        batch_norm=train.batch_norm,
        dropout=train.dropout,
        input_shape=(None, None, bands),
    )


def set_encoder_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze (``False``) or unfreeze the pretrained encoder; recompile the model afterwards.

    Frozen BatchNormalization layers also switch to inference mode, as fine-tuning needs.
    """
    try:
        encoder = model.get_layer(ENCODER_SUBMODEL)
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no pretrained encoder (a sub-model named "
            f"{ENCODER_SUBMODEL!r}); only U-Nets built with an encoder other than "
            "'none' can be frozen"
        ) from None
    encoder.trainable = trainable


class _ConvBlocks:
    """The layer patterns shared by the U-Net's contracting and expanding paths."""

    def __init__(self, batch_norm: bool, dropout: float):
        self.batch_norm = batch_norm
        self.dropout = dropout

    def double_conv(self, x, filters: int):
        """Two 3x3 convolutions (+ BatchNorm) + ReLU, with spatial dropout between them."""
        x = self._conv(x, filters)
        if self.dropout > 0:
            x = SpatialDropout2D(self.dropout)(x)
        return self._conv(x, filters)

    def up(self, x, skip, filters: int):
        """Double the resolution, join the encoder features of that resolution, convolve."""
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
        if skip is not None:
            x = layers.Concatenate()([x, skip])
        return self.double_conv(x, filters)

    def _conv(self, x, filters: int):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not self.batch_norm, kernel_initializer="he_normal")(x)
        if self.batch_norm:
            # momentum 0.9, not Keras' 0.99: a run of a few hundred steps must leave moving statistics
            # that match the weights, or validation and prediction lag far behind training
            x = BatchNormalization(momentum=0.9)(x)
        return layers.Activation("relu")(x)


def _classic_unet_body(inputs, base_filters: int, block: _ConvBlocks):
    x = layers.Rescaling(1 / 255, name="scale_0_1")(inputs)
    skips = []
    for level in range(CLASSIC_DEPTH):
        x = block.double_conv(x, base_filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = block.double_conv(x, base_filters * 2**CLASSIC_DEPTH)
    for level in reversed(range(CLASSIC_DEPTH)):
        x = block.up(x, skips[level], base_filters * 2**level)
    return x


def _backbone_unet_body(inputs, encoder: str, encoder_weights: str, base_filters: int, block: _ConvBlocks):
    x = ImagenetPreprocessing(encoder, name="preprocessing")(inputs)
    *skips, x = _build_encoder(encoder, encoder_weights)(x)
    # Decoder filters 16b, 8b, 4b, 2b: the segmentation_models defaults (256 .. 32) for b = 16.
    for level, skip in zip(range(len(skips), 0, -1), reversed(skips)):
        x = block.up(x, skip, base_filters * 2**level)
    return block.up(x, None, base_filters)  # stride 2 -> full resolution, no encoder features there


def _build_encoder(encoder: str, encoder_weights: str) -> keras.Model:
    """The backbone as a sub-model whose outputs are the four skips and the bottleneck."""
    backbone = BACKBONES[encoder]
    base = _load_backbone(encoder, backbone, encoder_weights)
    outputs = [base.get_layer(name).output for name in (*backbone.skip_layers, backbone.bottleneck_layer)]
    return keras.Model(base.input, outputs, name=ENCODER_SUBMODEL)


def _load_backbone(encoder: str, backbone: Backbone, encoder_weights: str) -> keras.Model:
    def construct(weights):
        return backbone.constructor(include_top=False, weights=weights, input_shape=(None, None, 3))

    if encoder_weights == "none":
        return construct(None)
    if encoder_weights == "imagenet":
        try:
            return construct("imagenet")
        except Exception as error:  # Keras' downloader raises a bare Exception when offline
            folder = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"
            raise EncoderWeightsError(
                f"could not get the ImageNet weights of {encoder} ({error}). Without internet, "
                f"download that file elsewhere and put {backbone.imagenet_file} into the folder "
                f"{folder} (Keras' cache), or set encoder_weights to the path of a local weights file"
            ) from error
    path = Path(encoder_weights)
    if not path.is_file():
        raise MissingFileError(
            f"{path}: encoder weights file not found (encoder_weights must be "
            "'imagenet', 'none' or the path of a weights file)"
        )
    try:
        return construct(str(path))
    except Exception as error:  # h5py, Keras' format dispatch and shape checks all raise differently
        detail = " ".join(str(error).split())[:300]  # Keras lists every mismatched layer
        raise EncoderWeightsError(
            f"{path}: cannot load {encoder} weights from this file ({type(error).__name__}: {detail})"
        ) from error


MODELS = {"unet": build_unet}


def _check_choice(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def _check_input_shape(input_shape: tuple, stride: int, encoder: str) -> None:
    if len(input_shape) != 3 or not input_shape[-1] or input_shape[-1] < 1:
        raise ValueError(f"input_shape must be (height, width, bands), got {input_shape}")
    if encoder != "none" and input_shape[-1] != 3:
        raise ValueError(
            f"a pretrained encoder ({encoder}) takes 3 bands, the RGB its ImageNet weights were trained on, "
            f"but input_shape {input_shape} has {input_shape[-1]}: use encoder 'none' (the classic U-Net takes "
            "any number of bands), or 3-band photos (data.bands rgb or irrg)"
        )
    for side in input_shape[:2]:
        if side is not None and side % stride:
            raise ValueError(
                f"input_shape {input_shape}: height and width must be multiples of {stride} for this model"
            )
