"""Pruning under tf.distribute.MirroredStrategy with two logical CPU devices (a CNN, and
a MobileNetV3 block whose hard-sigmoid is keras.ops nodes and whose squeeze-excite
Multiply broadcasts).

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

    # A MobileNetV3 block: hard-swish and hard-sigmoid written with keras.ops (op nodes in
    # the graph), a squeeze-excite Multiply broadcasting (1, 1, C) over (H, W, C).
    def hard_sigmoid(t):
        return L.ReLU(6.0)(t + 3.0) * (1.0 / 6.0)

    with strategy.scope():
        inp = keras.Input((8, 8, 1))
        h = L.BatchNormalization()(L.Conv2D(12, 3, padding="same", use_bias=False, name="expand")(inp))
        h = h * hard_sigmoid(h)
        h = L.DepthwiseConv2D(3, padding="same", use_bias=False)(h)
        se = L.GlobalAveragePooling2D(keepdims=True)(h)
        se = L.Conv2D(4, 1, activation="relu", name="se_reduce")(se)
        se = hard_sigmoid(L.Conv2D(12, 1, name="se_expand")(se))
        h = L.Multiply()([h, se])
        h = L.Conv2D(6, 1, name="project")(h)
        block = keras.Model(inp, L.Dense(4)(L.GlobalAveragePooling2D()(h)))
        block_pruned = prune.prune_low_magnitude(
            block, prune.PolynomialDecay(0.0, 0.5, 0, 6, frequency=2), structure="channel")
        block_pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    block_pruned.fit(x, y, epochs=2, batch_size=16, verbose=0,
                     callbacks=[prune.UpdatePruningStep()])
    expand = block_pruned.get_layer("prune_low_magnitude_expand")
    block_small = prune.strip_pruning(block_pruned)
    print(json.dumps({
        "block_mask_sums": [float(tf.reduce_sum(v)) for v in
                            strategy.experimental_local_results(expand.masks[0]._value)],
        "block_filters": [block_small.get_layer(n).filters
                          for n in ("expand", "se_reduce", "se_expand", "project")],
        "block_diff": float(np.abs(block_small(x[:8]) - block_pruned(x[:8], training=False)).max()),
        "block_scale": float(np.abs(block_pruned(x[:8], training=False)).max()),
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
    # keras.ops nodes and the squeeze-excite Multiply: expand and se_expand share a mask
    # (6 of 12 filters of a 3x3x1 kernel on both replicas), and the stripped block agrees.
    assert result["block_mask_sums"] == [54.0, 54.0]
    assert result["block_filters"] == [6, 2, 6, 3]
    assert result["block_diff"] <= 1e-5 * max(1.0, result["block_scale"])
