"""Import TensorFlow/Keras lazily and quietly.

TensorFlow costs seconds to import and prints native log lines; commands that do not need
it (devices, results, agent) must not pay for it, and `--json` output must stay clean.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))


def tf() -> Any:
    """Return the `tensorflow` module, imported once with its logs silenced."""
    with quiet_native_output():
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with TF
            pass
    return tensorflow


def keras() -> Any:
    """Return the `keras` (3.x) module, after TensorFlow so the backend is set."""
    tf()
    import keras as keras_module

    return keras_module


@contextlib.contextmanager
def quiet_native_output() -> Iterator[list[str]]:
    """Silence a noisy TensorFlow call at both levels for the block's duration.

    C++ logs go to file descriptors 1 and 2; Keras' export also `print`s ("Saved artifact
    at ...") through `sys.stdout`, which need not be fd 1 (an in-process CLI run, a
    notebook). Both are captured, so `--json` prints exactly one document. Yields a list
    that holds the captured lines once the block has ended, for showing when it failed.
    Set EDGEPRUNE_VERBOSE=1 to let everything through.
    """
    captured: list[str] = []
    if os.environ.get("EDGEPRUNE_VERBOSE"):
        yield captured
        return
    python_level = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(python_level), contextlib.redirect_stderr(python_level):
                yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.extend(sink.read().decode("utf-8", "replace").splitlines())
            captured.extend(python_level.getvalue().splitlines())
