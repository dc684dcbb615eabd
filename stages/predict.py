"""predict stage: every whole test tile mapped by the trained model, plainly and smooth-blended.

The classes, window and ``predict`` settings are those of the model's card, as aerialseg-predict
takes them (aerialseg.predict.model_source): params.yaml's ``predict`` section changes the
settings it sets, and classes other than the card's are refused.
"""

from pathlib import Path

from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage
from aerialseg.predict.mapping import predict_test_tiles
from aerialseg.predict.model_source import ModelSource, model_card, prediction_settings

PARAMS = Path("params.yaml")
ADVICE = "run `dvc repro`, which trains the model again on these classes, or put back the classes it was trained on"


def main() -> None:
    params, layout = load_params(PARAMS), Layout()
    card = model_card(ModelSource.of_file(layout.model), params, PARAMS, ADVICE).card
    options = prediction_settings(card, params, {}, str(layout.model))
    predict_test_tiles(layout, card.palette, window=card.window, options=options)


if __name__ == "__main__":
    run_stage(main)
