# %% [markdown]
# # effkeras quickstart: Keras 3 model -> QAT with batch-norm folding -> int8 -> Arduino
#
# This notebook runs on scikit-learn's bundled 8x8 digits, so it needs no download.
# It trains a small CNN, fine-tunes it with quantization-aware training (the callbacks go
# into `model.fit`), converts it to a full-int8 `.tflite`, checks it in LiteRT and in the
# TensorFlow Lite Micro interpreter, and writes an Arduino sketch.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
import numpy as np

import effkeras
from effkeras.convert import read_tflite, to_tflite
from effkeras.data import load_dataset
from effkeras.demo import build_cnn
from effkeras.deploy import arduino_sketch
from effkeras.quantize import quantize_model
from effkeras.runtime import LiteRTRunner, TFLMRunner

keras.utils.set_random_seed(0)
data = load_dataset("digits")
print(data.x_train.shape, data.x_test.shape)

# %% [markdown]
# ## 1. Train a float model

# %%
model = build_cnn(data.input_shape, data.num_classes, width=8)
model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(data.x_train, data.y_train, epochs=10, batch_size=32, verbose=0)
float_acc = model.evaluate(data.x_test, data.y_test, verbose=0)[1]
print(f"float accuracy: {float_acc:.4f}")

# %% [markdown]
# ## 2. Quantization-aware training with batch-norm folding
#
# `quantize_model` rewrites the model: each Conv -> BatchNorm -> ReLU becomes one
# quantized op whose folded kernel is fake-quantized per output channel, exactly as
# TFLite will run it. `FreezeBatchNorm` switches the folded weights to the moving
# statistics; `FreezeQuantRanges` stops the activation ranges from moving.

# %%
qat = quantize_model(model, calibration_data=data.x_train[:256])
qat.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
qat.fit(
    data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0,
    callbacks=[effkeras.callbacks.FreezeBatchNorm(epoch=1),
               effkeras.callbacks.FreezeQuantRanges(epoch=2)],
)
qat_acc = qat.evaluate(data.x_test, data.y_test, verbose=0)[1]
print(f"QAT (simulated int8) accuracy: {qat_acc:.4f}")

# %% [markdown]
# ## 3. Convert to int8 (no representative data needed) and check it

# %%
tflite = to_tflite(qat, quantize="int8", io_dtype="int8")
info = read_tflite(tflite)
print(info.summary().splitlines()[0])
print("ops:", info.op_counts, "full integer:", info.is_full_integer)

litert_pred = LiteRTRunner(tflite).predict(data.x_test)
tflm_pred = TFLMRunner(tflite).predict(data.x_test)
litert_acc = float(np.mean(np.argmax(litert_pred, -1) == data.y_test))
tflm_acc = float(np.mean(np.argmax(tflm_pred, -1) == data.y_test))
print(f"LiteRT int8: {litert_acc:.4f}   TFLM int8: {tflm_acc:.4f}")
assert info.is_full_integer and abs(litert_acc - qat_acc) < 0.02

# %% [markdown]
# ## 4. Profile for a board and write the Arduino sketch

# %%
report = effkeras.profile(tflite, board="nano33ble")
print(report.table())

out = tempfile.mkdtemp()
sketch = arduino_sketch(tflite, os.path.join(out, "digits_qat"), board="nano33ble",
                        labels=[str(i) for i in range(10)])
print(sketch.path)
print(sorted(os.listdir(sketch.path)))
