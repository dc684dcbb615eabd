import keras
import numpy as np

from aerialseg.train.checkpoint import Checkpoint, TrainingState, code_digest, fingerprint


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_resume_only_with_the_same_fingerprint(tmp_path):
    model = tiny_model()
    state = TrainingState(epoch=3, history=[{"epoch": e, "loss": 1 / e} for e in (1, 2, 3)], run_id="abc")
    Checkpoint(tmp_path, "settings-a").save(model, state)
    loaded_model, loaded_state = Checkpoint(tmp_path, "settings-a").load()
    assert loaded_state == state
    np.testing.assert_array_equal(loaded_model.get_weights()[0], model.get_weights()[0])
    assert Checkpoint(tmp_path, "settings-b").load() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_003.keras", "state.json"]
    Checkpoint(tmp_path, "settings-a").remove()
    assert not tmp_path.exists()


def test_fingerprint_follows_settings_and_code(tmp_path):
    assert fingerprint({"epochs": 5}, (10, 3)) == fingerprint({"epochs": 5}, (10, 3))
    assert fingerprint({"epochs": 5}) != fingerprint({"epochs": 6})
    (tmp_path / "model.py").write_text("FILTERS = 16\n")
    before = code_digest(tmp_path)
    (tmp_path / "model.py").write_text("FILTERS = 32\n")
    assert code_digest(tmp_path) != before
