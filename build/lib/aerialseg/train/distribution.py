"""Data-parallel training (``train.distribution: data_parallel``) on the engines built for it.

Every device holds a copy of the model and takes an equal share of each batch; the gradients of
all shares are averaged. ``train.batch_size`` is therefore the global batch, whatever the number
of devices, and ``train.learning_rate`` is used as given: it is not rescaled for the device count.

* JAX: ``keras.distribution.DataParallel`` over every device Keras lists (GPUs or TPUs, else the
  CPU devices). Several hosts join through ``keras.distribution.initialize``, which calls
  ``jax.distributed.initialize``, when the environment names the coordinator, the number of
  processes and this process's id (:data:`HOST_VARIABLES`); each process then feeds its own
  slice of every batch (``Cluster.part``).
* TensorFlow: ``tf.distribute.MirroredStrategy`` over this host's GPUs (else its logical CPU
  devices). The model is built and compiled under the strategy's scope, which then splits the
  batches itself. Several hosts would need ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``), whose
  batches Keras 3's ``fit`` cannot take (keras-team/keras#20585): TF_CONFIG is refused, naming
  the JAX backend, which trains across hosts.

Only the chief (process 0) writes outputs and logs; the other processes train their share and
write nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from aerialseg.errors import InputError

HOST_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",  # the coordinator (process 0), host:port
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",  # 0 .. processes - 1; 0 is the chief
)


class DistributionError(InputError, ValueError):
    """The devices, hosts or batch size do not allow the data-parallel training asked for (the
    stage reports it in one line)."""


@dataclass(frozen=True)
class Cluster:
    """How this process trains: ``devices`` (of all hosts) share every batch; this process feeds
    slice ``part = (index, count)`` of each one; ``processes`` train together; only the
    ``chief`` writes. ``engine`` is the Keras distribution or tf.distribute strategy, if any."""

    devices: int = 1
    part: tuple[int, int] = (0, 1)
    processes: int = 1
    chief: bool = True
    engine: Any = None

    def scope(self):
        """What the model is built, loaded and compiled under, so that its variables (and the
        optimizer's) are replicated on every device."""
        return self.engine.scope() if self.engine else contextlib.nullcontext()

    def fitting(self):
        """What ``model.fit`` runs under: the JAX distribution, which splits each batch; nothing
        under tf.distribute, whose model keeps the strategy it was built with (as in Keras'
        guide), so that the callbacks run outside the strategy (see on_this_process)."""
        if self.engine is None or keras.backend.backend() != "jax":
            return contextlib.nullcontext()
        return self.engine.scope()

    @staticmethod
    @contextlib.contextmanager
    def alone():
        """For work of this process alone, like the chief's saving in a callback: Keras objects
        made inside (saving makes a reference optimizer) stay on this process, where under the
        JAX distribution each one would wait for the same from every process."""
        outer = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(outer)

    @contextlib.contextmanager
    def on_this_process(self, model: keras.Model):
        """Inside the block, a model with ``model``'s weights that this process alone predicts
        with: ``model`` itself on one device, else an undistributed copy. A distributed model's
        predictions would need every process (JAX), and under tf.distribute ``predict_on_batch``
        runs the whole batch on each replica and returns it that many times."""
        if self.engine is None:
            yield model
            return
        with self.alone():
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            yield copy

    def check_same(self, value: int, what: str) -> None:
        """Fail unless every process has the same ``value``: they must take the same steps.
        A collective call: every process makes it."""
        if self.processes == 1:
            return
        from jax.experimental import multihost_utils  # several processes train only under JAX

        values = [int(v) for v in np.ravel(multihost_utils.process_allgather(np.int32(value)))]
        if len(set(values)) > 1:
            raise DistributionError(
                f"the {self.processes} processes differ in {what}: {values} (by process); every host "
                "must see the same project files, models/checkpoint included (a shared folder)"
            )


ONE_DEVICE = Cluster()


def join(distribution: str, batch_size: int, environ: Mapping[str, str] = os.environ) -> Cluster:
    """The cluster ``train.distribution`` asks for, with the hosts that ``environ`` names joined."""
    if distribution == "none":
        return ONE_DEVICE
    backend = keras.backend.backend()
    if backend == "jax":
        cluster = _jax_cluster(environ)
    elif backend == "tensorflow":
        cluster = _tensorflow_cluster(environ)
    else:
        raise DistributionError(
            f"train.distribution {distribution!r} runs on the jax and tensorflow backends, not {backend!r}"
        )
    check_batch(batch_size, cluster.devices)
    print(f"data-parallel training on {cluster.devices} devices, {cluster.processes} process(es)")
    return cluster


def check_batch(batch_size: int, devices: int) -> None:
    """Every device takes an equal share of each batch, so the batch must split evenly."""
    if batch_size % devices:
        lower = batch_size // devices * devices
        choices = f"{lower} or {lower + devices}" if lower else str(devices)
        raise DistributionError(
            f"train.batch_size {batch_size} cannot be split evenly over {devices} devices (each takes an "
            f"equal share of every batch): set train.batch_size to a multiple of {devices}, e.g. {choices}"
        )


def jax_hosts(environ: Mapping[str, str]) -> dict[str, int | str] | None:
    """The multi-host settings of :data:`HOST_VARIABLES`; None when none is set (one host).
    Some but not all of them is a mistake that would otherwise train on one host unnoticed."""
    present = [name for name in HOST_VARIABLES if environ.get(name)]
    if not present:
        return None
    missing = [name for name in HOST_VARIABLES if name not in present]
    if missing:
        raise DistributionError(
            f"multi-host training needs {', '.join(HOST_VARIABLES)} in the environment of every process; "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set (set all three, or none "
            "to train on this host alone)"
        )
    address, count, index = (environ[name] for name in HOST_VARIABLES)
    if not (count.isdigit() and index.isdigit() and int(index) < int(count)):
        raise DistributionError(
            f"{HOST_VARIABLES[1]}={count!r} and {HOST_VARIABLES[2]}={index!r} must be whole numbers, "
            "the process id below the number of processes"
        )
    return {"coordinator": address.split(",")[0], "processes": int(count), "process": int(index)}


def _jax_cluster(environ: Mapping[str, str]) -> Cluster:
    import jax

    hosts = jax_hosts(environ)
    if hosts:  # jax.distributed.initialize underneath
        keras.distribution.initialize(hosts["coordinator"], hosts["processes"], hosts["process"])
    engine = keras.distribution.DataParallel(auto_shard_dataset=False)  # PatchSequence feeds each process its part
    index, count = jax.process_index(), jax.process_count()
    return Cluster(len(keras.distribution.list_devices()), (index, count), count, index == 0, engine)


def _tensorflow_cluster(environ: Mapping[str, str]) -> Cluster:
    import tensorflow as tf

    if environ.get("TF_CONFIG"):
        raise DistributionError(
            "TF_CONFIG is set, but Keras 3's TensorFlow trainer cannot fit under MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585): train across hosts on the JAX backend (KERAS_BACKEND=jax with "
            f"{', '.join(HOST_VARIABLES)}), or unset TF_CONFIG to train on this host's devices"
        )
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    engine = tf.distribute.MirroredStrategy([device.name for device in devices])
    return Cluster(engine.num_replicas_in_sync, engine=engine)
