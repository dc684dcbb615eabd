"""Segmentation losses for sparse integer labels with an ignore index (Keras 3, any backend).

``y_true`` holds class indices, shape (N, H, W) (a trailing axis of 1 is accepted), where
``ignore_index`` (255, :data:`aerialseg.data.palette.IGNORE_INDEX`) marks pixels that count for
nothing: unknown label colours, eroded class boundaries. ``y_pred`` holds softmax
probabilities, shape (N, H, W, K).

Per-class weights (see :func:`class_weights_from_counts`) let rare classes such as cars weigh
as much as the abundant ones. Both losses are registered Keras objects with a ``get_config``,
so a ``model.keras`` saved with its compile state reloads after ``import aerialseg.train.losses``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from aerialseg.data.palette import IGNORE_INDEX

EPSILON = 1e-5  # the smoothing of segmentation_models: an empty class scores a perfect Dice


class _MaskedSegmentationLoss(keras.losses.Loss):
    """Shared parts: validated settings, config, and one-hot targets with a validity mask."""

    def __init__(
        self, num_classes: int, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX, **kwargs
    ):
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if class_weights is not None:
            class_weights = [float(weight) for weight in class_weights]
            if len(class_weights) != num_classes:
                raise ValueError(f"class_weights has {len(class_weights)} values for {num_classes} classes")
            if min(class_weights) < 0 or sum(class_weights) <= 0:
                raise ValueError(f"class_weights must be non-negative and not all zero, got {class_weights}")
        self.num_classes = num_classes
        self.class_weights = class_weights
        self.ignore_index = ignore_index

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "class_weights": self.class_weights,
            "ignore_index": self.ignore_index,
        }

    def _targets(self, y_true, y_pred):
        """(one-hot targets, valid-pixel mask (N,H,W,1), probabilities) in float32."""
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):
            labels = ops.squeeze(labels, axis=-1)
        valid = ops.expand_dims(ops.cast(ops.not_equal(labels, self.ignore_index), "float32"), -1)
        labels = ops.where(ops.equal(labels, self.ignore_index), 0, labels)
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32") * valid
        return one_hot, valid, ops.cast(y_pred, "float32")

    @staticmethod
    def _per_sample(loss, y_pred):
        """The batch's ``loss`` repeated for every sample. Keras averages a loss over the batch, and
        under tf.distribute also divides it by the replica count, so that the replicas' gradients
        add up to their mean; a scalar skips both, and two devices would double loss and gradient."""
        return ops.broadcast_to(loss, ops.shape(y_pred)[:1])

    def _weights(self):
        weights = [1.0] * self.num_classes if self.class_weights is None else self.class_weights
        return ops.convert_to_tensor(weights, dtype="float32")

    @staticmethod
    def _log(probabilities):
        return ops.log(ops.clip(probabilities, EPSILON, 1.0))

    @staticmethod
    def _true_class(one_hot, probabilities):
        """Each pixel's probability of its labelled class, (N, H, W), 0 where the label is
        ignored: the per-pixel losses need no other, so they take one value per pixel instead
        of one per class."""
        return ops.sum(one_hot * probabilities, axis=-1)

    def _pixel_mean(self, pixel_loss, one_hot):
        """Mean over valid pixels of ``pixel_loss`` (N, H, W), each pixel weighted by its class."""
        pixel_weights = ops.sum(one_hot * self._weights(), axis=-1)
        return ops.sum(pixel_loss * pixel_weights) / ops.maximum(ops.sum(pixel_weights), EPSILON)


@keras.saving.register_keras_serializable(package="aerialseg")
class DiceFocalLoss(_MaskedSegmentationLoss):
    """Dice loss + categorical focal loss (gamma 2, alpha 0.25), as in segmentation_models.

    Dice optimises the overlap of each class directly, so small classes are not swamped by
    large ones; focal loss down-weights the pixels already classified well. Dice is computed
    per class over the whole batch and averaged with the class weights; the focal term is the
    class-weighted mean over valid pixels.
    """

    def __init__(
        self,
        num_classes: int,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = IGNORE_INDEX,
        gamma: float = 2.0,
        alpha: float = 0.25,
        name: str = "dice_focal",
        **kwargs,
    ):
        super().__init__(num_classes, class_weights, ignore_index, name=name, **kwargs)
        self.gamma = gamma
        self.alpha = alpha

    def call(self, y_true, y_pred):
        one_hot, valid, probabilities = self._targets(y_true, y_pred)
        loss = self._dice_loss(one_hot, valid, probabilities) + self._focal_loss(one_hot, probabilities)
        return self._per_sample(loss, y_pred)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}

    def _dice_loss(self, one_hot, valid, probabilities):
        spatial_axes = tuple(range(len(one_hot.shape) - 1))
        overlap = ops.sum(one_hot * probabilities, axis=spatial_axes)
        total = ops.sum(one_hot, axis=spatial_axes) + ops.sum(probabilities * valid, axis=spatial_axes)
        dice = (2.0 * overlap + EPSILON) / (total + EPSILON)
        weights = self._weights()
        return 1.0 - ops.sum(dice * weights) / ops.sum(weights)

    def _focal_loss(self, one_hot, probabilities):
        true_class = self._true_class(one_hot, probabilities)
        focal = -self.alpha * ops.power(1.0 - true_class, self.gamma) * self._log(true_class)
        return self._pixel_mean(focal, one_hot)


@keras.saving.register_keras_serializable(package="aerialseg")
class MaskedCrossEntropy(_MaskedSegmentationLoss):
    """Sparse categorical cross-entropy over valid pixels, optionally class-weighted."""

    def __init__(
        self,
        num_classes: int,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = IGNORE_INDEX,
        name: str = "masked_crossentropy",
        **kwargs,
    ):
        super().__init__(num_classes, class_weights, ignore_index, name=name, **kwargs)

    def call(self, y_true, y_pred):
        one_hot, _, probabilities = self._targets(y_true, y_pred)
        pixel_loss = -self._log(self._true_class(one_hot, probabilities))
        return self._per_sample(self._pixel_mean(pixel_loss, one_hot), y_pred)


LOSSES = {"dice_focal": DiceFocalLoss, "crossentropy": MaskedCrossEntropy}


def make_loss(name: str, num_classes: int, class_weights: Sequence[float] | None = None) -> keras.losses.Loss:
    """The loss called ``name`` (the ``train.loss`` parameter)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    return LOSSES[name](num_classes, class_weights=class_weights)


def class_weights_from_counts(pixel_counts: Sequence[int]) -> list[float]:
    """Inverse-frequency class weights, scaled so that their mean is 1.

    A class with no pixels gets weight 0: there is nothing of it to learn from, and an infinite
    weight would swamp the others.
    """
    if not pixel_counts or any(count < 0 for count in pixel_counts) or not any(pixel_counts):
        raise ValueError(f"pixel counts must be non-negative with at least one above 0, got {list(pixel_counts)}")
    inverse = [1.0 / count if count else 0.0 for count in pixel_counts]
    scale = len(inverse) / sum(inverse)
    return [weight * scale for weight in inverse]
