"""The project's own errors: bad input a person can fix, reported as one line.

Every error the pipeline raises about a file, a folder or a key of params.yaml derives from
:class:`InputError`; its message names the thing and what is wrong (and, where it helps, what to
do). The stages print such an error as ``error: <message>`` without a traceback; any other
exception is a bug and keeps its traceback.
"""

import contextlib
from collections.abc import Iterator


class InputError(Exception):
    """Bad input: a missing or wrong file, folder or parameter, named in the message."""


class MissingFileError(InputError, FileNotFoundError):
    """An input file, or an output an earlier stage should have written, is not there."""


class DiskFullError(InputError, OSError):
    """An output could not be written for want of space (ENOSPC) or quota (EDQUOT)."""


def first_line(error: BaseException) -> str:
    """The first line of an error raised by a library (its name if it says nothing): what a
    one-line message quotes of an error whose text may run over many lines."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class MissingExtraError(InputError, ModuleNotFoundError):
    """What was asked needs an optional extra's packages (train: Keras, TensorFlow, MLflow; onnx:
    onnxruntime) that this install lacks."""


@contextlib.contextmanager
def needing_extra(extra: str, subject: str, needs: str, instead: str = "") -> Iterator[None]:
    """Imports inside are of the optional ``extra``: where one is missing, say in one line that
    ``subject`` ``needs`` it, and how to install it (or do ``instead``)."""
    try:
        yield
    except ModuleNotFoundError as error:
        advice = f'pip install "aerialseg[{extra}]"' + (f", or {instead}" if instead else "")
        raise MissingExtraError(f"{subject}: {needs}, not installed here ({first_line(error)}) ({advice})") from error
