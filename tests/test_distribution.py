"""The settings data-parallel training reads before it starts: multi-host variables, TF_CONFIG,
and a global batch that must split evenly over the devices. Training itself is tested in
test_distributed_training.py."""

import keras
import pytest

from aerialseg.train.distribution import HOST_VARIABLES, DistributionError, check_batch, jax_hosts, join

HOSTS = dict(zip(HOST_VARIABLES, ["10.0.0.1:1234", "2", "1"]))


def test_no_host_variables_means_one_host():
    assert jax_hosts({}) is None
    assert jax_hosts(HOSTS) == {"coordinator": "10.0.0.1:1234", "processes": 2, "process": 1}


@pytest.mark.parametrize("missing", HOST_VARIABLES)
def test_an_incomplete_multi_host_setting_names_the_missing_variable(missing):
    environ = {name: value for name, value in HOSTS.items() if name != missing}
    with pytest.raises(DistributionError, match=f"{missing} is not set"):
        jax_hosts(environ)


def test_a_process_id_beyond_the_process_count_is_refused():
    with pytest.raises(DistributionError, match="KERAS_DISTRIBUTION_PROCESS_ID='2' must be whole numbers"):
        jax_hosts({**HOSTS, "KERAS_DISTRIBUTION_PROCESS_ID": "2"})


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF_CONFIG matters to the TensorFlow backend")
def test_tf_config_is_refused_naming_the_jax_backend_for_several_hosts():
    """Keras 3 cannot fit under MultiWorkerMirroredStrategy, so TF_CONFIG fails before any training."""
    config = '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'
    with pytest.raises(DistributionError, match=r"TF_CONFIG is set, but .*keras-team/keras#20585.*KERAS_BACKEND=jax"):
        join("data_parallel", 8, {"TF_CONFIG": config})
    assert join("none", 8, {"TF_CONFIG": config}).devices == 1  # one device needs no cluster


def test_a_batch_that_does_not_split_evenly_names_both_numbers():
    check_batch(16, 8)
    with pytest.raises(DistributionError, match=r"train.batch_size 12 cannot be split evenly over 8 devices.* 8 or 16"):
        check_batch(12, 8)
    with pytest.raises(DistributionError, match=r"multiple of 4, e.g. 4$"):
        check_batch(2, 4)
