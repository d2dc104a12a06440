"""Train the survey suite's float models (and optionally prune + QAT them), any Keras backend.

Runs where the accelerator is (``KERAS_BACKEND=jax`` on a GPU machine with no TensorFlow)
or on the host (TensorFlow backend, for the smoke test). Keras + numpy (+ PIL, h5py) only;
the ``optimize`` job also imports ``effkeras.quantize`` / ``effkeras.prune``, which need
Keras alone once ``effkeras.convert.flatbuffer`` finds a flatbuffer schema module.

Jobs (one process each; ``--plan`` runs a whole plan as parallel subprocesses):

- ``teacher``: the survey CNN at width 1.4 (BN after ReLU), augmentation, CE loss.
- ``survey:W``: the survey recipe at width W: same architecture, augmentation, CE loss.
- ``distill:W``: effkeras's float stage: Conv->BN->ReLU at width W, augmentation and
  logits distillation from the teacher (``keras.distillation.Distiller``).
- ``optimize:W[:S[:SOURCE[:SCOPE]]]``: effkeras's compression stage on ``distill:W``:
  channel pruning to sparsity S (``effkeras.prune``, PolynomialDecay, ``strip_pruning``
  removes the channels; SCOPE ``all``: every conv and the hidden Dense, ``head``: only the
  last conv and the hidden Dense, which hold most of the weights, ``per-S1-...-S7``: one
  sparsity per conv and for the hidden Dense, in order, through ``layer_schedules``; S is
  then only a label), then QAT with batch-norm folding (``effkeras.quantize.quantize_model``,
  ``FreezeBatchNorm``/``FreezeQuantRanges``). Saves the QAT model as ``.keras``.

Every job writes ``<out>/<job>.json`` (epochs run, seconds, float test accuracy) and its
weights; a time budget (``--deadline``, absolute UNIX time) stops training early, and the
JSON records how many epochs really ran.

    KERAS_BACKEND=jax python benchmarks/survey_train.py --data .data --out /tmp/survey \\
        --plan float --epochs 30 --deadline-in 480
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

BATCH = 128


def job_name(job: str) -> str:
    return job.replace(":", "_").replace(".", "")


# ---------------------------------------------------------------------------- data


def cache_path(out: str) -> str:
    return os.path.join(out, "cifar10_u8.npz")


def load_data(args):
    """uint8 arrays from the cache written by the plan, else from the tarballs / random."""
    cp = cache_path(args.out)
    if os.path.isfile(cp):
        d = np.load(cp)
        return d["xtr"], d["ytr"], d["xte"], d["yte"]
    if args.data == "random":
        rng = np.random.default_rng(0)
        n, m = args.limit_train or 256, args.limit_test or 128
        return (
            rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int64),
            rng.integers(0, 256, (m, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, m).astype(np.int64),
        )
    return sm.load_cifar10_uint8(args.data, args.limit_train, args.limit_test)


class AugmentedBatches:
    """Per-epoch numpy augmentation; yields the whole augmented, scaled training set."""

    def __init__(self, x, seed):
        self.x = x
        self.rng = np.random.default_rng(seed)

    def epoch(self):
        return sm.scale(sm.augment(self.x, self.rng))


class Deadline:
    """Stop between epochs when the next epoch would end past ``deadline``."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.t0 = time.time()
        self.epoch_times: list[float] = []

    def more(self) -> bool:
        if self.deadline is None:
            return True
        last = self.epoch_times[-1] if self.epoch_times else 0.0
        return time.time() + 1.1 * last < self.deadline


def fit_epochs(model, xtr, ytr, epochs, deadline, seed, callbacks=(), log=None):
    """fit() one epoch at a time on freshly augmented data; returns epochs run."""
    aug = AugmentedBatches(xtr, seed)
    dl = Deadline(deadline)
    done = 0
    for e in range(epochs):
        if not dl.more():
            break
        t = time.time()
        h = model.fit(
            aug.epoch(),
            ytr,
            batch_size=BATCH,
            epochs=e + 1,
            initial_epoch=e,
            verbose=0,
            shuffle=True,
            callbacks=list(callbacks),
        )
        dl.epoch_times.append(time.time() - t)
        done = e + 1
        if log is not None:
            log.append({k: float(v[-1]) for k, v in h.history.items()} | {"s": dl.epoch_times[-1]})
        print(f"[{model.name}] epoch {done}/{epochs} {dl.epoch_times[-1]:.1f}s "
              + " ".join(f"{k}={v[-1]:.4f}" for k, v in h.history.items()), flush=True)
    return done


def accuracy(model, x_u8, y) -> float:
    logits = model.predict(sm.scale(x_u8), batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y))


# ---------------------------------------------------------------------------- jobs


def ce_compile(model, lr=1e-3):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def run_job(args) -> dict:
    import keras

    keras.utils.set_random_seed(args.seed)
    xtr, ytr, xte, yte = load_data(args)
    kind, _, rest = args.job.partition(":")
    name = job_name(args.job)
    if kind == "optimize" and args.kd_epochs:
        name += f"_kd{args.kd_epochs}"  # beside, not over, the same pruning job without KD
    t0 = time.time()
    log: list[dict] = []
    info = {"job": args.job, "backend": keras.backend.backend(), "batch": BATCH,
            "train_samples": int(len(xtr)), "test_samples": int(len(xte)),
            "epochs_requested": args.epochs}
    if kind in ("teacher", "survey", "ce"):
        width = args.teacher_width if kind == "teacher" else float(rest)
        order = "bn_relu" if kind == "ce" else "relu_bn"
        model = sm.survey_cnn(width, order=order)
        ce_compile(model, 1e-3)
        info["epochs"] = fit_epochs(model, xtr, ytr, args.epochs, args.deadline, args.seed, log=log)
        info.update(width=width, order=order, params=int(model.count_params()))
        model.save_weights(os.path.join(args.out, f"{name}.weights.h5"))
    elif kind == "distill":
        width = float(rest)
        teacher = load_teacher(args, info)
        student = sm.survey_cnn(width, order="bn_relu")
        distiller = make_distiller(teacher, student, args, info)
        lr = args.distill_lr
        if args.lr_schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(
                lr, args.epochs * int(np.ceil(len(xtr) / BATCH)), alpha=0.01)
        info.update(distill_lr=args.distill_lr, lr_schedule=args.lr_schedule)
        distiller.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        info["epochs"] = fit_epochs(distiller, xtr, ytr, args.epochs, args.deadline, args.seed, log=log)
        model = student
        info.update(width=width, order="bn_relu", params=int(model.count_params()))
        model.save_weights(os.path.join(args.out, f"{name}.weights.h5"))
    elif kind == "optimize":
        parts = rest.split(":")
        width = float(parts[0])
        sparsity = float(parts[1]) if len(parts) > 1 else args.sparsity
        source = parts[2] if len(parts) > 2 else "distill"
        scope = parts[3] if len(parts) > 3 else "all"
        model, extra = optimize(args, width, sparsity, source, xtr, ytr, xte, yte, log, scope)
        info.update(extra)
        info.update(width=width, sparsity=sparsity, source=source, scope=scope)
    else:
        raise BadInput(f"unknown job {args.job!r}")
    info["float_test_accuracy"] = accuracy(model, xte, yte)
    info["seconds"] = round(time.time() - t0, 1)
    info["log"] = log
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"[{args.job}] done: {json.dumps({k: v for k, v in info.items() if k != 'log'})}", flush=True)
    return info


def optimize_tag(width, sparsity, source="distill", scope="all", kd_epochs=0) -> str:
    """File stem of an ``optimize`` job's outputs (``scope="all"`` keeps the old names;
    ``kd_epochs``: the pruned model was then distilled that many epochs)."""
    return job_name(f"optimize:{width}:{sparsity}:{source}" + ("" if scope == "all" else f":{scope}")
                    + (f"_kd{kd_epochs}" if kd_epochs else ""))


def _prunable_names(model) -> list[str]:
    """The survey CNN's six convs and its hidden Dense, in order."""
    convs = [layer.name for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    dense = [layer.name for layer in model.layers if layer.__class__.__name__ == "Dense"]
    return [*convs, dense[0]]


def scope_schedules(model, scope: str, make_schedule) -> dict | None:
    """``layer_schedules`` for a pruning SCOPE (see the module docstring); ``make_schedule``
    maps a final sparsity to a schedule. None: every layer on the default schedule."""
    names = _prunable_names(model)
    if scope == "all":
        return None
    if scope == "head":
        return {**{n: None for n in names[:-2]}, names[-2]: make_schedule(None), names[-1]: make_schedule(None)}
    if scope.startswith("per-"):
        values = [float(v) for v in scope[4:].split("-")]
        if len(values) != len(names):
            raise BadInput(f"scope {scope!r} needs {len(names)} sparsities (6 convs, hidden Dense); got {len(values)}")
        return {n: (make_schedule(v) if v > 0 else None) for n, v in zip(names, values, strict=True)}
    raise BadInput(f"scope must be 'all', 'head' or 'per-S1-...-S7'. Received: {scope!r}")


def make_distiller(teacher, student, args, info: dict):
    """``effkeras.distill.distiller`` (a real KL: Keras's default LogitsDistillation loss is
    not one) for ``student``, first loaded from ``--init`` if given; recorded in ``info``."""
    import effkeras.distill

    if args.init:
        student.load_weights(args.init)
        info["init"] = args.init
    info.update(distill_loss="kl", temperature=args.temperature, student_loss_weight=args.student_loss_weight)
    return effkeras.distill.distiller(teacher, student, temperature=args.temperature,
                                      student_loss_weight=args.student_loss_weight)


def load_teacher(args, info: dict):
    """The distillation teacher (``--teacher-width/-order/-weights``), recorded in ``info``."""
    teacher = sm.survey_cnn(args.teacher_width, order=args.teacher_order)
    teacher.load_weights(args.teacher_weights or os.path.join(args.out, "teacher.weights.h5"))
    info.update(teacher_width=args.teacher_width, teacher_order=args.teacher_order,
                teacher_weights=args.teacher_weights or "teacher.weights.h5")
    return teacher


def student_lineage(out: str, job: str) -> dict:
    """How the float student ``job`` was trained, from its JSON: the distillation loss
    (``keras-default``: ``keras.distillation.LogitsDistillation()``'s default, which is not a
    KL divergence; ``kl``: ``effkeras.distill``), epochs and warm start."""
    path = os.path.join(out, f"{job_name(job)}.json")
    meta = {}
    if os.path.isfile(path):
        with open(path) as f:
            meta = json.load(f)
    loss = meta.get("distill_loss", "keras-default") if job.startswith("distill") else "labels"
    return {"job": job, "distill_loss": loss, "epochs": meta.get("epochs"), "init": meta.get("init"),
            "teacher_width": meta.get("teacher_width", sm.TEACHER_WIDTH if job.startswith("distill") else None),
            "float_test_accuracy": meta.get("float_test_accuracy")}


def optimize(args, width, sparsity, source, xtr, ytr, xte, yte, log, scope="all"):
    """Channel pruning then QAT with BN folding, on the float student ``source``
    (``distill``: the distilled one; ``ce``: the same Conv->BN->ReLU net trained on labels);
    ``scope="head"`` prunes only the last conv and the hidden Dense."""

    import effkeras.callbacks
    import effkeras.prune as ep

    tag = optimize_tag(width, sparsity, source, scope, args.kd_epochs)
    student = sm.survey_cnn(width, order="bn_relu")
    student.load_weights(os.path.join(args.out, f"{job_name(f'{source}:{width}')}.weights.h5"))
    extra = {"source_float_accuracy": accuracy(student, xte, yte),
             "student": student_lineage(args.out, f"{source}:{width}")}
    steps = int(np.ceil(len(xtr) / BATCH))
    p_epochs, q_epochs = args.prune_epochs, args.qat_epochs
    # each stage gets its share of the time left
    now = time.time()
    p_deadline = q_deadline = args.deadline
    if args.deadline is not None and q_epochs > 0:
        p_deadline = now + (args.deadline - now) * 0.55
    if sparsity > 0:
        end = max(1, int(steps * max(1, p_epochs - 2)))
        def make_schedule(s):
            return ep.PolynomialDecay(0.0, sparsity if s is None else s, begin_step=0, end_step=end)

        pruned = ep.prune_low_magnitude(
            student,
            pruning_schedule=make_schedule(None),
            structure="channel",
            layer_schedules=scope_schedules(student, scope, make_schedule),
        )
        ce_compile(pruned, 5e-4)
        extra["prune_epochs"] = fit_epochs(
            pruned, xtr, ytr, p_epochs, p_deadline, args.seed + 1,
            callbacks=[ep.UpdatePruningStep()], log=log)
        extra["pruned_masked_accuracy"] = accuracy(pruned, xte, yte)
        small = ep.strip_pruning(pruned)
    else:
        small = student
        extra["prune_epochs"] = 0
    if args.kd_epochs > 0:  # the pruned model learns from the teacher again (effkeras.distill, KL)
        import keras

        import effkeras.distill

        extra["pruned_before_kd_accuracy"] = accuracy(small, xte, yte)
        kd_info: dict = {}
        d = effkeras.distill.distiller(load_teacher(args, kd_info), small, temperature=args.temperature,
                                       student_loss_weight=args.student_loss_weight)
        d.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
                      args.distill_lr, args.kd_epochs * steps, alpha=0.01)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        extra["kd_epochs"] = fit_epochs(d, xtr, ytr, args.kd_epochs, p_deadline, args.seed + 3, log=log)
        extra["kd_teacher"] = kd_info
    extra["stripped_params"] = int(small.count_params())
    extra["stripped_float_accuracy"] = accuracy(small, xte, yte)
    small.save_weights(os.path.join(args.out, f"{tag}_float.weights.h5"))
    with open(os.path.join(args.out, f"{tag}_float.model.json"), "w") as f:
        f.write(small.to_json())
    if q_epochs <= 0:
        return small, extra
    from effkeras.quantize import quantize_model

    calib = sm.scale(xtr[: min(500, len(xtr))])
    qat = quantize_model(small, fold_batchnorm=True, calibration_data=calib)
    extra["ptq_sim_accuracy"] = accuracy(qat, xte, yte)
    ce_compile(qat, 1e-4)
    freeze = max(1, q_epochs - 1)
    extra["qat_epochs"] = fit_epochs(
        qat, xtr, ytr, q_epochs, q_deadline, args.seed + 2,
        callbacks=[effkeras.callbacks.FreezeBatchNorm(epoch=freeze),
                   effkeras.callbacks.FreezeQuantRanges(epoch=freeze)],
        log=log)
    qat.save(os.path.join(args.out, f"{tag}.keras"))
    return qat, extra


# ---------------------------------------------------------------------------- plans


def decode_cache(args):
    if os.path.isfile(cache_path(args.out)):
        return
    t = time.time()
    if args.data == "random":
        xtr, ytr, xte, yte = load_data(args)
    else:
        xtr, ytr, xte, yte = sm.load_cifar10_uint8(args.data, args.limit_train, args.limit_test)
    np.savez(cache_path(args.out), xtr=xtr, ytr=ytr, xte=xte, yte=yte)
    print(f"data: train {xtr.shape} test {xte.shape} decoded in {time.time() - t:.1f}s", flush=True)


def spawn(args, job, deadline):
    cmd = [sys.executable, os.path.abspath(__file__), "--job", job, "--data", args.data,
           "--out", args.out, "--epochs", str(args.epochs), "--seed", str(args.seed),
           "--prune-epochs", str(args.prune_epochs), "--qat-epochs", str(args.qat_epochs),
           "--sparsity", str(args.sparsity), "--temperature", str(args.temperature),
           "--student-loss-weight", str(args.student_loss_weight),
           "--teacher-width", str(args.teacher_width)]
    if deadline is not None:
        cmd += ["--deadline", str(deadline)]
    logf = open(os.path.join(args.out, f"{job_name(job)}.log"), "w")
    print(f"start {job}", flush=True)
    return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)


def wait_all(procs):
    rc = 0
    for job, p in procs:
        r = p.wait()
        print(f"end {job} rc={r}", flush=True)
        rc = rc or r
    return rc


def run_plan(args) -> int:
    """Plans: ``teacher_survey`` (teacher and the survey students in parallel),
    ``distill_prune`` (the distilled students, then every ``--sparsities`` pruning job),
    ``all`` (both, one after the other; the smoke test)."""
    os.makedirs(args.out, exist_ok=True)
    decode_cache(args)
    widths = [float(w) for w in args.widths.split(",")]
    sparsities = [float(s) for s in args.sparsities.split(",")]
    t0 = time.time()
    end = args.deadline
    rc = 0

    def share(frac):
        return None if end is None else time.time() + (end - time.time()) * frac

    if args.plan in ("teacher_survey", "all"):
        mid = share(0.5) if args.plan == "all" else end
        procs = [("teacher", spawn(args, "teacher", mid))]
        procs += [(f"survey:{w}", spawn(args, f"survey:{w}", mid)) for w in widths]
        rc |= wait_all(procs)
    if args.plan in ("distill_prune", "all"):
        d_end = share(args.distill_share)
        rc |= wait_all([(f"distill:{w}", spawn(args, f"distill:{w}", d_end)) for w in widths])
        jobs = [f"optimize:{w}:{s}" for w in widths for s in sparsities]
        rc |= wait_all([(j, spawn(args, j, end)) for j in jobs])
    if args.plan == "prune":
        jobs = [f"optimize:{w}:{s}:{args.source}:{args.prune_scope}" for w in widths for s in sparsities]
        rc |= wait_all([(j, spawn(args, j, end)) for j in jobs])
    if args.plan == "ce_prune":
        rc |= wait_all([(f"ce:{w}", spawn(args, f"ce:{w}", share(args.distill_share))) for w in widths])
        jobs = [f"optimize:{w}:{s}:ce" for w in widths for s in sparsities]
        rc |= wait_all([(j, spawn(args, j, end)) for j in jobs])
    print(f"plan {args.plan} done in {time.time() - t0:.0f}s rc={rc}", flush=True)
    return rc


def parse_run_args(p: argparse.ArgumentParser, argv=None):
    """Add the options every training script shares (data limits, seed, time budget),
    parse, and turn ``--deadline-in`` into ``--deadline``."""
    p.add_argument("--limit-train", type=int)
    p.add_argument("--limit-test", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="distill jobs: start the student from these weights (.weights.h5)")
    p.add_argument("--deadline", type=float, help="absolute UNIX time to stop training by")
    p.add_argument("--deadline-in", type=float, help="seconds from now to stop training by")
    args = p.parse_args(argv)
    if args.deadline_in is not None:
        args.deadline = time.time() + args.deadline_in
    if not args.job and not args.plan:
        p.error("give --job or --plan")
    return args


def check_teacher_weights(p: argparse.ArgumentParser, args) -> None:
    """A ``--teacher-weights`` file that does not exist is a usage error now, not after
    minutes of training."""
    if args.teacher_weights and not os.path.isfile(args.teacher_weights):
        p.error(f"--teacher-weights: no such file (a path from the current folder, not from --out). "
                f"Received: {args.teacher_weights!r}")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with the CIFAR-10 JPEG tarballs, or 'random'")
    p.add_argument("--out", required=True)
    p.add_argument("--job", help="teacher | survey:W | distill:W | optimize:W[:S]")
    p.add_argument("--plan", choices=("teacher_survey", "distill_prune", "prune", "ce_prune", "all"))
    p.add_argument("--source", default="distill", help="float students the prune plan starts from")
    p.add_argument("--widths", default=",".join(str(w) for w in sm.WIDTHS))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--prune-epochs", type=int, default=8)
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument("--sparsity", type=float, default=0.4)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--student-loss-weight", type=float, default=0.5)
    p.add_argument("--sparsities", default="0.4", help="channel sparsities of the pruning jobs")
    p.add_argument("--prune-scope", default="all",
                   help="what the prune plan's jobs prune: all, head, or per-S1-...-S7 (see above)")
    p.add_argument("--distill-share", type=float, default=0.6,
                   help="share of the distill_prune time budget the distillation may use")
    p.add_argument("--teacher-width", type=float, default=sm.TEACHER_WIDTH)
    p.add_argument("--distill-lr", type=float, default=1e-3)
    p.add_argument("--kd-epochs", type=int, default=0,
                   help="optimize jobs: distill the pruned, stripped model from the teacher this many epochs")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="distill jobs: Adam at a constant rate, or cosine-decayed over --epochs")
    p.add_argument("--teacher-order", choices=("relu_bn", "bn_relu"), default="relu_bn",
                   help="layer order of the teacher (bn_relu: a distilled student as teacher)")
    p.add_argument("--teacher-weights", help="distill jobs: teacher weights (default <out>/teacher.weights.h5)")
    args = parse_run_args(p, argv)
    check_teacher_weights(p, args)
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
