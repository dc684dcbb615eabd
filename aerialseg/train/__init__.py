"""Training: the U-Net, its loss and optimizer, the input pipeline, and the train stage.

``model`` builds the network (classic or over a pretrained encoder), ``losses`` and
``optimizer`` what it is fitted with, ``dataset`` and ``augmentation`` what it sees, and
``training`` runs the stage (with ``checkpoint`` to resume, ``distribution`` for several
devices and ``history`` for the per-epoch table). These modules import Keras; ``card`` (what a
saved model means, inside its file) does not, so that ONNX-only installs read it.
"""
