import os
import subprocess
import sys

ONEDNN_STATE = (
    "import aerialseg.train.model, os; from tensorflow.python.util import _pywrap_util_port as port; "
    "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())"
)


def tensorflow_onednn(**environment) -> str:
    """TF_ENABLE_ONEDNN_OPTS and whether TensorFlow runs oneDNN, in a fresh Python importing aerialseg."""
    variables = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    child = subprocess.run(
        [sys.executable, "-c", ONEDNN_STATE],
        env={**variables, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return child.stdout.strip()


def test_importing_aerialseg_turns_tensorflows_onednn_kernels_on_whatever_the_cpu():
    assert tensorflow_onednn() == "1 True"


def test_a_users_own_onednn_setting_is_kept():
    assert tensorflow_onednn(TF_ENABLE_ONEDNN_OPTS="0") == "0 False"
