"""Every benchmark suite as a short declarative recipe: models, steps, measurements, seeds.

The runner (``python -m benchmarks SUITE [--quick]``) reads only this module to know what a
suite needs and how to run it; each suite's measuring code is the script named in its
recipe (``benchmarks/SCRIPT``), which uses the package as a user would. A full run writes
the suite's results file (``results``, relative to the repository root); ``--quick`` runs
the same code on a tiny budget and writes under ``build/benchmarks-quick/SUITE/`` only.

In ``args`` and ``quick_args``, ``{data}`` is the data folder (``--data-dir``,
``$EFFKERAS_DATA_DIR`` or ``../shared/data``) and ``{results}`` the results file the run
writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """One suite: what it compares, how its models are made, what it measures."""

    name: str
    title: str
    script: str
    models: tuple[str, ...]
    steps: tuple[str, ...]
    measures: str
    seeds: str
    results: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    #: folders the suite reads under the data folder (a quick run without them is skipped)
    data: tuple[str, ...] = ()
    #: what must exist before a full run (trained weights), as a sentence
    needs: str = ""
    #: tensorflow-model-optimization is run beside effkeras (the `bench` extra, tf_keras)
    tfmot: bool = False
    #: models kept beside the results file (tflite_models/SUITE/)
    keeps_models: bool = field(default=False)


# The microcontroller suite's candidates: every trained model it converts and measures. The
# names are mcu_train.py's output stems (job, sparsity, KL steps, teacher, seed), kept here so
# that the results file can name every row it scored.
MCU_QAT = (
    "full", "full_e75", "full_e75_s1", "full_e75_s2",
    "full_kd50_w10full_kd60_w10full", "full_kd50_w10full_s1_kd60_w10full_s1",
    "full_kd50_w10full_s2_kd60_w10full_s2",
    "prune_045_last_kd12_kd14+pt", "prune_045_last_kd12_kd14_kd12_w10full+pt",
    "prune_045_last_kd12_kd14_kd50_w10full+pt", "prune_045_last_kd12_kd14_kd50_w10full_kd60_w10full+pt",
    "prune_045_last_kd12_kd14_kd50_w10full_s1_kd60_w10full_s1+pt",
    "prune_045_last_kd12_kd14_kd50_w10full_s2_kd60_w10full_s2+pt",
)
MCU_PER_TENSOR = (
    "full", "prune_055_last_kd12_kd14_kd12_w10full", "prune_05_last_kd12", "prune_045_last",
    "prune_045_last_kd12", "prune_045_last_kd12_kd14", "prune_045_last_kd12_kd14_w10full",
    "prune_045_last_kd12_kd14_kd12_w10full", "full_e75", "full_e75_s1", "full_e75_s2",
    "full_kd50_w10full_kd60_w10full", "full_kd50_w10full_s1_kd60_w10full_s1",
    "full_kd50_w10full_s2_kd60_w10full_s2", "prune_045_last_kd12_kd14_kd50_w10full",
    "prune_045_last_kd12_kd14_kd50_w10full_kd60_w10full",
    "prune_045_last_kd12_kd14_kd50_w10full_s1_kd60_w10full_s1",
    "prune_045_last_kd12_kd14_kd50_w10full_s2_kd60_w10full_s2",
)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="latency",
            title="Latency: float vs int8 on every host target",
            script="latency.py",
            models=("the demo CNN on digits (8x8x1, width 8), trained 10 epochs",
                    "the same CNN at CIFAR-10 size (32x32x3, width 16), random weights"),
            steps=("effkeras.convert.to_tflite: float32 and full int8 (int8 input/output)",
                   "effkeras.bench.compare: float and int8 timed interleaved, 5 rounds, each its own child process"),
            measures="median invoke() time on LiteRT (XNNPACK, built-in, reference kernels; 1 and 2 threads), "
                     "TFLM and the nano33ble estimate; TFLM arena",
            seeds="one training run; 200 timed runs after 20 warm-up runs per model and target",
            results="benchmarks/results/latency.json",
            args=("--cifar", "--results", "{results}"),
            quick_args=("--runs", "10", "--warmup", "2", "--epochs", "1", "--results", "{results}"),
        ),
        Recipe(
            name="qat",
            title="QAT: effkeras vs PTQ vs tfmot",
            script="qat.py",
            models=("CNN and MobileNet-style net on MNIST (10k/10k) and on a CIFAR-10 subset (10k/2k)",),
            steps=("float training, 10 epochs (Adam 1e-3)",
                   "from the same weights: PTQ; effkeras QAT 3 epochs with BN folding; tfmot QAT 3 epochs"),
            measures="int8 accuracy of the converted files (LiteRT), sizes, QAT step time vs float step time",
            seeds="one seed",
            results="benchmarks/results/qat.json",
            data=("mnist",),
            tfmot=True,
            args=("--data-dir", "{data}", "--float-epochs", "10", "--qat-epochs", "3", "--results", "{results}"),
            quick_args=("--data-dir", "{data}", "--datasets", "mnist", "--mnist-train", "600", "--mnist-test", "200",
                        "--float-epochs", "1", "--qat-epochs", "1", "--timing-steps", "3", "--timing-rounds", "1",
                        "--results", "{results}"),
        ),
        Recipe(
            name="prune",
            title="Pruning: effkeras.prune vs tensorflow-model-optimization",
            script="prune.py",
            models=("a CNN on MNIST (10k/10k) and on a CIFAR-10 subset (10k/2k)",),
            steps=("float training", "from the same weights: unstructured 50/75/80/90%, 2:4 and channel 50% pruning "
                   "with effkeras and with tfmot, same epochs and schedules", "strip, int8 conversion, gzip -9"),
            measures="accuracy (Keras and int8 LiteRT), kernel sparsity, int8 and gzip sizes, step time pruned vs "
                     "float, channel-pruning MACs and latency",
            seeds="one seed",
            results="benchmarks/results/prune.json",
            data=("mnist",),
            tfmot=True,
            args=("--results", "{results}"),
            quick_args=("--datasets", "mnist", "--quick", "--results", "{results}"),
        ),
        Recipe(
            name="text",
            title="Text without embedding tables: SGNN and PRADO vs an embedding baseline (SMS spam)",
            script="text.py",
            models=("embedding baseline (10,000 x 64)", "SGNN (T=64, B=16 binary)", "PRADO (T=4, B=16 ternary)"),
            steps=("20 epochs each on the SMS spam 80/20 split (seed 0)", "int8 conversion with int8 input/output"),
            measures="int8 accuracy and spam F1 (LiteRT), size, TFLM arena, LiteRT/TFLM latency, projection time",
            seeds="one seed, one split",
            results="benchmarks/results/text.json",
            data=("sms_spam",),
            args=("--data-dir", "{data}/sms_spam", "--results", "{results}"),
            quick_args=("--data-dir", "{data}/sms_spam", "--epochs", "1", "--runs", "5", "--results", "{results}"),
        ),
        Recipe(
            name="fuzz",
            title="Hostile files: mutation fuzzing of inspect, profile, sketch and bench",
            script="fuzz.py",
            models=("mutants of the demo's int8 and float32 digits CNNs and of the half-size int8 ResNet-8",),
            steps=("seeded mutations: bit flips, 32-bit word edits, truncations, random bytes, structured edits of "
                   "shapes, scales, zero points, indices, types, options and buffers",
                   "each mutant through effkeras inspect, then profile, sketch and bench (tflm, litert) if inspect "
                   "accepts it (bench on every 5th of those), each command forked with a time limit"),
            measures="signal deaths, hangs, tracebacks, exit codes other than 0 and 2, invalid JSON with --json",
            seeds="mutation seed 0",
            results="benchmarks/results/fuzz.json",
            args=("--mutants", "10000", "--bench-every", "5", "--results", "{results}"),
            quick_args=("--mutants", "40", "--results", "{results}"),
        ),
        Recipe(
            name="survey",
            title="Survey suite: CIFAR-10 width-multiplier CNN, survey recipe vs effkeras",
            script="survey.py",
            models=("the survey's CNN at widths 0.05, 0.25, 0.5, 1.0 (its recipe: ReLU->BN, augmentation, PTQ)",
                    "effkeras at the same widths: distilled, channel-pruned, QAT with BN folding"),
            steps=("training (survey_train.py; GPU for the 40-epoch jobs): teacher, survey models, students, "
                   "pruning, KL distillation",
                   "this script: convert, QAT 1 epoch (3 runs), evaluate on the 10,000 JPEG test images"),
            measures="int8 accuracy (LiteRT), float and int8 size, TFLM arena, nano33ble estimate, tfmot QAT beside",
            seeds="QAT: median of 3 runs; training: one run per model",
            results="tflite_models/survey/results.json",
            needs="the trained weights in build/survey/weights (benchmarks/survey_train.py, see its docstring)",
            tfmot=True,
            keeps_models=True,
            args=("--weights", "build/survey/weights", "--data", "{data}", "--qat-epochs", "1",
                  "--qat-samples", "10000", "--qat-repeats", "3", "--models", "tflite_models/survey",
                  "--results", "{results}"),
            quick_args=("--smoke", "--results", "{results}"),
        ),
        Recipe(
            name="mcu",
            title="Microcontroller suite: MLPerf Tiny ResNet-8 on CIFAR-10, full vs half size",
            script="mcu.py",
            models=("ResNet-8 16/32/64 (MLPerf Tiny's shape) on labels, 35 and 75 epochs, and KL-distilled",
                    "half-size candidates: 12/22/42 ResNet-8, channel-pruned ResNet-8s (whole net or last stack), "
                    "KL-distilled from the full one or from an ensemble teacher"),
            steps=("training (mcu_train.py; GPU for the long jobs): --job full | narrow | prune | kd:STEM",
                   "this script: int8 conversion (per channel and per tensor), QAT 1 epoch (3 runs) on the "
                   f"{len(MCU_QAT)} QAT candidates, tfmot QAT beside, evaluation on 10,000 JPEG test images"),
            measures="int8 accuracy (LiteRT), int8 size against 49,248 B (half the MLPerf file), TFLM arena, "
                     "nano33ble estimate; the half-size model against the best full-size one",
            seeds="QAT: median of 3 runs; the long-trained chains: 3 training seeds",
            results="tflite_models/mcu/results.json",
            needs="the trained weights in build/mcu/weights (benchmarks/mcu_train.py, see its docstring)",
            tfmot=True,
            keeps_models=True,
            args=("--weights", "build/mcu/weights", "--data", "{data}", "--qat-epochs", "1", "--qat-samples", "10000",
                  "--qat-repeats", "3", "--qat-stems", ",".join(MCU_QAT), "--per-tensor", ",".join(MCU_PER_TENSOR),
                  "--models", "tflite_models/mcu", "--results", "{results}"),
            quick_args=("--smoke", "--results", "{results}"),
        ),
        Recipe(
            name="mlperf",
            title="MLPerf Tiny on the emulated Cortex-M4: instructions, MACs a cycle, estimate vs published",
            script="mlperf_tiny.py",
            models=("the four MLPerf Tiny v0.5 models rebuilt from their published definitions "
                    "(benchmarks/mlperf_models.py): DS-CNN KWS, MobileNetV1-0.25 VWW, ResNet-8 IC, FC autoencoder AD; "
                    "int8, random weights",),
            steps=("effkeras sketch for the emulated board, built with arm-none-eabi-g++ against Arduino_TensorFlowLite "
                   "with its CMSIS-NN kernels and with TFLM's reference kernels (benchmarks/mlperf_firmware)",
                   "each build run in qemu-system-arm mps2-an386 -icount shift=0 with our TCG plugin "
                   "(benchmarks/mlperf_firmware/m4_cycles_plugin.c) counting Cortex-M4 timing events, then a per-op "
                   "profiled build",
                   "the events priced with the Cortex-M4 TRM timings and the STM32L4R5's flash at 120 MHz "
                   "(effkeras.bench.estimate.event_cycles); refit of the estimate's cycles and instructions per op "
                   "class; comparison with the published latencies"),
            measures="instructions and modelled cycles per inference and per op (median), CPI, MACs per cycle, the "
                     "estimate at 120 MHz against MLPerf Tiny's TFLM v0.5 reference and X-CUBE-AI v1.2 latencies",
            seeds="weights seed 0; medians of 5 timed and 3 profiled runs, which repeat between runs within a timer tick "
                  "(1,000 instructions an inference, 40 an op)",
            results="benchmarks/results/mlperf.json",
            args=("--results", "{results}"),
            quick_args=("--quick", "--results", "{results}"),
        ),
        Recipe(
            name="architectures",
            title="Architectures: keras.applications families on CIFAR-10, float vs PTQ vs effkeras QAT vs tfmot QAT",
            script="architectures.py",
            models=("every keras.applications family of issue 20 at its smallest width (MobileNet 0.25, MobileNetV2 "
                    "0.35, MobileNetV3Small/Large 0.75 and minimalistic, EfficientNetB0-B2, EfficientNetV2B0-B2, "
                    "ResNet50, ResNet50V2, DenseNet121, NASNetMobile), weights=None, 10 classes, 32x32",),
            steps=("float training from scratch on a class-balanced CIFAR-10 subset (flips; Adam 1e-3; BN momentum "
                   "0.9), each family in its own child process",
                   "from the same float weights: PTQ (256 calibration images); effkeras QAT with BN folding; tfmot "
                   "QAT (tf_keras child, the same application and weights, loaded layer by layer)",
                   "int8 conversion; the files timed side by side (LiteRT XNNPACK, 1 thread, interleaved rounds)"),
            measures="int8 accuracy (LiteRT builtin) on the CIFAR-10 JPEG test subset, .tflite sizes (int8 / float), "
                     "float operators left in each int8 file, LiteRT latency; tfmot's refusals as raised",
            seeds="seed 0, one run a family",
            results="benchmarks/results/architectures.json",
            data=("cifar10_jpg",),
            tfmot=True,
            args=("--data", "{data}", "--results", "{results}"),
            quick_args=("--quick", "--data", "{data}", "--results", "{results}"),
        ),
        Recipe(
            name="below_int8",
            title="Below int8: the full ResNet-8 by post-training int4, mixed precision and clustering",
            script="below_int8.py",
            models=("tflite_models/mcu/resnet8_full_int8.tflite (the trained full ResNet-8, int8, 92,336 B)",),
            steps=("effkeras.convert.int4.requantize_int4: every filter int4 (max or MSE-clipped per-channel "
                   "scale), and mixed (first conv and last dense int8)",
                   "effkeras.convert.compress.cluster_filters k=16, k=8, k=8 with first/last k=16, then compress_tflite",
                   "no fine-tuning (the Keras weights are not kept)"),
            measures="size against 49,248 B; accuracy on the 10,000 CIFAR-10 JPEG test images (LiteRT builtin; "
                     "compressed files as their uncompressed twin, equal in TFLM on 50 images) vs 83.24%; "
                     "instructions, target arena, text/data/bss on QEMU mps2-an386 with the 2023 Arduino library",
            seeds="deterministic (no training, exact k-means); 3 timed inferences a board run",
            results="benchmarks/results/below_int8.json",
            data=("cifar10_jpg",),
            args=("--data", "{data}", "--results", "{results}"),
            quick_args=("--quick", "--data", "{data}", "--results", "{results}"),
        ),
        Recipe(
            name="below_int8_train",
            title="Below int8 with fine-tuning: the full ResNet-8 clustered, fine-tuned and LUT-compressed",
            script="below_int8_train.py",
            models=("the float ResNet-8 rebuilt from tflite_models/mcu/resnet8_full_int8.tflite (BN folded, "
                    "dequantized filters: 83.35% in Keras, the file 83.17% in LiteRT builtin)",),
            steps=("effkeras.cluster.cluster_weights: 8 centroids per output channel, 16 on the first conv and 16 "
                   "per tensor on the classifier; k-means++ seeds refined by Lloyd's iterations",
                   "fine-tuned on the 50,000 CIFAR-10 JPEG training images (flip, translate 3 px; Adam, cosine "
                   "decay): labels, or labels + KL from the unclustered model",
                   "strip_clustering; int8 PTQ (200 images), and 1 epoch of cluster-preserving QAT (PreserveClusters)",
                   "cluster_filters (a check: no change) and compress_tflite (TFLM LUT compression)",
                   "tfmot (tf_keras child, benchmarks/_tfmot_cluster.py): the same recipe, its own k-means++ "
                   "seeds, strip, tf.lite PTQ and CQAT"),
            measures="compressed size against 49,248 B; accuracy on the 10,000 CIFAR-10 JPEG test images (LiteRT "
                     "builtin, as the uncompressed twin; compressed == twin in TFLM on 50 images) vs 83.24%; "
                     "the twin's instructions and target arena on QEMU mps2-an386 with the 2023 Arduino library",
            seeds="seed 0 (augmentation, shuffling); one run a variant",
            results="benchmarks/results/below_int8_train.json",
            data=("cifar10_jpg",),
            tfmot=True,
            args=("--data", "{data}", "--results", "{results}"),
            quick_args=("--quick", "--data", "{data}", "--results", "{results}"),
        ),
        Recipe(
            name="tune_search",
            title="Search: effkeras.tune random vs Bayesian vs Hyperband vs Pareto on CIFAR-10 under 49,248 B",
            script="tune_search.py",
            models=("effkeras.tune.ResNet8 (width 0.25/0.5/1.0, 1-3 stacks, kernel 3/5, channel pruning 0/25/50% "
                    "per stack, QAT or PTQ), searched",
                    "the hand-found architecture of the mcu suite (ResNet-8 16/32/64, last stack channel-pruned 45%, "
                    "int8 per tensor), trained once under the same per-trial budget"),
            steps=("effkeras.tune.tune with search pareto, random, bayesian and hyperband, one after another: the "
                   "same data, trial budget, per-trial epochs, seed and size limit (a custom board with exactly "
                   "49,248 B of flash and no program estimate, 256 KiB RAM)",
                   "each trial: untrained int8 precheck (a model over the limit is not trained), training with "
                   "pruning, QAT where the trial says, int8 conversion, LiteRT accuracy on the validation images",
                   "the best feasible model of each search and the hand-found architecture's once on the test images"),
            measures="best feasible model per search (hyperparameters, int8 size, val and test int8 accuracy in LiteRT), "
                     "feasible / infeasible / failed trials, wall time; against the hand-found architecture at the same "
                     "budget and the published 48,528 B / 82.02% (the goal)",
            seeds="seed 0 (oracles and trial weights: seed + trial number); one run a search",
            results="benchmarks/results/tune_search.json",
            data=("cifar10_jpg",),
            args=("--data", "{data}", "--train", "20000", "--epochs", "4", "--qat-epochs", "1", "--max-trials", "10",
                  "--results", "{results}"),
            quick_args=("--quick", "--results", "{results}"),
        ),
    )
}


def get(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name raises KeyError naming the choices."""
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r}; choose from {', '.join(RECIPES)}") from None
