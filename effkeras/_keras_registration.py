"""Register effkeras's Keras layers with Keras serialization, without importing Keras early.

``keras.saving.load_model`` finds custom layers by their registered name, so the layers
of :mod:`effkeras.quantize` must be registered before a model that uses them is loaded.
Importing Keras (and with it TensorFlow) takes seconds, and the deploy/measure half of
effkeras must not need it at all. So ``import effkeras``:

- registers the layers at once if Keras is already imported;
- otherwise installs a one-shot import hook that registers them right after the first
  ``import keras`` finishes, whenever that happens.

Either way ``import effkeras`` then ``keras.saving.load_model("qat.keras")`` works with no
``custom_objects``, and a process that never imports Keras never pays for it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: Modules whose import registers Keras objects.
REGISTERING_MODULES = (
    "effkeras.quantize", "effkeras.callbacks", "effkeras.text.layers", "effkeras.cluster",
)


def register_now() -> None:
    """Import the modules that register effkeras's Keras objects."""
    for name in REGISTERING_MODULES:
        importlib.import_module(name)


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds ``keras`` with the other finders, then registers once it has executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot; also avoids recursing into ourselves
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            register_now()

        loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register now if Keras is loaded, else when it is first imported; no-op without Keras."""
    if "keras" in sys.modules:
        register_now()
        return
    try:
        if importlib.util.find_spec("keras") is None or importlib.util.find_spec("tensorflow") is None:
            return
    except (ImportError, ValueError):  # a broken or blocked installation: nothing to register
        return
    if not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
