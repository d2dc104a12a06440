"""SMS spam: an embedding-table baseline vs the SGNN and PRADO projection models, int8.

    EFFKERAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/text.py [--data-dir DIR]
        [--epochs 20] [--runs 300] [--results OUT.json]

Loads the SMS Spam Collection (effkeras.text.load_sms_spam, stratified 80/20 split, seed
0), trains three classifiers with the same head (Dense 64 relu -> dropout -> softmax):

- baseline: Vocabulary(10,000 tokens, same tokenizer) -> TableEmbedding(10,000 x 64) ->
  mean over 64 tokens;
- SGNN: Projector(T=64, B=16, binary, word 1-2-grams + char 3-grams) -> Dense(48, relu);
- PRADO: Projector(T=4, B=16, ternary, per token, 64 tokens, word unigrams + char
  3-grams) -> projected embedding 64 -> Conv1D k=1,3 with attention pooling;

converts each with effkeras.convert.to_tflite(quantize="int8", io_dtype="int8") and
reports, for the int8 models: accuracy and spam F1 on the test set (LiteRT; TFLM is
checked to give the same argmax), .tflite size, the TFLM arena (the recording
allocator's total, and measure_arena run in a child process), and host
latency medians (LiteRT XNNPACK 1 thread and TFLM), timed interleaved on real test inputs
in one run; plus the projection's own time (C projector via ctypes, and Python).
Prints the machine and date first; writes the results file to --results if given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402
from _machine import machine_lines as machine  # noqa: E402

EMBED_VOCAB = 10_000
MAX_TOKENS = 64


def convert(model, calib) -> bytes:
    from effkeras.convert import to_tflite

    return to_tflite(model, quantize="int8", representative_data=calib, io_dtype="int8")


def _isolated_arena(tflite: bytes) -> str:
    """measure_arena in a child process: it segfaulted inside tflite-micro on some models
    (probing arena sizes just above the recorded total), so never in this process."""
    import tempfile

    from effkeras.runtime.tflm import run_isolated

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(tflite)
        result = run_isolated(path)
    return f"{result['arena_bytes']:,}" if "arena_bytes" in result else "crashed"


def f1_spam(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp = int(np.sum((y_pred == 1) & (y_true == 1)))
    fp = int(np.sum((y_pred == 1) & (y_true == 0)))
    fn = int(np.sum((y_pred == 0) & (y_true == 1)))
    return 2 * tp / max(2 * tp + fp + fn, 1)


def timed_medians(
    runners: dict[str, object], inputs: dict[str, np.ndarray], runs: int
) -> dict[str, float]:
    """Median microseconds of invoke_raw per model, interleaved round-robin."""
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for name, r in runners.items():  # warm-up
        for i in range(10):
            r.invoke_raw([inputs[name][i % len(inputs[name])][None]])
    for i in range(runs):
        for name, r in runners.items():
            x = inputs[name][i % len(inputs[name])][None]
            t0 = time.perf_counter_ns()
            r.invoke_raw([x])
            samples[name].append((time.perf_counter_ns() - t0) / 1e3)
    return {k: float(np.median(v)) for k, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with SMSSpamCollection.gz")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--results", default=None, help="write the results file here (benchmarks/results/text.json)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for line in machine():
        print(line)
    import keras

    from effkeras.convert import read_tflite
    from effkeras.runtime import LiteRTRunner, TFLMRunner
    from effkeras.runtime.quant import quantize
    from effkeras.text import (
        HostCProjector,
        Projector,
        Vocabulary,
        build_embedding_baseline,
        build_prado,
        build_sgnn,
        calibration_data,
        load_sms_spam,
    )

    data = load_sms_spam(args.data_dir)
    print(
        f"SMS: {len(data.x_train)} train / {len(data.x_test)} test, {int(data.y_test.sum())} spam in test ({data.source})"
    )

    sgnn_p = Projector(64, 16, mode="binary", ngram_range=(1, 2), char_ngrams=(3, 3), seed=0)
    prado_p = Projector(
        4, 16, mode="ternary", ngram_range=(1, 1), char_ngrams=(3, 3), max_tokens=MAX_TOKENS, seed=0
    )
    vocab = Vocabulary(data.x_train, EMBED_VOCAB, MAX_TOKENS)

    t0 = time.perf_counter()
    feats = {
        "baseline": (vocab.encode(data.x_train), vocab.encode(data.x_test)),
        "sgnn": (sgnn_p(data.x_train), sgnn_p(data.x_test)),
        "prado": (prado_p(data.x_train), prado_p(data.x_test)),
    }
    print(f"features in {time.perf_counter() - t0:.1f} s")
    builders = {
        "baseline": lambda: build_embedding_baseline(EMBED_VOCAB, MAX_TOKENS, 2),
        "sgnn": lambda: build_sgnn(sgnn_p, 2, bottleneck=48),
        "prado": lambda: build_prado(prado_p, 2),
    }
    titles = {
        "baseline": f"embedding baseline (V={EMBED_VOCAB:,}, d=64, L={MAX_TOKENS})",
        "sgnn": "SGNN (T=64, B=16 binary, word 1-2 + char 3-grams; bottleneck 48)",
        "prado": f"PRADO (T=4, B=16 ternary, L={MAX_TOKENS}, word 1 + char 3-grams)",
    }
    rows = {}
    tflites = {}
    # Train and convert everything first, then load the runtimes (TFLM and LiteRT loaded
    # next to a later TensorFlow conversion crashed this process once).
    for name, build in builders.items():
        x_tr, x_te = feats[name]
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(
            keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        t0 = time.perf_counter()
        model.fit(x_tr, data.y_train, epochs=args.epochs, batch_size=32, verbose=0)
        train_s = time.perf_counter() - t0
        float_pred = model.predict(x_te, batch_size=256, verbose=0).argmax(-1)
        calib = x_tr[:300] if name == "baseline" else calibration_data(x_tr[:300])
        tflites[name] = convert(model, calib)
        rows[name] = {
            "float_acc": float(np.mean(float_pred == data.y_test)),
            "params": model.count_params(),
            "train_s": train_s,
        }
        print(
            f"{name}: trained in {train_s:.1f} s, float acc {rows[name]['float_acc']:.4f}",
            flush=True,
        )
    for name, tfl in tflites.items():
        x_te = feats[name][1]
        info = read_tflite(tfl)
        lite = LiteRTRunner(tfl)
        inp = info.inputs[0]
        q_te = np.stack([quantize(x[None], inp)[0] for x in x_te])
        out = np.stack([lite.invoke_raw([q[None]])[0][0] for q in q_te])
        int8_pred = out.argmax(-1)
        tflm = TFLMRunner(tfl)
        tflm_pred = np.array([tflm.invoke_raw([q[None]])[0][0].argmax() for q in q_te[:200]])
        rows[name].update(
            {
                "acc": float(np.mean(int8_pred == data.y_test)),
                "f1": f1_spam(data.y_test, int8_pred),
                "size": len(tfl),
                "arena": TFLMRunner(tfl).arena_bytes(),
                "arena_exact": _isolated_arena(tfl),
                "ops": ", ".join(info.op_names),
                "tflm_agree": float(np.mean(tflm_pred == int8_pred[:200])),
                "q_te": q_te,
                "input": f"{inp.dtype.lower()} {list(inp.shape[1:])}",
            }
        )
        print(name, {k: v for k, v in rows[name].items() if k != "q_te"}, flush=True)

    # Latency, interleaved, real test inputs.
    lat_lite = timed_medians(
        {k: LiteRTRunner(v) for k, v in tflites.items()},
        {k: r["q_te"] for k, r in rows.items()},
        args.runs,
    )
    lat_tflm = timed_medians(
        {k: TFLMRunner(v) for k, v in tflites.items()},
        {k: r["q_te"] for k, r in rows.items()},
        args.runs,
    )
    proj_us = {}
    texts = list(data.x_test[:300])
    for name, p in (("sgnn", sgnn_p), ("prado", prado_p)):
        c = HostCProjector(p)
        c_times, py_times = [], []
        for t in texts:
            b = p.to_bytes(t)
            t0 = time.perf_counter_ns()
            c.project_bytes(b)
            c_times.append((time.perf_counter_ns() - t0) / 1e3)
        for t in texts[:100]:
            t0 = time.perf_counter_ns()
            p.project(t)
            py_times.append((time.perf_counter_ns() - t0) / 1e3)
        proj_us[name] = (float(np.median(c_times)), float(np.median(py_times)))
        c.close()

    base = rows["baseline"]
    lines = [
        "| model | input | params | int8 .tflite bytes | size vs baseline | float acc | int8 acc | int8 spam F1 | TFLM arena B (recorded / measure_arena) | LiteRT median us | TFLM median us | projection median us (C / Python) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        ratio = base["size"] / r["size"]
        proj = "-" if name not in proj_us else f"{proj_us[name][0]:.1f} / {proj_us[name][1]:.0f}"
        lines.append(
            f"| {titles[name]} | {r['input']} | {r['params']:,} | {r['size']:,} | "
            f"{'1x' if name == 'baseline' else f'{ratio:.1f}x smaller'} | {r['float_acc']:.4f} | "
            f"{r['acc']:.4f} | {r['f1']:.4f} | {r['arena']:,} / {r['arena_exact']} | {lat_lite[name]:.1f} | "
            f"{lat_tflm[name]:.1f} | {proj} |"
        )
    extra = [
        "",
        "Ops: " + "; ".join(f"{n}: {r['ops']}" for n, r in rows.items()) + ".",
        "TFLM argmax agreement with LiteRT on the first 200 test messages: "
        + ", ".join(f"{n} {r['tflm_agree']:.3f}" for n, r in rows.items())
        + ".",
        f"Accuracy gap to the baseline (int8): SGNN {100 * (rows['sgnn']['acc'] - base['acc']):+.2f} points, "
        f"PRADO {100 * (rows['prado']['acc'] - base['acc']):+.2f} points.",
    ]
    table = "\n".join(lines + extra)
    print(table)
    if args.results:
        command = "benchmarks/text.py " + " ".join(sys.argv[1:] if argv is None else argv)
        md = "\n\n".join([f"## {TITLE}", f"Command: `{command.strip()}`", "\n".join(machine()), table])
        raw = {k: {kk: vv for kk, vv in r.items() if not isinstance(vv, (bytes, np.ndarray)) and not kk.startswith("q_")}
               for k, r in rows.items()}
        results.save(args.results, results.build("text", title=TITLE, markdown=md, headline=headline(rows),
                                                 script_command=command.strip(), raw=raw))
    return 0


TITLE = "Text without embedding tables: SGNN and PRADO vs an embedding baseline (SMS spam)"


def headline(rows: dict) -> list[dict]:
    """Size against the embedding baseline and the int8 accuracy lost: 10x smaller within 1 point."""
    base = rows["baseline"]
    each = {n: (base["size"] / rows[n]["size"], 100 * (rows[n]["acc"] - base["acc"])) for n in ("sgnn", "prado")}
    ok = [ratio >= 10 and gap >= -1 for ratio, gap in each.values()]
    return [results.headline_row(
        "projection text models (SMS spam), int8",
        "; ".join(f"{n.upper()} {ratio:.1f}x smaller, {gap:+.2f} pt" for n, (ratio, gap) in each.items()),
        "10x smaller than the embedding baseline within 1 pt", "yes" if all(ok) else ("partly" if any(ok) else "no"))]


if __name__ == "__main__":
    sys.exit(main())
