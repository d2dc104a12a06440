"""QAT under tf.distribute.MirroredStrategy with two logical CPU devices.

The model also holds the issue-20 rewrites (Rescaling as MUL+ADD, AveragePooling2D on its
input's grid, hard_swish as an op chain), and calibration before training exercises the
first-batch range union under the strategy.

Logical devices must be configured before TensorFlow initializes its devices, so the
training runs in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras
    import numpy as np
    import effkeras.quantize as q
    from effkeras.callbacks import FreezeBatchNorm, FreezeQuantRanges
    from effkeras.convert import read_tflite, to_tflite
    from effkeras.runtime import LiteRTRunner

    rng = np.random.default_rng(0)
    x = rng.random((128, 8, 8, 1), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)  # int8 MUL + ADD
        h = keras.layers.Conv2D(4, 3, use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.AveragePooling2D(3, strides=1, padding="same")(h)  # same scale
        h = keras.layers.Activation("hard_swish")(h)  # ADD, MUL, MUL chain
        h = keras.layers.GlobalAveragePooling2D()(h)
        outputs = keras.layers.Dense(2, activation="softmax")(h)
        model = keras.Model(inputs, outputs)
        qat = q.quantize_model(model, calibration_data=x[:32])
        qat.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    conv = [l for l in qat.layers if type(l).__name__ == "QuantConv2D"][0]
    var0 = np.array(conv.moving_variance.numpy())
    qat.fit(x, y, epochs=3, batch_size=32, verbose=0,
            callbacks=[FreezeBatchNorm(epoch=2), FreezeQuantRanges(epoch=2)])
    data = to_tflite(qat, quantize="int8")
    out = LiteRTRunner(data).predict(x[:64])
    ref = qat.predict(x[:64], verbose=0)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "stats_moved": bool(np.abs(conv.moving_variance.numpy() - var0).max() > 1e-6),
        "bn_frozen": float(conv.bn_frozen.numpy()),
        "ranges_frozen": float(conv.ranges_frozen.numpy()),
        "full_integer": read_tflite(data).is_full_integer,
        "within_one_step": float(np.mean(np.abs(out - ref) <= 1.0001 / 256)),
    }))
    """
)


def test_qat_trains_under_mirrored_strategy_with_two_cpus():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240, env=env,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["stats_moved"] and result["bn_frozen"] == 1.0
    assert result["ranges_frozen"] == 1.0 and result["full_integer"]
    assert result["within_one_step"] >= 0.99
