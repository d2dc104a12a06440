"""QAT fine-tuning is not worse than PTQ of the same float model (issue 20, item 2).

One keras.applications family is trained in float on the sklearn digits, then turned
into two full-int8 files from the same float weights: the converter's post-training
quantization, and effkeras QAT (calibrated, then fine-tuned). Both are scored in LiteRT
on the held-out digits. Training uses compiled ``model.fit``: tracing once and running
graph steps (0.03-0.1 s a step here) is far cheaper than eager GradientTape steps (~3 s a step on
MobileNetV2, which made the first version of this test, b71925b, take 6 minutes).
"""

from __future__ import annotations

import numpy as np
import pytest

from effkeras.convert import read_tflite, to_tflite
from effkeras.quantize import quantize_model
from effkeras.runtime import LiteRTRunner

SIZE = 32


def _digits():
    """sklearn digits (1,437 train, 360 held-out test), 8x8 upsampled to 32x32x3 in [0, 1]."""
    from effkeras.data import load_dataset

    def up(a):
        return np.repeat(np.repeat(np.repeat(a, 4, 1), 4, 2), 3, -1).astype("float32")

    ds = load_dataset("digits")
    return up(ds.x_train), ds.y_train, up(ds.x_test), ds.y_test


def _full_int8(data: bytes) -> bytes:
    parsed = read_tflite(data)
    assert parsed.is_full_integer and not parsed.float_ops(), parsed.float_ops()
    return data


@pytest.mark.slow
def test_qat_fine_tuning_is_not_worse_than_ptq_of_the_same_float_model():
    """Issue 20 item 2, second half: QAT from trained weights vs PTQ of the same weights.

    MobileNet (v1, alpha 0.25, 32x32x3, weights=None, 10 classes) is trained in float
    for 6 epochs (Adam 2e-3, batch 32) on the 1,437 digits training images, then
    quantized twice from identical float weights:

    - PTQ: ``to_tflite(model, quantize="int8", representative_data=256 train images)``
      (the TFLite converter's own calibration);
    - QAT: ``quantize_model(model, calibration_data=the same 256)``, one epoch (45
      steps) of Adam 1e-4, ``to_tflite(qat, quantize="int8")``.

    Both files are full int8 and scored with LiteRT on the 360 disjoint test images.
    BN momentum is set to 0.9 for the short float training so the moving statistics
    (what PTQ and the conversion use) follow the weights; the 0.999 lag is the subject
    of ``test_fine_tuning_a_float_model_does_not_blow_up``.

    MobileNet rather than the issue's MobileNetV2 (alpha 0.35): with compiled fit the
    cost is tracing, not steps (MobileNetV2's QAT train step is a 48,600-op graph that took
    64 s to trace and optimize on a busy host), and the same recipe on MobileNetV2 took
    120-213 s on these 2 cores against 73-93 s for MobileNet. MobileNetV2 gave the same
    ordering (3 float epochs, outside the suite): float 79.2%, PTQ 78.9%, QAT 83.9%.

    Measured with this recipe (float seed / QAT seed: float, PTQ, QAT on 360 images):
    0/1 (this test): 83.6, 81.9, 82.8; 0/2: 83.6, 81.9, 84.4; 0/3: 83.6, 81.9, 83.6;
    1/2: 78.6, 79.7, 82.8; 2/3: 77.8, 78.1, 78.6. QAT - PTQ: +0.6 to +3.1 points (mean
    +1.7, sd 1.0); a second QAT epoch did not widen it (0/1: +0.8, 2/3: +1.1). With the
    seeds fixed, reruns on this host give the same figures. Tolerance: 2 points (7 of
    360 images), for another CPU's kernels acting like another seed: a correct QAT would
    have to fall 2.6 points under the lowest margin seen (3.5 sd under the mean). A broken
    QAT (NaN: constant argmax, ~10%; collapsed ranges) fails this and the 50% floor
    (chance: 10%).
    """
    import keras

    x_tr, y_tr, x_te, y_te = _digits()

    def accuracy(probs):
        return float(np.mean(np.argmax(probs, -1) == y_te))

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(
        alpha=0.25, input_shape=(SIZE, SIZE, 3), weights=None, classes=10
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    # jit_compile=False (what "auto" resolves to on a CPU): XLA was slower here. MobileNetV2,
    # 3 float epochs + 1 QAT epoch: float fit 93 s and QAT fit 141 s with XLA, 50 s and 91 s
    # without it on a busier host (XLA also recompiles for the last, partial batch).
    # MobileNet, this recipe: float fit 81 s and QAT fit 166 s with XLA, 20-30 s and 19-25 s
    # without (busy host both times).
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy",
                  jit_compile=False)
    history = model.fit(x_tr, y_tr, batch_size=32, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    float_acc = accuracy(model.predict(x_te, batch_size=120, verbose=0))
    assert float_acc >= 0.6, f"float model not trained: {float_acc:.3f} on held-out digits"
    weights = [np.copy(w) for w in model.get_weights()]
    calibration = x_tr[:256]

    ptq = _full_int8(to_tflite(model, quantize="int8", representative_data=calibration))
    ptq_acc = accuracy(LiteRTRunner(ptq).predict(x_te))

    qat = quantize_model(model, calibration_data=calibration)
    # neither the conversion nor quantize_model touched the float model, and the QAT
    # twin holds every float array exactly (kernels, BN gamma/beta/moving statistics)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    held = {(w.shape, w.tobytes()) for w in qat.get_weights()}
    missing = [w.shape for w in weights if (w.shape, w.tobytes()) not in held]
    assert not missing, f"QAT model does not start from the float weights: {missing}"

    keras.utils.set_random_seed(1)
    qat.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy",
                jit_compile=False)
    qat_losses = qat.fit(x_tr, y_tr, batch_size=32, epochs=1, verbose=0).history["loss"]
    assert np.all(np.isfinite(qat_losses)), qat_losses
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(v))) for v in qat.variables)
    qat_file = _full_int8(to_tflite(qat, quantize="int8"))
    qat_acc = accuracy(LiteRTRunner(qat_file).predict(x_te))

    print(f"float {float_acc:.4f} PTQ {ptq_acc:.4f} QAT {qat_acc:.4f}")
    assert qat_acc >= 0.5, f"QAT int8 accuracy {qat_acc:.3f}: near chance (0.1), QAT broken"
    assert qat_acc >= ptq_acc - 0.02, (
        f"QAT int8 accuracy {qat_acc:.4f} is more than 2 points below PTQ {ptq_acc:.4f} "
        f"(float {float_acc:.4f}) on {len(y_te)} held-out digits"
    )
