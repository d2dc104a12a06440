"""The ``effkeras`` command line.

    effkeras demo     [--dataset digits|mnist|cifar10] [--data-dir DIR] [--out DIR] [--force]
    effkeras convert  MODEL.keras -o OUT.tflite [--quantize MODE] [--calibration X.npy] ...
    effkeras inspect  MODEL.tflite [--json]
    effkeras profile  MODEL [--board NAME] [--json]
    effkeras carray   MODEL.tflite [--name NAME] [--out DIR] [--force]
    effkeras sketch   MODEL.tflite --out DIR [--board NAME] [--labels a,b,c] [--force]
                      (a projection text model, whose file stores its projector, gets the
                      text sketch: Serial text in, class out; [--max-text-bytes N])
    effkeras bench    MODEL --target litert|tflm|android[:SERIAL]|serial:PORT|estimate:BOARD
    effkeras bench compare A.tflite B.tflite ... --target T
    effkeras boards   [--json]
    effkeras tune     --dataset NAME --board NAME --max-trials N --out DIR [--workers N] ...

Bad input prints one line "effkeras: error: ..." to stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from effkeras.errors import ConversionError, EffkerasError, InvalidModelError, OutputExistsError

EXIT_BAD_INPUT = 2


class CLIError(EffkerasError):
    """Bad command-line input."""


def _board_from_args(args) -> object | None:
    from effkeras.boards import custom_board, get_board

    if args.board is None:
        return None
    if args.board == "custom":
        missing = [f for f in ("flash_kb", "ram_kb") if getattr(args, f) is None]
        if missing:
            raise CLIError(
                "--board custom needs --flash-kb and --ram-kb (and optionally --clock-mhz). "
                f"Missing: {', '.join('--' + m.replace('_', '-') for m in missing)}"
            )
        for f in ("flash_kb", "ram_kb", "clock_mhz"):
            value = getattr(args, f)
            if value is not None and value <= 0:
                raise CLIError(f"--{f.replace('_', '-')} must be positive. Received: {value}")
        return custom_board(args.flash_kb, args.ram_kb, args.clock_mhz or 64)
    return get_board(args.board)


def _add_board_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--board", default=default,
        help="board name (see `effkeras boards`), or 'custom' with --flash-kb/--ram-kb",
    )
    p.add_argument("--flash-kb", type=float, help="custom board flash, KiB")
    p.add_argument("--ram-kb", type=float, help="custom board RAM, KiB")
    p.add_argument("--clock-mhz", type=float, help="custom board clock, MHz")


#: calibration samples read from a --calibration file (the converter needs a few hundred)
MAX_CALIBRATION_SAMPLES = 2000
#: the largest --calibration array read into memory
MAX_CALIBRATION_BYTES = 2 << 30


def _load_calibration(path: str | None) -> np.ndarray | None:
    """The --calibration array: a .npy (memory-mapped, so a huge file is never read whole) or
    the 'x' / 'x_train' / 'arr_0' array of a .npz; at most MAX_CALIBRATION_SAMPLES samples."""
    import zipfile

    if path is None:
        return None
    if not os.path.isfile(path):
        raise CLIError(f"--calibration file {path!r} does not exist.")
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r")
        if isinstance(loaded, np.lib.npyio.NpzFile):
            key = next((k for k in ("x", "x_train", "arr_0") if k in loaded.files), None)
            if key is None:
                raise CLIError(f"--calibration {path!r} has arrays {loaded.files}; expected 'x'.")
            size = loaded.zip.getinfo(key + ".npy").file_size
            if size > MAX_CALIBRATION_BYTES:
                raise CLIError(f"--calibration {path!r}: array {key!r} is {size:,} bytes uncompressed, over "
                               f"{MAX_CALIBRATION_BYTES:,}; save a few hundred samples (x_train[:200]).")
            loaded = loaded[key]
    except CLIError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CLIError(
            f"--calibration {path!r} is not a .npy or .npz file ({exc}). Save inputs with "
            f"numpy.save('calib.npy', x_train[:200])."
        ) from None
    if loaded.ndim == 0:
        raise CLIError(f"--calibration {path!r} holds a single value; expected samples, batch first. "
                       f"Received: shape {loaded.shape}")
    return np.array(loaded[:MAX_CALIBRATION_SAMPLES])


def _require_file(path: str, what: str = "model") -> None:
    if not os.path.exists(path):
        raise InvalidModelError(f"No such {what} file: {path!r}.")
    if os.path.isdir(path):
        raise InvalidModelError(f"{path!r} is a folder; expected a {what} file.")


def _refuse_overwrite(path: str, force: bool) -> None:
    if os.path.exists(path) and not force:
        raise OutputExistsError(f"{path!r} exists; pass --force to overwrite it.")


# ---- commands ------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from effkeras.demo import format_summary, run_demo

    result = run_demo(
        args.dataset, args.data_dir, args.out, epochs=args.epochs, board=args.board,
        force=args.force, seed=args.seed, limit_train=args.limit_train,
        limit_test=args.limit_test, command="effkeras " + " ".join(args.argv),
    )
    print(format_summary(result))
    return 0


def cmd_convert(args) -> int:
    _require_file(args.model, "Keras model")
    if not args.model.endswith((".keras", ".h5")):
        raise InvalidModelError(
            f"{args.model!r} is not a Keras model file; expected .keras or .h5 (saved with "
            f"model.save). To inspect a .tflite use `effkeras inspect`."
        )
    output = args.output or os.path.splitext(args.model)[0] + (
        f"_{args.quantize}.tflite" if args.quantize else ".tflite"
    )
    _refuse_overwrite(output, args.force)
    if (args.int4 or args.compress) and args.quantize != "int8":
        flag = "--int4" if args.int4 else "--compress"
        raise ConversionError(
            f"{flag} rewrites the filters of a full-integer file: give --quantize int8. "
            f"Received: --quantize {args.quantize}"
        )
    if args.per_tensor and args.quantize not in ("int8", "dynamic"):
        raise ConversionError(
            f"--per-tensor sets the int8 weight scales: give --quantize int8 or dynamic. "
            f"Received: --quantize {args.quantize}"
        )
    from effkeras.convert import read_tflite, to_tflite

    data = to_tflite(
        args.model, quantize=args.quantize, representative_data=_load_calibration(args.calibration),
        io_dtype=args.io_dtype, allow_float_ops=args.allow_float_ops,
        strip_names=args.strip_names, per_channel=False if args.per_tensor else None,
        int4=args.int4, compress=args.compress,
    )
    with open(output, "wb") as f:
        f.write(data)
    print(read_tflite(data).summary().replace("<bytes>", output, 1))
    if args.compress:
        print("compressed (TFLM_DECODE): needs a TFLM with the DECODE kernel; the 2023 "
              "Arduino_TensorFlowLite library cannot run it (use the file without --compress "
              "for a sketch)")
    return 0


def cmd_inspect(args) -> int:
    from effkeras.convert import read_tflite

    _require_file(args.model, ".tflite")
    model = read_tflite(args.model)
    if args.json:
        print(json.dumps(model.to_dict(), indent=2))
    else:
        print(model.summary())
    return 0


def cmd_profile(args) -> int:
    from effkeras.profiling import profile

    _require_file(args.model)
    board = _board_from_args(args)
    is_keras = args.model.endswith((".keras", ".h5"))
    report = profile(
        args.model, board=board,
        quantize=args.quantize if is_keras else None,
        representative_data=_load_calibration(args.calibration) if is_keras else None,
        isolate=not is_keras, arena=args.arena, tflm_lib=args.tflm_lib,
    )
    print(report.to_json() if args.json else report.table())
    return 0


def cmd_carray(args) -> int:
    from effkeras.convert import read_tflite, to_c_array

    _require_file(args.model, ".tflite")
    model = read_tflite(args.model)
    name = args.name or os.path.splitext(os.path.basename(args.model))[0]
    files = to_c_array(model, name)
    paths = files.write(args.out, force=args.force)
    for p in paths:
        print(p)
    return 0


def cmd_sketch(args) -> int:
    from effkeras.convert import read_tflite
    from effkeras.deploy import arduino_sketch, text_sketch
    from effkeras.deploy.featurizer import read_projector

    _require_file(args.model, ".tflite")
    model = read_tflite(args.model)
    projector = read_projector(model)
    if projector is None and args.max_text_bytes is not None:
        raise CLIError(
            f"--max-text-bytes is for projection text models, and {args.model!r} stores no "
            f"projector (convert it with to_tflite(..., projector=p)). Received: "
            f"--max-text-bytes {args.max_text_bytes}"
        )
    labels = None
    if args.labels_file:
        _require_file(args.labels_file, "labels")
        try:
            with open(args.labels_file, encoding="utf-8") as f:
                labels = [ln.strip() for ln in f if ln.strip()]
        except UnicodeDecodeError as exc:
            raise CLIError(f"{args.labels_file!r} is not UTF-8 text (byte {exc.start}): a labels file "
                           "holds one label a line. Received: a binary file") from None
    elif args.labels:
        labels = [s.strip() for s in args.labels.split(",")]
    board = _board_from_args(args) or "nano33ble"
    if projector is not None:
        text = text_sketch(
            model, args.out, projector, board=board, name=args.name, labels=labels,
            force=args.force, arena_size=args.arena_size,
            max_text_bytes=args.max_text_bytes or 256,
        )
        print(f"Arduino text sketch written to {text.path}")
        print(f"  projector: {projector!r}")
        print(f"  max_text_bytes: {text.max_text_bytes}")
        info = text.sketch
    else:
        info = arduino_sketch(
            model, args.out, board=board, name=args.name,
            labels=labels, force=args.force, arena_size=args.arena_size,
        )
        print(f"Arduino sketch written to {info.path}")
    for k in ("arena_bytes", "arena_size", "ops"):
        if hasattr(info, k):
            print(f"  {k}: {getattr(info, k)}")
    print(f"  model: the input's {info.model_bytes} bytes unchanged (sha256 {info.sha256[:16]}...)")
    from effkeras.runtime.tflm_ops import arduino_library_problems

    for problem in arduino_library_problems(model):
        print(f"effkeras: warning: {problem} (README.md says so too).", file=sys.stderr)
    return 0


def cmd_boards(args) -> int:
    from effkeras.boards import BOARDS
    from effkeras.deploy.build import build_status

    if args.json:
        print(json.dumps({k: {**b.to_dict(), "build": build_status(k)}
                          for k, b in BOARDS.items()}, indent=2))
        return 0
    print(f"{'name':22s} {'board':36s} {'core':22s} {'MHz':>5s} {'flash KiB':>10s} {'RAM KiB':>8s}"
          f"  effkeras build")
    for b in BOARDS.values():
        status = build_status(b.name)
        status = "yes" if status.startswith("builds") else status.split(":", 1)[0]
        print(f"{b.name:22s} {b.title:36s} {b.core:22s} {b.clock_mhz:>5g} {b.flash_kb:>10,d} "
              f"{b.ram_kb:>8,d}  {status}")
    unsupported = [(b.title, build_status(b.name)) for b in BOARDS.values()
                   if build_status(b.name).startswith("unsupported")]
    for title, why in unsupported:
        print(f"\n{title}: {why.split(': ', 1)[1]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from effkeras import __version__
    from effkeras.convert.converter import QUANTIZE_MODES
    from effkeras.data import DATASETS

    parser = argparse.ArgumentParser(
        prog="effkeras",
        description="Make Keras 3 models smaller and faster; deploy to LiteRT and TFLite Micro.",
    )
    parser.add_argument("--version", action="version", version=f"effkeras {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="train, convert, evaluate and deploy on a dataset")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits is embedded (scikit-learn); mnist/cifar10 read --data-dir")
    p.add_argument("--data-dir", help="dataset folder (default: $EFFKERAS_DATA_DIR)")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--epochs", type=_positive_int, help="training epochs")
    p.add_argument("--board", default="nano33ble", help="target board for the sketch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=_positive_int, help="use the first N training samples")
    p.add_argument("--limit-test", type=_positive_int, help="use the first N test samples")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("convert", help="convert a .keras model to .tflite")
    p.add_argument("model", help="a .keras or .h5 file")
    p.add_argument("-o", "--output", help="output .tflite (default: next to the model)")
    p.add_argument("--quantize", choices=[m for m in QUANTIZE_MODES if m], default=None)
    p.add_argument("--calibration", help=".npy/.npz of representative inputs (int8, int16x8)")
    p.add_argument("--io-dtype", choices=["float32", "int8", "uint8", "int16"], default=None)
    p.add_argument("--allow-float-ops", action="store_true",
                   help="with int8, keep ops the converter could not quantize in float")
    p.add_argument("--strip-names", action="store_true",
                   help="rename intermediate tensors t<index> (smaller file; I/O names kept)")
    p.add_argument("--per-tensor", action="store_true",
                   help="one int8 weight scale per kernel instead of per output channel (24 B a "
                        "channel smaller; with --quantize int8 or dynamic)")
    p.add_argument("--int4", action="store_true",
                   help="store filters whose int8 values lie in [-7, 7] (a model trained with "
                   "quantize_model(weight_bits=4)) as INT4, two values a byte")
    p.add_argument("--compress", action="store_true",
                   help="TFLM look-up-table compression of filters with few distinct values "
                   "(clustered models); needs a TFLM with DECODE, not the 2023 Arduino library")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("inspect", help="ops, tensors and quantization of a .tflite")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("profile", help="size, params, MACs, TFLM arena and board fit")
    p.add_argument("model", help="a .tflite, or a .keras model (converted first)")
    _add_board_args(p, None)
    p.add_argument("--quantize", choices=[m for m in QUANTIZE_MODES if m], default=None,
                   help="for a .keras model: how to convert it first")
    p.add_argument("--calibration", help="for a .keras model with --quantize int8")
    p.add_argument("--arena", choices=("host", "target"), default="host",
                   help="host: TFLM's arena on this 64-bit host plus a 32-bit margin (default); "
                   "target: build the sketch for the emulated Cortex-M4F, run it in QEMU and "
                   "fit the board with the arena the 32-bit target reports")
    p.add_argument("--tflm-lib", metavar="DIR",
                   help="--arena target: the Arduino_TensorFlowLite folder (default "
                   "$EFFKERAS_TFLM_LIB, then ~/Arduino/libraries/Arduino_TensorFlowLite)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("carray", help="write a TFLM C array (.h/.cc) for a .tflite")
    p.add_argument("model")
    p.add_argument("--name", help="C name stem (default: the file name)")
    p.add_argument("--out", default=".", help="output folder (default: .)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_carray)

    p = sub.add_parser(
        "sketch",
        help="write an Arduino sketch folder for a .tflite (a text sketch for a projection "
             "model, whose file stores its projector)",
    )
    p.add_argument("model")
    p.add_argument("--out", required=True, help="sketch folder to create")
    _add_board_args(p, "nano33ble")
    p.add_argument("--name", help="model name in the sketch (default: from the file)")
    p.add_argument("--labels", help="comma-separated class labels")
    p.add_argument("--labels-file", help="file with one class label a line")
    p.add_argument("--arena-size", type=_positive_int,
                   help="kTensorArenaSize in bytes (default: measured arena plus margin)")
    p.add_argument("--max-text-bytes", type=_positive_int,
                   help="projection text models: the longest line the sketch reads (default 256)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_sketch)

    from effkeras.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)

    from effkeras.tune.cli import add_parser as add_tune_parser

    add_tune_parser(sub)

    from effkeras.deploy.build_cli import add_parser as add_build_parser

    add_build_parser(sub)

    p = sub.add_parser("boards", help="list the known boards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_boards)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def one_line(exc: BaseException) -> str:
    """An error message on one line: runtimes' messages span several (TFLM's, LiteRT's)."""
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except EffkerasError as exc:
        print(f"effkeras: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("effkeras: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
