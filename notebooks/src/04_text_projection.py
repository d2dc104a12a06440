# %% [markdown]
# # Text models without an embedding table: a hashed n-gram projection (SGNN)
#
# `effkeras.text.Projector` turns raw text into a fixed ternary vector with no vocabulary
# and nothing learned; the same projector exists as portable C for the board. The model
# after it uses only builtin TFLite ops, so it runs in TensorFlow Lite Micro.
#
# Data: the SMS Spam Collection if it is present (`$EFFKERAS_DATA_DIR` or
# `../../shared/data`); otherwise a small set of messages made up here, which only shows
# that the code runs.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
import numpy as np

from effkeras.convert import read_tflite, to_tflite
from effkeras.deploy import text_sketch
from effkeras.runtime import LiteRTRunner, TFLMRunner
from effkeras.text import Projector, build_sgnn, calibration_data, load_sms_spam, text_model

keras.utils.set_random_seed(0)
root = os.environ.get("EFFKERAS_DATA_DIR") or os.path.join("..", "..", "shared", "data")
sms = os.path.join(root, "sms_spam")
if os.path.isdir(sms):
    ds = load_sms_spam(sms)
    x_train, y_train, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    print("SMS Spam Collection:", len(x_train), "train,", len(x_test), "test")
else:
    ham = ["see you at lunch", "call me when you get home", "ok thanks", "running late, sorry"]
    spam = ["WINNER! claim your free prize now", "free entry: text WIN to 80082",
            "urgent! your account has a cash award", "call now to claim 1000 pounds"]
    texts = np.array((ham + spam) * 10, dtype=object)
    labels = np.array(([0] * 4 + [1] * 4) * 10)
    x_train, y_train, x_test, y_test = texts, labels, texts[:16], labels[:16]
    print("made-up messages (SMS data not found)")

# %% [markdown]
# ## Train on raw strings

# %%
projector = Projector(num_hashes=64, bits=16, mode="ternary", seed=0)
print(projector, projector.output_shape)
sgnn = build_sgnn(projector, 2, bottleneck=48)
trainer = text_model(sgnn, projector)
trainer.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
trainer.fit(x_train, y_train, epochs=5, batch_size=64, verbose=0)
print("float accuracy:", trainer.evaluate(x_test, y_test, verbose=0)[1])

# %% [markdown]
# ## Convert the model after the projector to int8 and run it in LiteRT and TFLM

# %%
p_train, p_test = projector(x_train), projector(x_test)
tflite = to_tflite(sgnn, quantize="int8", representative_data=calibration_data(p_train),
                   io_dtype="int8")
print(read_tflite(tflite).op_counts, f"{len(tflite):,} bytes")
acc_litert = float(np.mean(np.argmax(LiteRTRunner(tflite).predict(p_test), -1) == y_test))
acc_tflm = float(np.mean(np.argmax(TFLMRunner(tflite).predict(p_test), -1) == y_test))
print(f"int8 accuracy: LiteRT {acc_litert:.4f}, TFLM {acc_tflm:.4f}")

# %% [markdown]
# ## The Arduino sketch: reads a line from Serial, projects it in C, classifies it

# %%
out = tempfile.mkdtemp()
info = text_sketch(tflite, os.path.join(out, "sms_sgnn"), projector, labels=["ham", "spam"])
print(info.path)
print(sorted(os.listdir(info.path)))
