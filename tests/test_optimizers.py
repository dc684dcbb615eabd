"""The training's Adam: Keras' Adam, updated by TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest

from aerialseg.train.optimizer import Adam


def trained_weights(optimizer, tmp_path=None):
    """A small model trained 3 epochs (24 steps) by ``optimizer`` from a fixed start; halfway
    through, saved and loaded back when ``tmp_path`` is given, as a resumed training is."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    data = dict(x=rng.normal(size=(64, 8)), y=rng.normal(size=(64, 3)), batch_size=8, verbose=0, shuffle=False)
    model.fit(epochs=1, **data)
    if tmp_path is not None:
        model.save(tmp_path / "model.keras")
        model = keras.saving.load_model(tmp_path / "model.keras")
        assert type(model.optimizer) is type(optimizer)
    model.fit(initial_epoch=1, epochs=3, **data)
    return model.get_weights()


def schedule():
    return keras.optimizers.schedules.CosineDecay(0.01, 24, alpha=0.01)


def test_adam_trains_as_keras_own_adam_does(tmp_path):
    """The same weights after 24 steps of a cosine-decayed learning rate, straight or resumed."""
    keras_own = trained_weights(keras.optimizers.Adam(schedule()))
    for ours in (trained_weights(Adam(schedule())), trained_weights(Adam(schedule()), tmp_path)):
        for mine, theirs in zip(ours, keras_own):
            np.testing.assert_allclose(mine, theirs, atol=2e-6)
    assert max(np.abs(w - k).max() for w, k in zip(keras_own, trained_weights("sgd"))) > 1e-2  # not any optimizer


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_each_variable_is_updated_by_the_fused_kernel():
    import tensorflow as tf

    variable = keras.Variable(np.ones((3, 3), "float32"))
    optimizer = Adam(0.1)
    optimizer.build([variable])
    graph = tf.function(lambda g: optimizer.apply([g], [variable])).get_concrete_function(tf.ones((3, 3))).graph
    assert "ResourceApplyAdam" in {op.type for op in graph.get_operations()}
