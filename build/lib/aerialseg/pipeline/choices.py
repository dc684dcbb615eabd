"""The names params.yaml chooses among whose implementations load Keras.

Every stage checks all of params.yaml, and Keras (with TensorFlow) takes about 10 s to load on a
2-core machine: kept beside their implementations, these lists made the stages that never touch
a model (validate, download, resize, patches, report) each pay that. So params are checked
against these lists, in a module that loads at once; tests/test_config.py checks that the modules
implementing them (aerialseg.train.model, aerialseg.train.losses) implement exactly these names.
"""

MODELS = ("unet",)
ENCODERS = ("none", "resnet50", "mobilenetv2", "efficientnetb0", "vgg16")  # none: the classic U-Net
LOSSES = ("dice_focal", "crossentropy")
DISTRIBUTIONS = ("none", "data_parallel")
