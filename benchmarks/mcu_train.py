"""Train the microcontroller suite's ResNet-8 models (MLPerf Tiny image classification), any Keras backend.

Runs where the accelerator is (``KERAS_BACKEND=jax`` on a GPU machine with no TensorFlow)
or on the host (TensorFlow backend, for the smoke test). Keras + numpy (+ PIL, h5py);
the ``prune`` job also imports ``effkeras.prune``, which needs Keras alone once
``effkeras.convert.flatbuffer`` finds a flatbuffer schema module (``.whl/stub``).

The model is the MLPerf Tiny ResNet-8 (``tiny/benchmark/training/image_classification/
keras_model.py``)::

    input 32x32x3 in [-1, 1]
    Conv3x3(16) BN ReLU
    stack 16:  [Conv3x3(16) BN ReLU Conv3x3(16) BN] + identity, ReLU
    stack 32:  [Conv3x3/2(32) BN ReLU Conv3x3(32) BN] + Conv1x1/2(32), ReLU
    stack 64:  [Conv3x3/2(64) BN ReLU Conv3x3(64) BN] + Conv1x1/2(64), ReLU
    AveragePooling(8), Flatten, Dense(10), softmax

about 78k parameters and 12.5M MACs. Here every Conv followed by BN has no bias (the
reference's bias is redundant before BN; effkeras/the converter fold BN either way),
so the int8 graph is the same. Models end in logits; ``survey_models.with_softmax``
appends the softmax for export. L2 1e-4 on every kernel, He-normal init as the reference.

Jobs (one process each; ``--plan`` runs them as parallel subprocesses):

- ``full``: ResNet-8 16/32/64, cross-entropy on labels, augmentation, Adam + cosine decay.
- ``narrow:A/B/C``: the same ResNet-8 at widths A/B/C (the half-size candidate), same recipe.
- ``distill:A/B/C``: ResNet-8 at A/B/C distilled from ``full`` (``keras.distillation``).
- ``prune:S``: ``full`` channel-pruned to sparsity S with ``effkeras.prune``
  (``structure="channel"``, PolynomialDecay), then ``strip_pruning`` (filters removed);
  saves ``prune_S.model.json`` + ``prune_S.weights.h5``. ``prune:S:last`` prunes only the
  last stack's convolutions (most of the weights), through ``layer_schedules``.
- ``kd:STEM``: any saved model of this folder (``STEM.model.json`` + ``STEM.weights.h5``, e.g. a
  stripped pruned one) distilled again from ``full`` for ``--epochs`` (``effkeras.distill``, KL);
  saves ``STEM_kdN`` beside it, with the source's record under ``"source"`` (``STEM_kdN_sK``
  for ``--seed K``: a repeated run beside the first).

``distill`` and ``kd`` jobs learn from ``full`` (``<out>/full.weights.h5``) unless
``--teacher-width W --teacher-weights PATH`` names another teacher: the survey CNN at width W
(``survey_models.survey_cnn``, ``--teacher-order``, e.g. the survey suite's distilled width-1.0
model, 3 points above the full ResNet-8), and with ``--teacher-ensemble`` the mean of that
CNN's and the full ResNet-8's logits. Their outputs carry ``_wTAG`` (TAG: W without the dot)
or ``_wTAGfull`` (e.g. ``STEM_kd12_w10full``), so the teachers' students sit side by side.

Every job writes ``<out>/<job>.json`` (epochs run, seconds, float test accuracy) and its
weights. A time budget (``--deadline``) stops training early; the JSON records the epochs
that really ran.

    KERAS_BACKEND=jax python benchmarks/mcu_train.py --data .data --out /tmp/mcu \\
        --plan all --epochs 40 --deadline-in 450
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import survey_models as sm  # noqa: E402
from _usage import BadInput, run_main  # noqa: E402
from survey_models import load_saved  # noqa: E402
from survey_train import (  # noqa: E402
    accuracy,
    cache_path,
    check_teacher_weights,
    fit_epochs,
    job_name,
    load_teacher,
    make_distiller,
    parse_run_args,
    wait_all,
)

BATCH = 128
FULL_WIDTHS = (16, 32, 64)
HALF_WIDTHS = (12, 22, 42)
L2 = 1e-4


def parse_widths(text: str) -> tuple[int, int, int]:
    w = tuple(int(v) for v in str(text).replace(",", "/").split("/"))
    if len(w) != 3:
        raise ValueError(f"three widths A/B/C expected. Received: {text!r}")
    return w  # type: ignore[return-value]


def resnet8(widths=FULL_WIDTHS, l2: float = L2, name: str | None = None):
    """The MLPerf Tiny ResNet-8 at ``widths`` (stem = first stack), ending in logits."""
    import keras
    from keras import layers

    reg = keras.regularizers.L2(l2) if l2 else None
    kw = dict(padding="same", kernel_initializer="he_normal", kernel_regularizer=reg)

    def cbr(x, f, k=3, s=1, relu=True):
        x = layers.Conv2D(f, k, strides=s, use_bias=False, **kw)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    inp = keras.Input((32, 32, 3), name="image")
    x = cbr(inp, widths[0])
    for i, f in enumerate(widths):
        s = 1 if i == 0 else 2
        y = cbr(x, f, s=s)
        y = cbr(y, f, relu=False)
        if i > 0:  # 1x1 projection shortcut where the shape changes (bias, no BN, as MLPerf)
            x = layers.Conv2D(f, 1, strides=s, **kw)(x)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.AveragePooling2D(int(x.shape[1]))(x)
    x = layers.Flatten()(x)
    out = layers.Dense(sm.NUM_CLASSES, kernel_initializer="he_normal", kernel_regularizer=reg,
                       name="logits")(x)
    return keras.Model(inp, out, name=name or "resnet8_" + "_".join(str(w) for w in widths))


# ---------------------------------------------------------------------------- data


def load_data(args):
    cp = cache_path(args.out)
    if os.path.isfile(cp):
        d = np.load(cp)
        return d["xtr"], d["ytr"], d["xte"], d["yte"]
    if args.data == "random":
        rng = np.random.default_rng(0)
        n, m = args.limit_train or 256, args.limit_test or 128
        return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, n).astype(np.int64),
                rng.integers(0, 256, (m, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, m).astype(np.int64))
    return sm.load_cifar10_uint8(args.data, args.limit_train, args.limit_test)


def decode_cache(args):
    if os.path.isfile(cache_path(args.out)):
        return
    t = time.time()
    xtr, ytr, xte, yte = load_data(args)
    np.savez(cache_path(args.out), xtr=xtr, ytr=ytr, xte=xte, yte=yte)
    print(f"data: train {xtr.shape} test {xte.shape} in {time.time() - t:.1f}s", flush=True)


# ---------------------------------------------------------------------------- training


def optimizer(lr, epochs, n):
    import keras

    steps = max(1, epochs * int(np.ceil(n / BATCH)))
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.01))


def ce_compile(model, lr, epochs, n):
    import keras

    model.compile(optimizer=optimizer(lr, epochs, n),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def save_model(model, out, stem):
    model.save_weights(os.path.join(out, f"{stem}.weights.h5"))
    with open(os.path.join(out, f"{stem}.model.json"), "w") as f:
        f.write(model.to_json())


def saved_record(out: str, stem: str) -> dict:
    """The JSON record of the job that saved ``stem`` (without its per-epoch log), or {}."""
    path = os.path.join(out, f"{stem}.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return {k: v for k, v in json.load(f).items() if k != "log"}


def teacher_model(args, info: dict):
    """The distillation teacher: ``full`` of this folder, or the survey CNN given by
    ``--teacher-width/-order/-weights``, or (``--teacher-ensemble``) the mean of both's
    logits; recorded in ``info``."""
    import keras

    def loaded(load, path: str, what: str, hint: str):
        try:
            return load()
        except (ValueError, OSError) as exc:
            raise BadInput(f"{path} does not hold the weights of {what}: {str(exc).splitlines()[0][:200]}; "
                           f"{hint}. Received: {path!r}") from None

    survey = None
    if args.teacher_width is not None:
        survey = loaded(lambda: load_teacher(args, info), args.teacher_weights,
                        f"the survey CNN at width {args.teacher_width:g} ({args.teacher_order})",
                        "check --teacher-width/--teacher-order")
        if not args.teacher_ensemble:
            return survey
    full_path = os.path.join(args.out, "full.weights.h5")
    path = full_path if survey is not None else (args.teacher_weights or full_path)
    teacher = resnet8(FULL_WIDTHS)
    loaded(lambda: teacher.load_weights(path), path, "the full ResNet-8 16/32/64",
           "give the full ResNet-8's weights (--job full)")
    if survey is None:
        info.update(teacher="resnet8_16_32_64", teacher_weights=args.teacher_weights or "full.weights.h5")
        return teacher
    inp = keras.Input((32, 32, 3), name="image")
    mean = keras.layers.Average(name="mean_logits")([teacher(inp), survey(inp)])
    info.update(teacher_ensemble=["resnet8_16_32_64 (full.weights.h5)", f"survey CNN w{args.teacher_width:g}"])
    return keras.Model(inp, mean, name="teacher_ensemble")


def teacher_tag(args) -> str:
    """The suffix of a ``kd`` job's output for a survey-CNN teacher ('' for ``full``), with
    ``full`` added for the ensemble of both."""
    if args.teacher_width is None:
        return ""
    return "_w" + str(float(args.teacher_width)).replace(".", "") + ("full" if args.teacher_ensemble else "")


def run_job(args) -> dict:
    import keras

    keras.utils.set_random_seed(args.seed)
    xtr, ytr, xte, yte = load_data(args)
    kind, _, rest = args.job.partition(":")
    name = job_name(args.job.replace("/", "_"))
    t0 = time.time()
    log: list[dict] = []
    n = len(xtr)
    info = {"job": args.job, "backend": keras.backend.backend(), "batch": BATCH,
            "train_samples": int(n), "test_samples": int(len(xte)), "seed": args.seed, "epochs_requested": args.epochs,
            "lr": args.prune_lr if kind == "prune" else args.lr}
    if kind in ("full", "narrow"):
        widths = FULL_WIDTHS if kind == "full" else parse_widths(rest)
        model = resnet8(widths)
        ce_compile(model, args.lr, args.epochs, n)
        info["epochs"] = fit_epochs(model, xtr, ytr, args.epochs, args.deadline, args.seed, log=log)
        info.update(widths=list(widths), params=int(model.count_params()))
    elif kind == "distill":
        widths = parse_widths(rest)
        teacher = teacher_model(args, info)
        name += teacher_tag(args)
        model = resnet8(widths)
        distiller = make_distiller(teacher, model, args, info)
        distiller.compile(optimizer=optimizer(args.lr, args.epochs, n),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        info["epochs"] = fit_epochs(distiller, xtr, ytr, args.epochs, args.deadline, args.seed, log=log)
        info.update(widths=list(widths), params=int(model.count_params()),
                    teacher_float_accuracy=accuracy(teacher, xte, yte))
    elif kind == "prune":
        import effkeras.prune as ep

        sparsity_text, _, scope = rest.partition(":")
        sparsity = float(sparsity_text)
        model = resnet8(FULL_WIDTHS)
        model.load_weights(os.path.join(args.out, "full.weights.h5"))
        info["source_float_accuracy"] = accuracy(model, xte, yte)
        steps = int(np.ceil(n / BATCH))
        end = max(1, steps * max(1, args.prune_epochs - 2))
        schedule = ep.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end)
        per_layer = None
        if scope == "last":  # only the last stack (most of the weights), through layer_schedules
            convs = [la for la in model.layers if la.__class__.__name__ == "Conv2D"]
            per_layer = {c.name: (schedule if c.filters == FULL_WIDTHS[-1] else None) for c in convs}
        elif scope:
            raise BadInput(f"prune scope must be empty or 'last'. Received: {scope!r}")
        pruned = ep.prune_low_magnitude(model, pruning_schedule=schedule, structure="channel",
                                        layer_schedules=per_layer)
        ce_compile(pruned, args.prune_lr, args.prune_epochs, n)
        info["epochs"] = fit_epochs(pruned, xtr, ytr, args.prune_epochs, args.deadline, args.seed + 1,
                                    callbacks=[ep.UpdatePruningStep()], log=log)
        info["pruned_masked_accuracy"] = accuracy(pruned, xte, yte)
        model = ep.strip_pruning(pruned)
        info.update(sparsity=sparsity, scope=scope or "all", params=int(model.count_params()))
    elif kind == "kd":
        model = load_saved(args.out, rest)
        info["source"] = saved_record(args.out, rest)
        info["source_float_accuracy"] = accuracy(model, xte, yte)
        teacher = teacher_model(args, info)
        distiller = make_distiller(teacher, model, args, info)
        distiller.compile(optimizer=optimizer(args.lr, args.epochs, n),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        info["epochs"] = fit_epochs(distiller, xtr, ytr, args.epochs, args.deadline, args.seed + 3, log=log)
        info.update(params=int(model.count_params()), teacher_float_accuracy=accuracy(teacher, xte, yte))
        # a repeat with another --seed sits beside the seed-0 run instead of replacing it
        name = f"{job_name(rest)}_kd{info['epochs']}{teacher_tag(args)}" + (f"_s{args.seed}" if args.seed else "")
    else:
        raise BadInput(f"unknown job {args.job!r}")
    save_model(model, args.out, name)
    info["float_test_accuracy"] = accuracy(model, xte, yte)
    info["seconds"] = round(time.time() - t0, 1)
    info["log"] = log
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"[{args.job}] done: {json.dumps({k: v for k, v in info.items() if k != 'log'})}", flush=True)
    return info


# ---------------------------------------------------------------------------- plans


def spawn(args, job, deadline):
    cmd = [sys.executable, os.path.abspath(__file__), "--job", job, "--data", args.data,
           "--out", args.out, "--epochs", str(args.epochs), "--seed", str(args.seed),
           "--prune-epochs", str(args.prune_epochs), "--lr", str(args.lr),
           "--prune-lr", str(args.prune_lr), "--temperature", str(args.temperature),
           "--student-loss-weight", str(args.student_loss_weight)]
    if args.teacher_width is not None:
        cmd += ["--teacher-width", str(args.teacher_width), "--teacher-order", args.teacher_order]
    if args.teacher_weights:
        cmd += ["--teacher-weights", args.teacher_weights]
    if args.teacher_ensemble:
        cmd += ["--teacher-ensemble"]
    if deadline is not None:
        cmd += ["--deadline", str(deadline)]
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    logf = open(os.path.join(args.out, f"{job_name(job.replace('/', '_'))}.log"), "w")
    print(f"start {job}", flush=True)
    return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)


def run_plan(args) -> int:
    """``all``: phase 1 ``full`` and ``narrow`` in parallel; phase 2 ``distill`` and every
    ``prune:S`` (both start from ``full``) in parallel."""
    os.makedirs(args.out, exist_ok=True)
    decode_cache(args)
    half = args.half_widths
    t0 = time.time()
    end = args.deadline
    mid = None if end is None else time.time() + (end - time.time()) * args.phase1_share
    rc = wait_all([("full", spawn(args, "full", mid)), (f"narrow:{half}", spawn(args, f"narrow:{half}", mid))])
    jobs = [f"distill:{half}"] + [f"prune:{s}" for s in args.sparsities.split(",") if s]
    rc |= wait_all([(j, spawn(args, j, end)) for j in jobs])
    print(f"plan done in {time.time() - t0:.0f}s rc={rc}", flush=True)
    return rc


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with the CIFAR-10 JPEG tarballs, or 'random'")
    p.add_argument("--out", required=True)
    p.add_argument("--job", help="full | narrow:A/B/C | distill:A/B/C | prune:S[:last] | kd:STEM")
    p.add_argument("--plan", choices=("all",))
    p.add_argument("--half-widths", default="/".join(str(w) for w in HALF_WIDTHS))
    p.add_argument("--sparsities", default="0.3")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--prune-epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--prune-lr", type=float, default=5e-4)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--student-loss-weight", type=float, default=0.5)
    p.add_argument("--phase1-share", type=float, default=0.55)
    p.add_argument("--teacher-width", type=float,
                   help="distill/kd jobs: a survey CNN of this width as teacher (default: the full ResNet-8)")
    p.add_argument("--teacher-order", choices=("relu_bn", "bn_relu"), default="bn_relu",
                   help="layer order of the survey-CNN teacher (bn_relu: the survey suite's distilled models)")
    p.add_argument("--teacher-weights", help="distill/kd jobs: the teacher's .weights.h5 "
                   "(default <out>/full.weights.h5; required with --teacher-width)")
    p.add_argument("--teacher-ensemble", action="store_true",
                   help="with --teacher-width: teach with the mean of the survey CNN's and the full ResNet-8's logits")
    args = parse_run_args(p, argv)
    if args.teacher_ensemble and args.teacher_width is None:
        p.error("--teacher-ensemble averages the survey CNN (--teacher-width, --teacher-weights) with the full "
                "ResNet-8; give --teacher-width. Received: --teacher-ensemble alone")
    check_teacher_weights(p, args)
    if args.teacher_width is not None and not args.teacher_weights:
        p.error(f"--teacher-width needs --teacher-weights (the survey CNN's trained weights). "
                f"Received: --teacher-width {args.teacher_width:g}")
    if args.teacher_width is not None and args.teacher_width <= 0:
        p.error(f"--teacher-width must be positive. Received: {args.teacher_width:g}")
    kind = (args.job or "").partition(":")[0]
    full = os.path.join(args.out, "full.weights.h5")
    if kind in ("distill", "kd") and (args.teacher_ensemble or not args.teacher_weights) and not os.path.isfile(full):
        p.error(f"{args.job}: the teacher {full} does not exist; run --job full first or give "
                f"--teacher-weights. Received: --out {args.out!r}")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.plan:
        return run_plan(args)
    run_job(args)
    return 0


if __name__ == "__main__":
    run_main(main)
