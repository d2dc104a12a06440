# %% [markdown]
# # PTQ vs QAT in two lines, and what batch-norm folding changes
#
# Post-training quantization (PTQ) and quantization-aware training (QAT) start from the
# same entry point, `effkeras.quantize.quantize_model`. This notebook compares them on
# scikit-learn's digits (no download) and shows that the converted int8 graph has batch
# norm folded into the convolutions and agrees with the Keras QAT model.

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
import numpy as np

import effkeras
from effkeras.convert import read_tflite, to_tflite
from effkeras.data import load_dataset
from effkeras.demo import build_cnn
from effkeras.quantize import quantize_model, report
from effkeras.runtime import LiteRTRunner

keras.utils.set_random_seed(0)
data = load_dataset("digits")
model = build_cnn(data.input_shape, data.num_classes, width=8)
model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(data.x_train, data.y_train, epochs=10, batch_size=32, verbose=0)
print("float:", model.evaluate(data.x_test, data.y_test, verbose=0)[1])

# %% [markdown]
# ## PTQ: calibrate the ranges, convert

# %%
ptq = quantize_model(model, calibration_data=data.x_train[:256])
ptq_tflite = to_tflite(ptq, quantize="int8")


def accuracy(tflite):
    pred = LiteRTRunner(tflite).predict(data.x_test)
    return float(np.mean(np.argmax(pred, -1) == data.y_test))


print("PTQ int8 (LiteRT):", accuracy(ptq_tflite))
print(report(ptq))

# %% [markdown]
# ## QAT: the same start, then a short fine-tune with the callbacks in `fit`

# %%
qat = quantize_model(model, calibration_data=data.x_train[:256])
qat.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
qat.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0,
        callbacks=[effkeras.callbacks.FreezeBatchNorm(epoch=2)])
qat_tflite = to_tflite(qat, quantize="int8")
print("QAT int8 (LiteRT):", accuracy(qat_tflite))

# %% [markdown]
# ## The int8 graph: batch norm is folded, and Keras agrees with LiteRT

# %%
m = read_tflite(qat_tflite)
print(m.op_counts)
assert "MUL" not in m.op_counts and "ADD" not in m.op_counts
keras_out = qat.predict(data.x_test, verbose=0)
litert_out = LiteRTRunner(qat_tflite).predict(data.x_test)
step = 1 / 256  # the softmax output's fixed scale
within = float(np.mean(np.abs(keras_out - litert_out) <= step + 1e-6))
agree = float(np.mean(np.argmax(keras_out, -1) == np.argmax(litert_out, -1)))
print(f"outputs within one quantization step: {within:.4f}; argmax agreement: {agree:.4f}")
