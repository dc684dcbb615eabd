"""The training's optimizer: Keras' Adam, with TensorFlow's fused update kernel."""

from __future__ import annotations

import keras
from keras import ops

from aerialseg.train.model import SERIALIZATION_PACKAGE


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Adam(keras.optimizers.Adam):
    """Keras' Adam; on TensorFlow, each variable's update runs as one fused kernel.

    Keras 3 writes the update as about a dozen element-wise operations per variable, which
    TensorFlow without XLA runs one by one (over the 46 variables of the default U-Net, every
    step). ``ResourceApplyAdam`` does the same arithmetic (m and v moved towards the gradient and
    its square, the step ``lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon)``) in
    one pass per variable. benchmarks/throughput.py measures it with the fused batch norm and
    dropout against Keras' own three. Other backends, which compile the step with XLA, and
    AMSGrad run Keras' own code.
    """

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf  # only reached on the TensorFlow backend

        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=ops.power(ops.cast(self.beta_1, dtype), step),
            beta2_power=ops.power(ops.cast(self.beta_2, dtype), step),
            lr=ops.cast(learning_rate, dtype),
            beta1=ops.cast(self.beta_1, dtype),
            beta2=ops.cast(self.beta_2, dtype),
            epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype),
        )
