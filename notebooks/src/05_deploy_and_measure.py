# %% [markdown]
# # Deploy and measure: read a .tflite, profile it, C arrays, sketch, latency
#
# Everything here works on `.tflite` bytes and needs no TensorFlow: it runs next to a
# board on a laptop or a Raspberry Pi. The models are the example models the repository
# ships in `tflite_models/` (made by `make examples`).

# %%
import json
import os
import tempfile

from effkeras.bench import compare, format_table, measure, plot_tradeoff
from effkeras.convert import read_tflite, to_c_array
from effkeras.profiling import profile

ROOT = os.path.abspath("..")
float_path = os.path.join(ROOT, "tflite_models", "digits_cnn_float32.tflite")
int8_path = os.path.join(ROOT, "tflite_models", "digits_cnn_int8.tflite")
m = read_tflite(int8_path)
print(m.summary())

# %% [markdown]
# ## Profile: params, MACs, the exact TFLM arena and board fit

# %%
report = profile(int8_path, board="nano33ble")
print(report.table())
d = report.to_dict()
print({k: d[k] for k in ("size_bytes", "params", "macs", "arena_bytes", "arena_with_margin")})

# %% [markdown]
# ## C arrays in the TFLM convention

# %%
out = tempfile.mkdtemp()
files = to_c_array(m, "digits_cnn_int8").write(out)
print(files)
print(open(files[0]).read()[:600])

# %% [markdown]
# ## Latency: LiteRT on this host, the TFLM interpreter, and an estimate for the board
#
# Host figures are medians of interleaved runs; the board figure is an estimate from
# per-op MACs and calibrated cycles-per-MAC (see `effkeras.bench.estimate`), not a
# measurement. `serial:PORT` and `android:SERIAL` targets measure real hardware.

# %%
results = compare([float_path, int8_path], target="litert", runs=100, warmup=10)
print(format_table(results))
print(format_table([measure(int8_path, target="tflm", runs=50, warmup=5)]))
print(format_table([measure(int8_path, target="estimate:nano33ble")]))

# %% [markdown]
# ## Size / latency / accuracy plot (accuracies from the JSON sidecars)

# %%
png = os.path.join(out, "tradeoff.png")
plot = plot_tradeoff(results, png)
print(json.dumps(plot["points"], indent=1))

from IPython.display import Image  # noqa: E402

Image(png)
