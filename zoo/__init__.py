"""zoo: multi-task self-supervised visual representation learning with Keras 3.

Importing `zoo` selects the TensorFlow backend of Keras. It must happen before
Keras is imported with another backend; otherwise the import fails with an
explanation instead of mixing backends.
"""

import os
import sys

_REQUIRED_BACKEND = "tensorflow"


def _select_backend():
    requested = os.environ.get("KERAS_BACKEND")
    if "keras" in sys.modules:
        import keras

        active = keras.backend.backend()
        if active != _REQUIRED_BACKEND:
            raise ImportError(
                f"zoo needs the Keras backend '{_REQUIRED_BACKEND}', but Keras is already "
                f"imported with backend '{active}'. Import zoo before keras, or start Python "
                f"with KERAS_BACKEND={_REQUIRED_BACKEND}."
            )
        return
    if requested not in (None, "", _REQUIRED_BACKEND):
        raise ImportError(
            f"zoo needs the Keras backend '{_REQUIRED_BACKEND}', but the environment sets "
            f"KERAS_BACKEND={requested!r}. Unset it or set KERAS_BACKEND={_REQUIRED_BACKEND}."
        )
    os.environ["KERAS_BACKEND"] = _REQUIRED_BACKEND


_select_backend()

__version__ = "0.1.0"
