"""Package-level promises: Keras 3 only, and the deploy/measure half runs without TensorFlow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "effkeras")


def _sources():
    for dirpath, _, names in os.walk(PACKAGE):
        for n in names:
            if n.endswith(".py"):
                path = os.path.join(dirpath, n)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, ROOT), f.read()


def test_no_legacy_keras_or_private_tensorflow_imports():
    bad = re.compile(
        r"^\s*(import tf_keras|from tf_keras|import tensorflow\.python|from tensorflow\.python)"
        r"|TF_USE_LEGACY_KERAS|tensorflow_model_optimization",
        re.M,
    )
    offenders = [path for path, text in _sources() if bad.search(text)]
    assert offenders == []


def test_deploy_and_measure_half_imports_and_runs_without_tensorflow(tmp_path, int8_io_tflite):
    """Block tensorflow and keras imports, then read, run, profile and deploy a model."""
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_io_tflite)
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                    raise ModuleNotFoundError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        import effkeras
        from effkeras.convert import read_tflite, to_c_array
        from effkeras.runtime import LiteRTRunner, TFLMRunner, measure_arena
        from effkeras.deploy import arduino_sketch
        from effkeras.bench import measure
        m = read_tflite({str(model)!r})
        x = np.zeros((2, 8, 8, 1), np.float32)
        assert LiteRTRunner(m).predict(x).shape == (2, 10)
        assert TFLMRunner(m).predict(x).shape == (2, 10)
        assert measure_arena(m) > 0
        assert effkeras.profile(m, board="nano33ble").to_dict()["arena_bytes"] > 0
        to_c_array(m, "m").write({str(tmp_path / "c")!r})
        arduino_sketch(m, {str(tmp_path / "sketch")!r})
        assert measure(m, target="estimate:nano33ble").estimate_us > 0
        assert not any(k.split(".")[0] in ("tensorflow", "keras") for k in sys.modules)
        print("OK")
        """
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")


def test_import_effkeras_is_light():
    code = "import sys, effkeras; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.stdout.split() == ["False", "False"]


def test_public_api_listed_in_one_place():
    import effkeras

    for name in effkeras.__all__:
        assert getattr(effkeras, name) is not None
    assert callable(effkeras.profile)
