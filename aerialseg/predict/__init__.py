"""Prediction: a trained model applied to photos of any size, and exported to serve elsewhere.

``blending`` is the windowing algorithm (plain and smooth, test-time augmentation) over any
batch function, ``inference`` runs it over photos with a loaded model (``keras_predictor`` runs a
Keras model, ``onnx_predictor`` an ONNX one without TensorFlow, ``runtimes`` loads a model file
with the one it needs), ``mapping`` goes from a raster file to its map (the predict stage and the
command), ``command`` is ``aerialseg-predict`` and ``export`` is ``aerialseg-export``, and
``outputs`` checks their output folder.
"""
