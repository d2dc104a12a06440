"""The main job, end to end: train a small CNN, convert, evaluate on host and TFLM, deploy.

``effkeras demo`` (or :func:`run_demo`) on the embedded digits needs no files:

1. train a conv + batch-norm + ReLU CNN with Keras 3 (progress bar);
2. convert it to float32 and to full-int8 (int8 input/output, for microcontrollers);
3. evaluate the Keras float model, the int8 model in LiteRT and the int8 model in the
   TFLite Micro interpreter on the test split;
4. write ``tflite_models/`` (each .tflite with a JSON sidecar: how it was made and what it
   scored), C arrays and an Arduino sketch under ``deploy/``, and ``summary.json``;
5. print one summary table: sizes, the three accuracies, the TFLM arena, board fit.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from effkeras.errors import EffkerasError, OutputExistsError

DEFAULT_EPOCHS = {"digits": 30, "mnist": 3, "cifar10": 10}
DEFAULT_WIDTH = {"digits": 8, "mnist": 8, "cifar10": 16}


def build_cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 8):
    """A small conv + batch-norm + ReLU CNN that converts to an all-int8 TFLM graph.

    Each Conv -> BN -> ReLU block folds into one quantized CONV_2D; the head is
    Flatten -> Dense -> Softmax. For inputs larger than 16 pixels every block pools.
    """
    import keras

    if not isinstance(num_classes, int) or num_classes < 2:
        raise EffkerasError(f"num_classes must be an integer >= 2. Received: {num_classes!r}")
    layers = keras.layers
    x = inputs = keras.Input(shape=tuple(input_shape), name="image")
    small = input_shape[0] <= 16
    for i, filters in enumerate((width, 2 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        if not small or i == 0:
            x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    if not small:
        x = layers.MaxPooling2D(name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="effkeras_cnn")


@dataclass
class DemoResult:
    """What the demo produced and measured."""

    out_dir: str
    dataset: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    accuracy_keras: float = 0.0
    accuracy_litert_int8: float = 0.0
    accuracy_tflm_int8: float = 0.0
    arena_bytes: int = 0
    files: list[str] = field(default_factory=list)
    fits: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    test_samples: int = 0
    tflm_samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == y))


def _check_outputs(out_dir: str, names: list[str], force: bool) -> None:
    existing = [n for n in names if os.path.exists(os.path.join(out_dir, n))]
    if existing and not force:
        raise OutputExistsError(
            f"{out_dir!r} already holds {', '.join(existing)}; pass --force (API: force=True) "
            f"to overwrite them, or choose another --out."
        )


def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _write_json(path: str, obj: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def evaluate_tflite(
    tflite: bytes, x: np.ndarray, y: np.ndarray, runtime: str = "litert", kernels: str = "xnnpack"
) -> float:
    """Top-1 accuracy of a .tflite model on (x, y) in LiteRT or the TFLM interpreter."""
    from effkeras.runtime import LiteRTRunner, TFLMRunner

    runner = LiteRTRunner(tflite, kernels=kernels) if runtime == "litert" else TFLMRunner(tflite)
    return _accuracy(runner.predict(x), y)


def run_demo(
    dataset: str = "digits",
    data_dir: str | None = None,
    out_dir: str = "demo_out",
    *,
    epochs: int | None = None,
    width: int | None = None,
    board: str = "nano33ble",
    force: bool = False,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
    tflm_eval_limit: int | None = None,
    verbose: int | None = None,
    command: str = "",
) -> DemoResult:
    """Train, convert, evaluate and deploy; see the module docstring.

    Args:
        dataset: ``"digits"`` (embedded), ``"mnist"`` or ``"cifar10"`` (read from data_dir).
        data_dir: folder with the dataset files (or ``$EFFKERAS_DATA_DIR``).
        out_dir: where the outputs go. Existing outputs are refused unless ``force``.
        epochs, width: training epochs and base filter count (defaults per dataset).
        board: board for the sketch and the fit check.
        seed: random seed for weights and shuffling.
        limit_train, limit_test: use only the first N samples of each split.
        tflm_eval_limit: evaluate at most this many test samples in TFLM (default: all).
        verbose: Keras fit verbosity (default: progress bar on a terminal, else one line
            per epoch).
        command: the command line, recorded in the sidecars.
    """
    start = time.time()
    from effkeras import __version__
    from effkeras.boards import get_board
    from effkeras.convert import read_tflite, to_c_array, to_tflite
    from effkeras.data import load_dataset
    from effkeras.deploy import arduino_sketch
    from effkeras.runtime.tflm import TFLMRunner, arena_with_margin, measure_arena

    target = get_board(board)
    stem = f"{dataset}_cnn"
    names = ["tflite_models", "deploy", f"{stem}.keras", "summary.json"]
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExistsError(f"--out {out_dir!r} is a file; pass a folder.")
    _check_outputs(out_dir, names, force)

    data = load_dataset(dataset, data_dir, limit_train=limit_train, limit_test=limit_test)
    epochs = DEFAULT_EPOCHS[dataset] if epochs is None else epochs
    width = DEFAULT_WIDTH[dataset] if width is None else width
    if epochs < 1:
        raise EffkerasError(f"epochs must be at least 1. Received: epochs={epochs}")

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = build_cnn(data.input_shape, data.num_classes, width)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    print(f"Training {model.name} on {dataset}: {len(data.x_train)} train, "
          f"{len(data.x_test)} test, {epochs} epochs")
    model.fit(
        data.x_train, data.y_train, epochs=epochs, batch_size=32, validation_split=0.1,
        verbose=verbose,
    )
    acc_keras = _accuracy(model.predict(data.x_test, verbose=0, batch_size=256), data.y_test)

    print("Converting: float32 and full-int8 (int8 input/output) ...")
    calib = data.x_train[:300]
    float_bytes = to_tflite(model)
    # Conv filters per channel, the dense filter per tensor (to_tflite's default): the
    # Arduino library's FULLY_CONNECTED (2023) uses one scale, so a per-channel dense filter
    # would give wrong outputs on the board (effkeras.runtime.tflm_ops).
    int8_bytes = to_tflite(model, quantize="int8", representative_data=calib, io_dtype="int8")
    int8 = read_tflite(int8_bytes)

    print("Evaluating in LiteRT and in the TFLite Micro interpreter ...")
    acc_float_tfl = evaluate_tflite(float_bytes, data.x_test, data.y_test)
    acc_litert = evaluate_tflite(int8_bytes, data.x_test, data.y_test)
    n_tflm = len(data.x_test) if tflm_eval_limit is None else min(len(data.x_test), tflm_eval_limit)
    tflm = TFLMRunner(int8_bytes)
    acc_tflm = _accuracy(tflm.predict(data.x_test[:n_tflm]), data.y_test[:n_tflm])
    arena = measure_arena(int8)

    os.makedirs(out_dir, exist_ok=True)
    files: list[str] = []
    model_path = os.path.join(out_dir, f"{stem}.keras")
    if os.path.exists(model_path):
        os.remove(model_path)
    model.save(model_path)
    files.append(model_path)

    made_by = {
        "command": command or "effkeras.demo.run_demo",
        "effkeras": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "dataset": dataset,
        "data_source": data.source,
        "train_samples": int(len(data.x_train)),
        "epochs": epochs,
        "width": width,
        "seed": seed,
        "architecture": "Conv3x3-BN-ReLU-MaxPool, Conv3x3-BN-ReLU, Flatten, Dense, Softmax",
    }
    tflite_dir = os.path.join(out_dir, "tflite_models")
    entries = [
        ("float32", float_bytes, {"quantize": None, "io_dtype": "float32"},
         {"accuracy_keras": acc_keras, "accuracy_litert": acc_float_tfl}),
        ("int8", int8_bytes,
         {"quantize": "int8", "io_dtype": "int8", "dense_per_channel": False,
          "calibration_samples": int(len(calib))},
         {"accuracy_keras": acc_keras, "accuracy_litert": acc_litert,
          "accuracy_tflm": acc_tflm, "tflm_test_samples": n_tflm}),
    ]
    rows = []
    for kind, blob, how, scores in entries:
        parsed = read_tflite(blob)
        path = os.path.join(tflite_dir, f"{stem}_{kind}.tflite")
        _write_bytes(path, blob)
        sidecar = {
            "file": os.path.basename(path),
            "size_bytes": len(blob),
            "sha256": parsed.sha256,
            "made_by": {**made_by, **how},
            "scores": {**scores, "test_samples": int(len(data.x_test)),
                       "litert_kernels": "xnnpack", "litert_threads": 1},
            "ops": parsed.op_counts,
            "inputs": [t.to_dict() for t in parsed.inputs],
            "outputs": [t.to_dict() for t in parsed.outputs],
        }
        if kind == "int8":
            sidecar["arena_bytes"] = arena
            sidecar["arena_with_margin"] = arena_with_margin(arena)
        _write_json(path[: -len(".tflite")] + ".json", sidecar)
        files += [path, path[: -len(".tflite")] + ".json"]
        rows.append({"model": f"{stem}_{kind}.tflite", "size_bytes": len(blob), **scores})

    deploy_dir = os.path.join(out_dir, "deploy")
    carray = to_c_array(int8_bytes, f"{stem}_int8")
    files += carray.write(os.path.join(deploy_dir, "c_arrays"), force=True)
    sketch = arduino_sketch(
        int8_bytes, os.path.join(deploy_dir, f"{stem}_int8_{target.name}"), board=target.name,
        labels=data.class_names, force=True, name=f"{stem}_int8",
    )
    files.append(sketch.path)

    flash_needed = len(int8_bytes) + target.program_flash_kb * 1024
    ram_needed = arena_with_margin(arena)
    fits = {
        "board": target.name,
        "flash_needed": flash_needed,
        "flash_available": target.flash_bytes,
        "ram_needed": ram_needed,
        "ram_available": target.ram_bytes,
        "fits": flash_needed <= target.flash_bytes and ram_needed <= target.ram_bytes,
    }
    result = DemoResult(
        out_dir=out_dir, dataset=dataset, rows=rows, accuracy_keras=acc_keras,
        accuracy_litert_int8=acc_litert, accuracy_tflm_int8=acc_tflm, arena_bytes=arena,
        files=files, fits=fits, seconds=time.time() - start, test_samples=int(len(data.x_test)),
        tflm_samples=n_tflm,
    )
    _write_json(os.path.join(out_dir, "summary.json"), result.to_dict())
    return result


def format_summary(result: DemoResult) -> str:
    """The one summary table the demo prints."""
    f = result.fits
    lines = [
        "",
        f"effkeras demo on {result.dataset}: test accuracy on {result.test_samples:,d} samples "
        f"({result.seconds:.0f} s)",
        f"{'model':28s} {'size':>10s} {'Keras float':>12s} {'LiteRT':>8s} {'TFLM':>8s}",
    ]
    for r in result.rows:
        tflm = f"{r['accuracy_tflm']:.2%}" if "accuracy_tflm" in r else "-"
        lines.append(
            f"{r['model']:28s} {r['size_bytes']:>8,d} B {r['accuracy_keras']:>12.2%} "
            f"{r['accuracy_litert']:>8.2%} {tflm:>8s}"
        )
    if result.tflm_samples != result.test_samples:
        lines.append(f"(TFLM column: first {result.tflm_samples:,d} test samples only)")
    lines += [
        f"TFLM arena (smallest that runs, 64-bit host): {result.arena_bytes:,d} bytes",
        f"fits on {f['board']}: {'yes' if f['fits'] else 'NO'} "
        f"(flash {f['flash_needed']:,d} of {f['flash_available']:,d} B incl. estimated program; "
        f"RAM {f['ram_needed']:,d} of {f['ram_available']:,d} B for the arena with margin)",
        f"outputs in {result.out_dir}/: tflite_models/, deploy/ (C arrays, Arduino sketch), "
        f"summary.json",
    ]
    return "\n".join(lines)
