"""Hostile files: a seeded mutation fuzzer through the CLI's inspect, profile, sketch and bench.

    .venv/bin/python benchmarks/fuzz.py --mutants 10000 --results benchmarks/results/fuzz.json
    .venv/bin/python -m benchmarks fuzz [--quick]

Mutants of valid models (the demo's int8 and float32 digits CNNs in tflite_models/ and the
microcontroller suite's int8 ResNet-8): bit flips, truncations, random bytes, and
structured edits of the flatbuffer's fields through the schema's object API (shapes,
quantization scales, zero points and dimensions, tensor and opcode indices, subgraph inputs
and outputs, tensor types, options types and values, buffer sizes). Each mutant goes
through ``effkeras inspect --json``, ``profile --json``, ``sketch`` and ``bench --target
tflm|litert --json`` (the last three only for mutants that inspect accepts), each command
run as the CLI runs it (``effkeras.cli.main``) in a forked child with a time limit, so a
signal death or a hang of the command is seen as such. A command passes when it exits 0 or
2, prints no Python traceback, and with ``--json`` and exit 0 prints valid JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_MODELS = ("tflite_models/digits_cnn_int8.tflite", "tflite_models/digits_cnn_float32.tflite",
               "tflite_models/mcu/resnet8_half_int8.tflite")
TITLE = "Hostile files: mutation fuzzing of inspect, profile, sketch and bench"


# ---------------------------------------------------------------------------- mutations


def _schema():
    from effkeras.convert.flatbuffer import schema

    return schema


def _pack(model) -> bytes:
    import flatbuffers

    from effkeras.convert.flatbuffer import TFLITE_IDENTIFIER

    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=TFLITE_IDENTIFIER)
    return bytes(b.Output())


def _weird_number(rng: random.Random) -> float:
    return rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e-45, 1e38, 3.0e9])


def _weird_int(rng: random.Random, n: int) -> int:
    return rng.choice([-2, -1, 0, n, n + 1, 2**31 - 1, -(2**31), rng.randrange(-5, n + 5)])


def _structured(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    import numpy as np

    schema = _schema()
    m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    sg = m.subgraphs[0]
    nt = len(sg.tensors)
    t = rng.choice(sg.tensors)
    op = rng.choice(sg.operators)
    kind = rng.choice(["shape", "shape_huge", "shape_empty", "scale", "scale_len", "zero_point", "zp_empty",
                       "qdim", "op_input", "op_output", "opcode", "sg_input", "sg_output", "type", "options_type",
                       "options_value", "buffer_size", "buffer_index", "version"])
    if kind == "shape" and t.shape is not None and len(t.shape):
        t.shape = np.array(t.shape, np.int32)
        t.shape[rng.randrange(len(t.shape))] = _weird_int(rng, 64)
    elif kind == "shape_huge" and t.shape is not None and len(t.shape):
        t.shape = np.array(t.shape, np.int32)
        t.shape[rng.randrange(len(t.shape))] = rng.choice([1_000_000, 2**20, 2**30, 2**31 - 1])
    elif kind == "shape_empty":
        t.shape = np.array([], np.int32)
    elif kind == "scale" and t.quantization is not None and t.quantization.scale is not None:
        q = t.quantization
        q.scale = np.array(q.scale, np.float32)
        q.scale[rng.randrange(len(q.scale))] = _weird_number(rng)
    elif kind == "scale_len" and t.quantization is not None and t.quantization.scale is not None:
        q = t.quantization
        q.scale = np.array(list(q.scale)[: rng.randrange(len(q.scale) + 1)] + [1.0] * rng.randrange(3), np.float32)
    elif kind == "zero_point" and t.quantization is not None and t.quantization.zeroPoint is not None:
        q = t.quantization
        q.zeroPoint = np.array(q.zeroPoint, np.int64)
        if len(q.zeroPoint):
            q.zeroPoint[rng.randrange(len(q.zeroPoint))] = rng.choice([-129, 128, 300, -(2**40), 2**40])
    elif kind == "zp_empty" and t.quantization is not None:
        t.quantization.zeroPoint = np.array([], np.int64)
    elif kind == "qdim" and t.quantization is not None:
        t.quantization.quantizedDimension = _weird_int(rng, 4)
    elif kind == "op_input" and op.inputs is not None and len(op.inputs):
        op.inputs = np.array(op.inputs, np.int32)
        op.inputs[rng.randrange(len(op.inputs))] = _weird_int(rng, nt)
    elif kind == "op_output" and op.outputs is not None and len(op.outputs):
        op.outputs = np.array(op.outputs, np.int32)
        op.outputs[0] = _weird_int(rng, nt)
    elif kind == "opcode":
        op.opcodeIndex = _weird_int(rng, len(m.operatorCodes))
    elif kind == "sg_input":
        sg.inputs = np.array(rng.choice([[], [_weird_int(rng, nt)], list(sg.inputs) * 2]), np.int32)
    elif kind == "sg_output":
        sg.outputs = np.array(rng.choice([[], [_weird_int(rng, nt)], list(sg.outputs) * 2]), np.int32)
    elif kind == "type":
        t.type = rng.choice([0, 1, 2, 3, 9, 10, 16, 17, 50, 255])
    elif kind == "options_type":
        op.builtinOptionsType = rng.randrange(0, 130)
    elif kind == "options_value" and op.builtinOptions is not None:
        fields = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, int | float)]
        if fields:
            setattr(op.builtinOptions, rng.choice(fields), rng.choice([0, -1, 2**31 - 1, 255, 7]))
    elif kind == "buffer_size":
        full = [b for b in m.buffers if b.data is not None and len(b.data)]
        if full:
            b = rng.choice(full)
            b.data = np.asarray(b.data, np.uint8)[: rng.randrange(len(b.data))] if rng.random() < 0.7 else \
                np.concatenate([np.asarray(b.data, np.uint8), np.zeros(rng.randrange(1, 64), np.uint8)])
    elif kind == "buffer_index":
        t.buffer = _weird_int(rng, len(m.buffers))
    elif kind == "version":
        m.operatorCodes[rng.randrange(len(m.operatorCodes))].version = rng.choice([0, -1, 99])
    try:
        return f"edit:{kind}", _pack(m)
    except Exception:  # noqa: BLE001 - a value Pack cannot write: flip bits instead
        return _bitflip(data, rng)


def _bitflip(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 16])):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return "bitflip", bytes(b)


def _word_edit(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A 32-bit word set to a boundary value: offsets, lengths and indices in the raw bytes."""
    b = bytearray(data)
    i = rng.randrange(0, len(b) - 4) // 4 * 4
    struct.pack_into("<I", b, i, rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, len(b), len(b) + 4, 0x10000]))
    return "word", bytes(b)


def mutants(models: list[bytes], n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``n`` seeded mutants of ``models``: (kind, bytes)."""
    rng = random.Random(seed)
    for _ in range(n):
        data = rng.choice(models)
        r = rng.random()
        if r < 0.45:
            yield _structured(data, rng)
        elif r < 0.7:
            yield _bitflip(data, rng)
        elif r < 0.8:
            yield _word_edit(data, rng)
        elif r < 0.92:
            yield "truncate", data[: rng.randrange(len(data))]
        else:
            size = rng.choice([0, 3, 8, 64, 4096])
            raw = bytes(rng.randrange(256) for _ in range(size))
            yield "random", (raw[:4] + b"TFL3" + raw[8:]) if size >= 8 and rng.random() < 0.5 else raw


# ---------------------------------------------------------------------------- running


def run_cli(argv: list[str], timeout: float) -> dict:
    """``effkeras.cli.main(argv)`` in a forked child: exit code or signal, output, seconds."""
    out_fd, out_path = tempfile.mkstemp(prefix="fuzz_out_")
    err_fd, err_path = tempfile.mkstemp(prefix="fuzz_err_")
    t0 = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            # the CLI prints to sys.stdout/sys.stderr, which a test runner may have replaced
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            import traceback

            from effkeras.cli import main

            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - what a user would see as a traceback
                traceback.print_exc()
                code = 1
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(int(code) & 0xFF)
    os.close(out_fd)
    os.close(err_fd)
    hung = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            hung, status = True, 0
            break
        select.select([], [], [], 0.02)
    with open(out_path, errors="replace") as f:
        out = f.read()
    with open(err_path, errors="replace") as f:
        err = f.read()
    os.unlink(out_path)
    os.unlink(err_path)
    res = {"seconds": round(time.monotonic() - t0, 3), "stdout": out, "stderr": err, "hung": hung}
    if not hung and os.WIFSIGNALED(status):
        res["signal"] = signal.Signals(os.WTERMSIG(status)).name
    elif not hung:
        res["code"] = os.WEXITSTATUS(status)
    return res


def verdict(res: dict, wants_json: bool) -> str | None:
    """Why a command's run fails the fuzz test, or None when it passes."""
    if res["hung"]:
        return "hang"
    if "signal" in res:
        return f"signal {res['signal']}"
    if res["code"] not in (0, 2):
        return f"exit {res['code']}"
    if "Traceback (most recent call last)" in res["stderr"] + res["stdout"]:
        return "traceback"
    last = (res["stderr"].strip().splitlines() or [""])[-1]
    if res["code"] == 2 and not last.startswith("effkeras: error:"):
        return "exit 2 without an 'effkeras: error:' line"
    if wants_json and res["code"] == 0:
        try:
            json.loads(res["stdout"])
        except json.JSONDecodeError:
            return "invalid JSON on stdout"
    return None


def commands(path: str, out_dir: str) -> list[tuple[str, list[str], bool]]:
    return [
        ("profile", ["profile", path, "--json"], True),
        ("sketch", ["sketch", path, "--out", os.path.join(out_dir, "sketch"), "--force"], False),
        ("bench:tflm", ["bench", path, "--target", "tflm", "--runs", "2", "--json"], True),
        ("bench:litert", ["bench", path, "--target", "litert", "--runs", "2", "--json"], True),
    ]


def fuzz(n: int, seed: int, timeout: float, deep_every: int = 1, log=print, bench_every: int = 1,
         checkpoint=None) -> dict:
    """Run ``n`` mutants; returns the counts and every failure (kind, command, why, sha256).

    ``checkpoint(summary)`` is called every 250 mutants with the summary so far
    (``mutants_done`` < ``mutants``), so a long run that is stopped still leaves its figures."""
    import hashlib

    import effkeras.bench.cli  # noqa: F401 - imported once here, so each forked command starts warm
    import effkeras.cli  # noqa: F401
    import effkeras.deploy  # noqa: F401
    import effkeras.profiling  # noqa: F401
    import effkeras.runtime.litert as litert
    import effkeras.runtime.tflm as tflm

    litert.load_interpreter_class()
    tflm._runtime()
    effkeras.cli.build_parser()  # imports each command's lazily imported module here, once
    models = [open(os.path.join(ROOT, p), "rb").read() for p in BASE_MODELS]
    counts: Counter = Counter()
    codes: Counter = Counter()
    failures = []
    slowest = 0.0
    accepted = 0
    t0 = time.monotonic()

    def summary(done: int) -> dict:
        return {"mutants": n, "mutants_done": done, "seed": seed, "timeout_s": timeout, "deep_every": deep_every,
                "bench_every": bench_every, "kinds": dict(counts), "exit_codes": dict(codes), "failures": failures,
                "seconds": round(time.monotonic() - t0, 1), "slowest_command_s": slowest}

    with tempfile.TemporaryDirectory(prefix="effkeras_fuzz_") as tmp:
        path = os.path.join(tmp, "m.tflite")
        for k, (kind, data) in enumerate(mutants(models, n, seed)):
            with open(path, "wb") as f:
                f.write(data)
            counts[kind] += 1
            first = run_cli(["inspect", path, "--json"], timeout)
            runs = [("inspect", first, True)]
            if first.get("code") == 0 and k % deep_every == 0:
                accepted += 1
                runs += [(name, run_cli(argv, timeout), js) for name, argv, js in commands(path, tmp)
                         if not name.startswith("bench") or accepted % bench_every == 0]
            for name, res, js in runs:
                slowest = max(slowest, res["seconds"])
                codes[f"{name}:{res.get('code', res.get('signal', 'hang'))}"] += 1
                why = verdict(res, js)
                if why:
                    failures.append({"mutant": k, "kind": kind, "command": name, "why": why,
                                     "sha256": hashlib.sha256(data).hexdigest(),
                                     "stderr": res["stderr"].strip()[-600:]})
                    log(f"[{k}] {kind} {name}: {why}: {res['stderr'].strip()[-300:]}")
            if k and k % 250 == 0:
                log(f"{k} mutants, {len(failures)} failures, {time.monotonic() - t0:.0f} s")
                if checkpoint is not None:
                    checkpoint(summary(k))
    return summary(n)


def markdown(summary: dict) -> str:
    fails = Counter(f["why"].split(":")[0] for f in summary["failures"])
    runs = sum(summary["exit_codes"].values())
    by_cmd = Counter()
    for key, v in summary["exit_codes"].items():
        by_cmd[key.rsplit(":", 1)[0]] += v
    lines = [f"## {TITLE}", "",
             (f"**Stopped after {summary['mutants_done']:,} of {summary['mutants']:,} mutants** (the figures below "
              "are of those). " if summary["mutants_done"] < summary["mutants"] else "")
             + f"{summary['mutants_done']:,} mutants (seed {summary['seed']}), {runs:,} command runs in "
             f"{summary['seconds']:,.0f} s; time limit {summary['timeout_s']:g} s a command; slowest "
             f"{summary['slowest_command_s']:.1f} s. profile and sketch ran on every mutant that inspect accepted, "
             f"the two bench commands on every {summary['bench_every']}th of them.", "",
             "| command | runs | exit 0 | exit 2 | signal deaths | hangs | failures |", "|---|---:|---:|---:|---:|---:|---:|"]
    for cmd in ("inspect", "profile", "sketch", "bench:tflm", "bench:litert"):
        ec = {k.rsplit(":", 1)[1]: v for k, v in summary["exit_codes"].items() if k.rsplit(":", 1)[0] == cmd}
        sig = sum(v for c, v in ec.items() if c.startswith("SIG"))
        nfail = sum(1 for f in summary["failures"] if f["command"] == cmd)
        lines.append(f"| {cmd} | {by_cmd[cmd]:,} | {ec.get('0', 0):,} | {ec.get('2', 0):,} | {sig} | "
                     f"{ec.get('hang', 0)} | {nfail} |")
    lines += ["", "| mutation | mutants |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in sorted(summary["kinds"].items())]
    lines += ["", "Failures by kind: " + (", ".join(f"{k} {v}" for k, v in fails.items()) or "none") + "."]
    return "\n".join(lines)


def headline(summary: dict) -> list[dict]:
    import results

    kinds = Counter(f["why"].split(" ")[0] for f in summary["failures"])
    runs = sum(summary["exit_codes"].values())
    return [results.headline_row(
        "hostile files: fuzzed inspect, profile, sketch, bench",
        f"{summary['mutants_done']:,} mutants, {runs:,} command runs: {kinds.get('signal', 0)} signal deaths, "
        f"{kinds.get('hang', 0)} hangs, {kinds.get('traceback', 0)} tracebacks, {len(summary['failures'])} "
        "failures in all", "0 signal deaths, 0 hangs, 0 tracebacks, every exit 0 or 2",
        "no" if summary["failures"] else ("yes" if summary["mutants_done"] >= 10_000 else "partly"))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mutants", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a command may take")
    p.add_argument("--deep-every", type=int, default=1,
                   help="run profile/sketch/bench on every Nth mutant that inspect accepts")
    p.add_argument("--bench-every", type=int, default=1,
                   help="run the two bench commands on every Nth mutant that inspect accepts (each starts a "
                        "timing child process, the slowest step)")
    p.add_argument("--results", help="write the results file here (benchmarks/results/fuzz.json)")
    args = p.parse_args(argv)
    if min(args.mutants, args.deep_every, args.bench_every) < 1:
        p.error("--mutants, --deep-every and --bench-every must be at least 1. Received: "
                f"{args.mutants}, {args.deep_every}, {args.bench_every}")
    os.environ.setdefault("EFFKERAS_CHILD_TIMEOUT", str(max(5.0, args.timeout / 3)))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import results

    command = "benchmarks/fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def save(summary: dict) -> None:
        if args.results:
            results.save(args.results, results.build("fuzz", title=TITLE, markdown=markdown(summary),
                                                     headline=headline(summary), script_command=command,
                                                     raw=summary))

    summary = fuzz(args.mutants, args.seed, args.timeout, args.deep_every, bench_every=args.bench_every,
                   checkpoint=save)
    print(markdown(summary))
    save(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
