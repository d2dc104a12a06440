"""Pruning under tf.distribute.MirroredStrategy with two logical CPU devices.

Logical devices must be configured before TensorFlow initializes, so the check runs in
a fresh Python process.
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
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    import effkeras.prune as prune
    L = keras.layers
    keras.utils.set_random_seed(0)
    x = np.random.rand(64, 8, 8, 1).astype("float32")
    y = np.random.randint(0, 4, 64)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, use_bias=False),
            L.BatchNormalization(), L.ReLU(), L.Conv2D(8, 3), L.GlobalAveragePooling2D(),
            L.Dense(4)])
        pruned = prune.prune_low_magnitude(
            model, prune.PolynomialDecay(0.0, 0.5, 0, 6, frequency=2), structure="channel")
        pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, epochs=2, batch_size=16, verbose=0,
               callbacks=[prune.UpdatePruningStep()])
    wrapper = pruned.layers[0]
    replicas = [float(tf.reduce_sum(v))
                for v in strategy.experimental_local_results(wrapper.masks[0]._value)]
    small = prune.strip_pruning(pruned)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "mask_sums": replicas,
        "step": int(wrapper.pruning_step.numpy()),
        "sparsity": prune.sparsity(pruned),
        "filters": [small.layers[0].filters, small.layers[3].filters],
        "diff": float(np.abs(small(x[:8]) - pruned(x[:8], training=False)).max()),
    }))
    """
)


def test_mirrored_strategy_two_cpus():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # Both replicas hold the same mask: 4 of 8 filters of a 3x3x1 kernel kept.
    assert result["mask_sums"] == [36.0, 36.0]
    assert result["step"] == 7
    assert result["sparsity"]["conv2d"] == 0.5 and result["sparsity"]["conv2d_1"] == 0.5
    assert result["filters"] == [4, 4]
    assert result["diff"] < 1e-5
