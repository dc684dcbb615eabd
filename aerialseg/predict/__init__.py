"""Prediction: a trained model applied to photos of any size, and exported to serve elsewhere.

``blending`` is the windowing algorithm (plain and smooth, test-time augmentation) over any
batch function, ``inference`` adapts a Keras model to it, ``mapping`` goes from a raster file to
its map (the predict stage and the command), ``command`` is ``aerialseg-predict`` and ``export``
is ``aerialseg-export``, and ``outputs`` checks their output folder.
"""
