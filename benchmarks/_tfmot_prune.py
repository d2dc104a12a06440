"""Child process of benchmarks/prune.py: the same pruning runs with tensorflow-model-optimization.

tfmot works only with Keras 2 (``tf_keras``), chosen before TensorFlow is imported, so it
runs in its own process (``TF_USE_LEGACY_KERAS=1``). The parent passes data, trained float
weights and settings in a temporary .npz; this process rebuilds the same architecture in
tf_keras (benchmarks/_prune_common.py), then:

1. times float and pruned training steps, interleaved, in this process;
2. fine-tunes the float model the same number of epochs (the control);
3. for each configuration of _prune_common.CONFIGS: wraps the prunable layers with
   ``tfmot.sparsity.keras.prune_low_magnitude`` (2:4: ``sparsity_m_by_n=(2, 4)``, layers
   whose input channels are not a multiple of 4 left dense, as effkeras does), fine-tunes
   with ``UpdatePruningStep``, strips, and records test accuracy and kernel sparsity.

    TF_USE_LEGACY_KERAS=1 python benchmarks/_tfmot_prune.py IN.npz OUT.json
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    npz_path, out_path = argv
    import numpy as np
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _prune_common import (
        CONFIGS,
        TIMED,
        build,
        interleaved_step_ms,
        kernel_sparsity,
        make_schedule,
        schedule_args,
    )

    data = np.load(npz_path)
    s = json.loads(str(data["settings"]))
    x, y, xt, yt = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    weights = [data[f"w{i}"] for i in range(int(data["n_weights"]))]
    sp = tfmot.sparsity.keras
    batch, epochs = s["batch_size"], s["finetune_epochs"]
    steps = epochs * (-(-len(x) // batch))

    def float_model():
        tf_keras.utils.set_random_seed(s["seed"])
        model = build(tf_keras, s["arch"], x.shape[1:])
        model.set_weights(weights)
        return model

    def compile_(model):
        model.compile(tf_keras.optimizers.Adam(s["finetune_lr"]),
                      tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])  # fmt: skip
        return model

    def pruned_model(structure, sparsity):
        schedule = make_schedule(sp, schedule_args(structure, sparsity, steps, s["frequency"]))
        base = float_model()

        def wrap(layer):
            if not isinstance(layer, tf_keras.layers.Conv2D | tf_keras.layers.Dense):
                return layer
            if structure == "2:4":
                if layer.kernel.shape[-2] % 4:
                    return layer  # as effkeras: 2:4 needs input channels in fours
                return sp.prune_low_magnitude(layer, pruning_schedule=schedule,
                                              sparsity_m_by_n=(2, 4))  # fmt: skip
            return sp.prune_low_magnitude(layer, pruning_schedule=schedule)

        # clone_model wraps the original layer objects, so the trained weights stay.
        return tf_keras.models.clone_model(base, clone_function=wrap)

    out: dict = {"framework": "tfmot", "tfmot_version": tfmot.__version__, "runs": {}}
    # 1. Step time: float vs pruned, interleaved.
    structure, sparsity = next((c[1], c[2]) for c in CONFIGS if c[0] == TIMED)
    timed = interleaved_step_ms(
        tf_keras,
        {"float": (compile_(float_model()), []),
         "pruned": (compile_(pruned_model(structure, sparsity)), [sp.UpdatePruningStep()])},
        x, y, batch, s["timing_steps"], s["timing_rounds"],
    )  # fmt: skip
    out["step_ms"] = timed
    # 2. Float control.
    t0 = time.perf_counter()
    control = compile_(float_model())
    control.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    acc = control.evaluate(xt, yt, batch_size=256, verbose=0)[1]
    out["runs"]["float"] = {"accuracy": float(acc), "train_s": time.perf_counter() - t0}
    # 3. Pruning runs.
    for name, structure, sparsity in CONFIGS:
        t0 = time.perf_counter()
        model = compile_(pruned_model(structure, sparsity))
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0,
                  callbacks=[sp.UpdatePruningStep()])  # fmt: skip
        stripped = sp.strip_pruning(model)
        compile_(stripped)
        acc = stripped.evaluate(xt, yt, batch_size=256, verbose=0)[1]
        out["runs"][name] = {"accuracy": float(acc), "sparsity": kernel_sparsity(stripped),
                             "train_s": time.perf_counter() - t0}  # fmt: skip
        print(f"tfmot {name}: accuracy {acc:.4f}", file=sys.stderr, flush=True)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
