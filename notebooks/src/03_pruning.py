# %% [markdown]
# # Pruning on Keras 3: unstructured sparsity that compresses, channels that speed up
#
# The API follows tensorflow-model-optimization (`prune_low_magnitude`, schedules,
# `UpdatePruningStep`, `strip_pruning`), on Keras 3. Data: scikit-learn's digits.

# %%
import gzip
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
import numpy as np

import effkeras
from effkeras import prune
from effkeras.convert import to_tflite
from effkeras.data import load_dataset
from effkeras.profiling import profile

keras.utils.set_random_seed(0)
data = load_dataset("digits")


def make_model():
    return keras.Sequential([
        keras.Input(data.input_shape),
        keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(32, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


base = make_model()
base.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
base.fit(data.x_train, data.y_train, epochs=8, batch_size=32, verbose=0)
print("float accuracy:", base.evaluate(data.x_test, data.y_test, verbose=0)[1])

# %% [markdown]
# ## Unstructured 80%: polynomial schedule, then strip and convert to int8

# %%
steps = 8 * int(np.ceil(len(data.x_train) / 32))
pruned = prune.prune_low_magnitude(
    base, pruning_schedule=prune.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=steps // 2,
                                                 frequency=10))
pruned.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
pruned.fit(data.x_train, data.y_train, epochs=8, batch_size=32, verbose=0,
           callbacks=[effkeras.callbacks.UpdatePruningStep()])
small = prune.strip_pruning(pruned)
print("pruned accuracy:", small.evaluate(data.x_test, data.y_test, verbose=0)[1])
print({k: round(v, 3) for k, v in prune.sparsity(small).items()})

float_tflite = to_tflite(base)
int8_pruned = to_tflite(small, quantize="int8", representative_data=data.x_train[:200])
print(f"float .tflite gzip: {len(gzip.compress(float_tflite, 9)):,} B; "
      f"pruned int8 gzip: {len(gzip.compress(int8_pruned, 9)):,} B")
print(profile(int8_pruned).table())

# %% [markdown]
# ## Channel pruning: filters removed for real, fewer MACs

# %%
chan = prune.prune_low_magnitude(base, pruning_schedule=prune.ConstantSparsity(0.5, 0, frequency=10),
                                 structure="channel")
chan.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
chan.fit(data.x_train, data.y_train, epochs=4, batch_size=32, verbose=0,
         callbacks=[effkeras.callbacks.UpdatePruningStep()])
thin = prune.strip_pruning(chan)
print(prune.strip_report(chan, thin).table())
print("channel-pruned accuracy:", thin.evaluate(data.x_test, data.y_test, verbose=0)[1])
