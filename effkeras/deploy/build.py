"""Compile a generated Arduino sketch with arm-none-eabi-g++ against the real TFLM library.

:func:`build_sketch` builds a sketch folder that :func:`~effkeras.deploy.arduino_sketch` or
:func:`~effkeras.deploy.text_sketch` wrote, for one board's CPU, against the
``Arduino_TensorFlowLite`` library as the Arduino Library Manager installs it, and reports
the ELF's ``text``/``data``/``bss`` (``arm-none-eabi-size``): flash is text + data, static
RAM is data + bss (the tensor arena is in bss).

What is compiled:

- the library's interpreter core (``tensorflow/lite/micro``, its allocators and memory
  planners, ``tensorflow/lite/core``, ``kernels/internal``, the schema) and only the
  kernels the sketch's ``MicroMutableOpResolver`` registers (read from its ``Add...()``
  calls; each is mapped to the source that defines its ``Register_...()``), with the
  CMSIS-NN functions they call; nothing from ``src/peripherals`` (Nano 33 BLE only);
- the sketch's ``.ino`` (as Arduino does: ``#include <Arduino.h>`` in front), its ``.cpp``
  and ``.c`` files;
- effkeras's small board core (``effkeras/deploy/firmware``): start-up code, a linker
  script per board, ``Arduino.h`` with Serial on a UART and millis()/micros() on a timer.

Library objects are cached per source in ``$EFFKERAS_CACHE/tflm/<key>/`` (default
``~/.cache/effkeras/tflm/<key>/``), ``key`` = sha256 of the library's files, the compiler's
version and the flags; a second build, with the same or other kernels, compiles only what
is not there yet.

The library is found at ``tflm_lib``, else ``$EFFKERAS_TFLM_LIB``, else
``~/Arduino/libraries/Arduino_TensorFlowLite``. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from effkeras.errors import BuildError, EffkerasError, ToolchainError

#: The library a user installs with the Arduino Library Manager.
LIBRARY_NAME = "Arduino_TensorFlowLite"
#: The date of the TFLM sources in library version 2.4.0-ALPHA (its last sync).
TFLM_SYNC_DATES = {"2.4.0-ALPHA": "2023-02-27"}
APT_HINT = (
    "On Debian/Ubuntu: sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
    "libstdc++-arm-none-eabi-newlib (or put Arm's GNU toolchain on PATH)."
)
LIBRARY_HINT = (
    "Install it with the Arduino IDE's Library Manager (Arduino_TensorFlowLite) or "
    "`git clone https://github.com/tensorflow/tflite-micro-arduino-examples "
    "~/Arduino/libraries/Arduino_TensorFlowLite`, then pass --tflm-lib DIR or set "
    "EFFKERAS_TFLM_LIB."
)

_CXX_FLAGS = ("-std=gnu++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics",
              "-fno-use-cxa-atexit")
_COMMON_FLAGS = ("-Os", "-g", "-ffunction-sections", "-fdata-sections", "-fno-common",
                 "-fmessage-length=0")
_DEFINES = ("-DARDUINO=10819", "-DARDUINO_ARCH_EFFKERAS")
# The library's src/peripherals supports only the Nano 33 BLE's Mbed core (its
# peripherals.h #errors on any other board) and is never compiled here. The library's own
# sources are compiled with its include guard defined, so nothing can pull it in; the
# sketch is compiled without it: a generated sketch skips peripherals.h by itself on other
# boards, as it must in the Arduino IDE.
_LIBRARY_DEFINES = ("-DPERIPHERALS_H_",)


@dataclass(frozen=True)
class BuildBoard:
    """How to compile for one board: its CPU flags and memory map.

    Attributes:
        name: the board's name (as in :data:`effkeras.boards.BOARDS`, or ``mps2_an386``).
        title: a readable name.
        core: the CPU core.
        cpu_flags: ``-mcpu``/``-mthumb``/float ABI flags (the board core's).
        define: the ``ARDUINO_<BOARD>`` macro an Arduino core would define.
        flash_origin, flash_bytes, ram_origin, ram_bytes: the memory map the linker checks.
        emulated: QEMU runs it (``qemu-system-arm -M <qemu_machine>``).
        qemu_machine: the QEMU machine name, when emulated.
        unsupported: why arm-none-eabi cannot build for it ("" when it can).
    """

    name: str
    title: str
    core: str
    cpu_flags: tuple[str, ...] = ()
    define: str = ""
    flash_origin: int = 0
    flash_bytes: int = 0
    ram_origin: int = 0x20000000
    ram_bytes: int = 0
    emulated: bool = False
    qemu_machine: str = ""
    unsupported: str = ""

    @property
    def float_abi(self) -> str:
        for flag in self.cpu_flags:
            if flag.startswith("-mfloat-abi="):
                return flag.split("=", 1)[1]
        return "soft"


_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
_M0P = ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft")
_M7F = ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16")

#: The boards :func:`build_sketch` knows. ``mps2_an386`` is the emulated one.
BUILD_BOARDS: dict[str, BuildBoard] = {
    b.name: b
    for b in (
        BuildBoard("mps2_an386", "QEMU mps2-an386 (Arm MPS2 AN386, emulated)", "Cortex-M4F",
                   _M4F, "ARDUINO_EFFKERAS_MPS2_AN386", 0x0, 4 << 20, 0x20000000, 4 << 20,
                   emulated=True, qemu_machine="mps2-an386"),
        BuildBoard("nano33ble", "Arduino Nano 33 BLE Sense", "Cortex-M4F", _M4F,
                   "ARDUINO_EFFKERAS_NANO33BLE", 0x10000, 1024 * 1024 - 0x10000, 0x20000000,
                   256 * 1024),
        BuildBoard("pico", "Raspberry Pi Pico", "Cortex-M0+", _M0P, "ARDUINO_EFFKERAS_PICO",
                   0x10000000, 2048 * 1024, 0x20000000, 264 * 1024),
        BuildBoard("nano_rp2040_connect", "Arduino Nano RP2040 Connect", "Cortex-M0+", _M0P,
                   "ARDUINO_EFFKERAS_NANO_RP2040_CONNECT", 0x10000000, 16384 * 1024,
                   0x20000000, 264 * 1024),
        BuildBoard("portenta_h7", "Arduino Portenta H7 (M7 core)", "Cortex-M7F", _M7F,
                   "ARDUINO_EFFKERAS_PORTENTA_H7_M7", 0x08040000, 1792 * 1024, 0x24000000,
                   512 * 1024),
        BuildBoard("esp32s3", "Espressif ESP32-S3", "Xtensa LX7",
                   unsupported="the ESP32-S3 is an Xtensa LX7, not an Arm core: "
                   "arm-none-eabi-g++ cannot build for it (use Espressif's toolchain and "
                   "esp-tflite-micro, e.g. through arduino-cli with the esp32 core)"),
    )
}
_ALIASES = {"qemu": "mps2_an386", "mps2": "mps2_an386", "mps2_an386": "mps2_an386"}


#: The library's src/peripherals files that cannot compile for a board other than the
#: Nano 33 BLE: the first three include peripherals.h (``#error "unsupported board"``), the
#: last two the nRF52840's HAL. The Arduino IDE compiles every source of a library.
NANO33_ONLY_SOURCES = ("button_arduino.cpp", "led_arduino.cpp", "i2c_arduino.cpp",
                       "i2s_nrf52840.cpp", "ws_wm8960_audio_hat_nrf52840.cpp")


def build_status(board: str) -> str:
    """How ``effkeras build`` and the Arduino IDE treat a board of :data:`effkeras.boards.BOARDS`.

    One line: ``"builds (Cortex-M0+: -mcpu=cortex-m0plus ...)"`` or ``"unsupported: why"``.
    """
    key = str(board).strip().lower().replace("-", "_")
    found = BUILD_BOARDS.get(_ALIASES.get(key, key))
    if found is None:
        return ("no build settings (a custom board): `effkeras build --board` takes "
                + ", ".join(b for b, v in BUILD_BOARDS.items() if not v.unsupported))
    if found.unsupported:
        return f"unsupported: {found.unsupported}"
    return f"builds ({found.core}: {' '.join(found.cpu_flags)})"


def library_notes(board: str) -> str:
    """What a user of ``board`` must know about the Arduino library (sketch README text)."""
    key = str(board).strip().lower().replace("-", "_")
    found = BUILD_BOARDS.get(_ALIASES.get(key, key))
    if found is None:
        return ("This sketch was generated for a custom board: check that the library and "
                "your board's Arduino core compile it (`effkeras build SKETCH --board NAME` "
                "compiles it for the CPUs it knows).")
    if found.unsupported:
        return (f"**{found.title}**: {found.unsupported}. The model files (`model.h`, "
                f"`model.cpp`, `model_settings.h`) and the sketch's TFLM calls are standard "
                f"TFLM and carry over; this library and `effkeras build` do not.")
    build = (f"`effkeras build {{sketch}} --board {found.name}` compiles this sketch with "
             f"arm-none-eabi-g++ for the {found.core} against the unmodified library (only the "
             f"interpreter and the kernels the sketch registers, without src/peripherals) "
             f"and reports the flash and RAM it takes; effkeras's CI does this for every "
             f"board it lists.")
    if found.name in ("nano33ble", "mps2_an386"):
        return (f"**{found.title}**: the library compiles for it as it is. " + build)
    files = ", ".join(f"`{f}`" for f in NANO33_ONLY_SOURCES)
    return (
        f"**{found.title} with the Arduino IDE**: the IDE compiles every source of a library, "
        f"and five files of this library's `src/peripherals` are Nano 33 BLE code that cannot "
        f"compile for another board ({files}: they include `peripherals.h`, which stops with "
        f"`#error \"unsupported board\"`, or the nRF52840's HAL). Delete those five files from "
        f"the installed library (neither TFLM nor this sketch uses them). The sketch itself "
        f"skips `peripherals.h` on other boards and defines `DebugLog` and "
        f"`tflite::InitializeTarget` in `efk_tflm_port.cpp` (the library defines them only "
        f"for the Nano 33 BLE). " + build + " Compiling with the Arduino core itself was not "
        "possible there (Arduino cores cannot be downloaded in that CI)."
    )


def get_build_board(board: str | BuildBoard) -> BuildBoard:
    """Look up a :class:`BuildBoard` by name (``qemu`` = ``mps2_an386``); errors list them."""
    if isinstance(board, BuildBoard):
        return board
    key = str(board).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in BUILD_BOARDS:
        raise EffkerasError(
            f"No build settings for board {board!r}. Boards that build: "
            f"{', '.join(b for b, v in BUILD_BOARDS.items() if not v.unsupported)} "
            f"(qemu = mps2_an386, the emulated Cortex-M4F). Received: board={board!r}"
        )
    found = BUILD_BOARDS[key]
    if found.unsupported:
        raise BuildError(f"Cannot build for {found.title}: {found.unsupported}.")
    return found


@dataclass
class BuildResult:
    """What :func:`build_sketch` produced.

    Attributes:
        elf: path of the linked ELF.
        board: the board built for.
        text, data, bss: ``arm-none-eabi-size`` (Berkeley) of the ELF, in bytes.
        library: the library folder, ``library_version`` its library.properties version and
            ``tflm_sync`` the date of its TFLM sources (when known).
        ops: the resolver's ``Add...`` calls found in the sketch.
        library_sources: the library sources linked (relative to its ``src``).
        compiled: how many library sources this build compiled (0: all from the cache).
        fallback: symbols the selected sources lacked, so the whole library was linked
            (empty when the selection sufficed).
        cache_dir: where the library objects are cached.
        seconds: wall time of the build.
        flags: the compiler flags used for every file.
    """

    elf: str
    board: BuildBoard
    text: int
    data: int
    bss: int
    library: str
    library_version: str
    tflm_sync: str
    ops: list[str]
    library_sources: list[str]
    compiled: int
    cache_dir: str
    seconds: float
    flags: list[str] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)

    @property
    def flash_bytes(self) -> int:
        """Program flash: code and constants (the model array) plus .data's initial values."""
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        """Static RAM: .data + .bss (the tensor arena included; stack and heap not)."""
        return self.data + self.bss

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["board"] = self.board.name
        d["board_title"] = self.board.title
        d["core"] = self.board.core
        d["flash_bytes"] = self.flash_bytes
        d["ram_bytes"] = self.ram_bytes
        return d


# ---- tools and library ---------------------------------------------------------------------

def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"{name} is not on PATH; building a sketch needs the Arm GNU "
                             f"toolchain. {APT_HINT}")
    return path


def find_library(tflm_lib: str | os.PathLike | None = None) -> Path:
    """The Arduino_TensorFlowLite library folder: ``tflm_lib``, ``$EFFKERAS_TFLM_LIB`` or
    ``~/Arduino/libraries/Arduino_TensorFlowLite``, checked to hold the TFLM sources.

    Raises:
        ToolchainError: not found, or not that library (the message says where it looked).
    """
    if tflm_lib is not None:
        candidates = [("--tflm-lib", Path(tflm_lib))]
    elif os.environ.get("EFFKERAS_TFLM_LIB"):
        candidates = [("$EFFKERAS_TFLM_LIB", Path(os.environ["EFFKERAS_TFLM_LIB"]))]
    else:
        candidates = [("the default", Path.home() / "Arduino" / "libraries" / LIBRARY_NAME)]
    how, path = candidates[0]
    path = path.expanduser()
    if not path.is_dir():
        raise ToolchainError(
            f"The {LIBRARY_NAME} library is not at {path} ({how}). {LIBRARY_HINT}"
        )
    if path.name == "src" and (path.parent / "library.properties").is_file():
        raise ToolchainError(
            f"{path} is the library's src folder; pass the library folder itself: "
            f"{path.parent}. Received: {path}"
        )
    marker = path / "src" / "tensorflow" / "lite" / "micro" / "micro_interpreter.h"
    if not (path / "library.properties").is_file() or not marker.is_file():
        raise ToolchainError(
            f"{path} ({how}) is not the {LIBRARY_NAME} library: it needs library.properties "
            f"and src/tensorflow/lite/micro/micro_interpreter.h. {LIBRARY_HINT}"
        )
    return path.resolve()


def library_version(lib: Path) -> str:
    """``version=`` of the library's library.properties ("" if absent)."""
    text = (lib / "library.properties").read_text("utf-8", errors="replace")
    m = re.search(r"^version=(.*)$", text, re.M)
    return m.group(1).strip() if m else ""


def _library_hash(src: Path) -> str:
    h = hashlib.sha256()
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            p = Path(root, name)
            h.update(str(p.relative_to(src)).encode() + b"\0")
            h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def cache_root() -> Path:
    """``$EFFKERAS_CACHE`` or ``~/.cache/effkeras``."""
    env = os.environ.get("EFFKERAS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "effkeras"


# ---- which library sources -------------------------------------------------------------------

_CORE_DIRS = (
    "tensorflow/lite/micro/arena_allocator",
    "tensorflow/lite/micro/memory_planner",
    "tensorflow/lite/micro/tflite_bridge",
    "tensorflow/lite/core/api",
    "tensorflow/lite/core/c",
    "tensorflow/lite/kernels",
    "tensorflow/lite/kernels/internal",
    "tensorflow/lite/kernels/internal/reference",
    "tensorflow/lite/schema",
)
# Test and tooling files of tensorflow/lite/micro that a sketch never links.
_NOT_CORE = {
    "all_ops_resolver.cpp", "fake_micro_context.cpp", "mock_micro_graph.cpp",
    "test_helpers.cpp", "test_helper_custom_ops.cpp", "recording_micro_allocator.cpp",
}
_KERNEL_SUPPORT = ("kernel_util.cpp", "micro_tensor_utils.cpp")
# CMSIS-NN function groups each CMSIS-NN kernel calls (third_party/cmsis_nn/Source/<group>).
_CMSIS_GROUPS = {
    "conv": ("ConvolutionFunctions", "NNSupportFunctions"),
    "depthwise_conv": ("ConvolutionFunctions", "NNSupportFunctions"),
    "fully_connected": ("FullyConnectedFunctions", "ConvolutionFunctions", "NNSupportFunctions"),
    "softmax": ("SoftmaxFunctions", "NNSupportFunctions"),
    "pooling": ("PoolingFunctions", "NNSupportFunctions"),
    "add": ("BasicMathFunctions", "NNSupportFunctions"),
    "mul": ("BasicMathFunctions", "NNSupportFunctions"),
    "svdf": ("SVDFunctions", "NNSupportFunctions"),
}


def _files(src: Path, rel: str, exts: tuple[str, ...] = (".cpp", ".c")) -> list[str]:
    d = src / rel
    if not d.is_dir():
        return []
    return sorted(f"{rel}/{p.name}" for p in d.iterdir() if p.is_file() and p.suffix in exts)


def core_sources(src: Path) -> list[str]:
    """The interpreter core: every source a sketch links whatever its ops."""
    out = [f for f in _files(src, "tensorflow/lite/micro") if f.rsplit("/", 1)[1] not in _NOT_CORE]
    for rel in _CORE_DIRS:
        out += _files(src, rel)
    out += [f"tensorflow/lite/micro/kernels/{n}" for n in _KERNEL_SUPPORT
            if (src / "tensorflow/lite/micro/kernels" / n).is_file()]
    return sorted(set(out))


def _resolver_registrations(src: Path) -> dict[str, list[str]]:
    """``Add...`` method of MicroMutableOpResolver -> the ``Register_...`` names it uses."""
    text = (src / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text("utf-8")
    methods: dict[str, list[str]] = {}
    for m in re.finditer(r"TfLiteStatus (Add[A-Z]\w*)\(", text):
        body = text[m.end(): text.find("\n  }", m.end())]
        methods[m.group(1)] = re.findall(r"\bRegister_(\w+)\(", body)
    return methods


def _registration_files(src: Path) -> dict[str, str]:
    """``Register_X`` -> the kernel source defining it (the CMSIS-NN one where both do)."""
    found: dict[str, str] = {}
    for rel in ("tensorflow/lite/micro/kernels", "tensorflow/lite/micro/kernels/cmsis_nn"):
        for f in _files(src, rel, (".cpp",)):
            text = (src / f).read_text("utf-8", errors="replace")
            for name in re.findall(r"^TfLiteRegistration Register_(\w+)\(\)\s*\{", text, re.M):
                found[name] = f
    return found


def kernel_sources(src: Path, add_calls: Sequence[str]) -> list[str]:
    """The library sources of the kernels that these resolver calls register.

    Raises:
        BuildError: a call the library's MicroMutableOpResolver does not have.
    """
    methods = _resolver_registrations(src)
    files = _registration_files(src)
    out: set[str] = set()
    for call in add_calls:
        if call not in methods:
            raise BuildError(
                f"The sketch calls MicroMutableOpResolver::{call}(), which this library "
                f"({src.parent}) does not have: update the library, or regenerate the sketch "
                f"for a model without that op."
            )
        for reg in methods[call]:
            f = files.get(reg)
            if f is None:
                continue  # declared elsewhere (e.g. a variant); the link step would tell
            out.add(f)
            stem = f.rsplit("/", 1)[1][: -len(".cpp")]
            common = f"tensorflow/lite/micro/kernels/{stem}_common.cpp"
            if (src / common).is_file():
                out.add(common)
            if "/cmsis_nn/" in f:
                for group in _CMSIS_GROUPS.get(stem, ("NNSupportFunctions",)):
                    out.update(_files(src, f"third_party/cmsis_nn/Source/{group}", (".c",)))
    return sorted(out)


def all_sources(src: Path) -> list[str]:
    """Every source of the library that builds for a bare-metal board (no peripherals/,
    no test_over_serial/, no test helpers): the fallback when the selection misses one."""
    out = []
    for root, _, files in os.walk(src):
        rel_root = Path(root).relative_to(src).as_posix()
        if rel_root.split("/")[0] in ("peripherals", "test_over_serial"):
            continue
        for name in files:
            if name.endswith((".cpp", ".c")) and name not in _NOT_CORE:
                out.append(f"{rel_root}/{name}" if rel_root != "." else name)
    return sorted(out)


# ---- the sketch --------------------------------------------------------------------------

@dataclass(frozen=True)
class SketchFiles:
    """A sketch folder's build inputs: the .ino, the other sources, the resolver calls."""

    path: Path
    ino: Path
    sources: tuple[Path, ...]
    add_calls: tuple[str, ...]


def read_sketch(sketch_dir: str | os.PathLike) -> SketchFiles:
    """Check that ``sketch_dir`` is an Arduino sketch with a TFLM op resolver.

    Raises:
        BuildError: not a folder, no ``<folder>.ino``, or no ``MicroMutableOpResolver``
            ``Add...()`` calls in it (not a sketch generated by effkeras).
    """
    path = Path(sketch_dir)
    if not path.is_dir():
        raise BuildError(f"No sketch folder at {str(path)!r}: pass the folder that "
                         f"`effkeras sketch MODEL --out DIR` wrote. Received: {str(path)!r}")
    path = path.resolve()
    ino = path / f"{path.name}.ino"
    if not ino.is_file():
        others = sorted(p.name for p in path.glob("*.ino"))
        hint = (f" It has {', '.join(others)}; Arduino needs the .ino named after the folder."
                if others else "")
        raise BuildError(
            f"{path} is not an Arduino sketch: it has no {path.name}.ino.{hint} Generate one "
            f"with `effkeras sketch MODEL --out DIR`. Received: {str(sketch_dir)!r}"
        )
    text = ino.read_text("utf-8", errors="replace")
    calls = tuple(dict.fromkeys(re.findall(r"\.\s*(Add[A-Z]\w*)\s*\(\s*\)", text)))
    if "MicroMutableOpResolver" not in text or not calls:
        raise BuildError(
            f"{ino} registers no ops with a tflite::MicroMutableOpResolver (no "
            f"`.AddConv2D()`-style calls): effkeras builds the sketches it generates "
            f"(`effkeras sketch`), whose resolver names the model's ops."
        )
    sources = tuple(sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix in (".cpp", ".c", ".cc")))
    return SketchFiles(path=path, ino=ino, sources=sources, add_calls=calls)


# ---- compiling ---------------------------------------------------------------------------

def _firmware_dir() -> Path:
    return Path(str(resources.files("effkeras.deploy").joinpath("firmware")))


def _compiler_id(cxx: str) -> str:
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout.splitlines() or ["?"])[0]


def _first_errors(text: str, limit: int = 12) -> str:
    lines = [ln for ln in text.splitlines() if "error" in ln.lower()] or text.splitlines()
    return "\n".join(lines[:limit])


def _compile(cmd: list[str], source: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".o", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([*cmd, "-c", source, "-o", tmp], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise BuildError(f"Compiling {source} failed:\n{_first_errors(proc.stderr)}")
        os.replace(tmp, out)  # atomic: a parallel build never sees half an object
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _run_all(jobs: int, tasks: list[Callable[[], None]]) -> None:
    if not tasks:
        return
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(t) for t in tasks]
        for f in futures:
            f.result()


def _size(elf: Path) -> tuple[int, int, int]:
    out = subprocess.run([_tool("arm-none-eabi-size"), "-B", str(elf)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise BuildError(f"arm-none-eabi-size failed on {elf}: {out.stderr.strip()}")
    fields = out.stdout.splitlines()[1].split()
    return int(fields[0]), int(fields[1]), int(fields[2])


def _linker_script(board: BuildBoard, path: Path, stack_bytes: int) -> None:
    text = (_firmware_dir() / "efk_cortexm.ld.tmpl").read_text("utf-8")
    path.write_text(Template(text).substitute(
        board_comment=f"{board.title} ({board.core})",
        flash_origin=f"0x{board.flash_origin:08x}", flash_length=f"0x{board.flash_bytes:x}",
        ram_origin=f"0x{board.ram_origin:08x}", ram_length=f"0x{board.ram_bytes:x}",
        stack_size=f"0x{stack_bytes:x}",
    ), encoding="utf-8")


def _undefined_symbols(stderr: str) -> list[str]:
    return sorted(set(re.findall(r"undefined reference to `([^']+)'", stderr)))


def build_sketch(
    sketch_dir: str | os.PathLike,
    board: str | BuildBoard = "mps2_an386",
    tflm_lib: str | os.PathLike | None = None,
    *,
    build_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    stack_bytes: int = 16 * 1024,
    extra_defines: Sequence[str] = (),
) -> BuildResult:
    """Compile and link a generated sketch for a board; report its sizes.

    Args:
        sketch_dir: the folder :func:`~effkeras.deploy.arduino_sketch` (or ``text_sketch``)
            wrote.
        board: a name of :data:`BUILD_BOARDS` (``qemu`` = ``mps2_an386``, the emulated
            Cortex-M4F) or a :class:`BuildBoard`.
        tflm_lib: the Arduino_TensorFlowLite library folder (see :func:`find_library`).
        build_dir: where objects and the ELF go; default ``<sketch>/build/<board>``.
        jobs: parallel compiler processes (default: the CPU count).
        stack_bytes: stack the linker reserves at the top of RAM (checked to fit).
        extra_defines: more ``NAME`` or ``NAME=VALUE`` macros for every file.

    Returns:
        A :class:`BuildResult`: ``.elf``, ``.text``/``.data``/``.bss``, ``.flash_bytes``,
        ``.ram_bytes``, what was compiled.

    Raises:
        ToolchainError: arm-none-eabi-g++ or the library is missing (says how to get it).
        BuildError: not a sketch, a board arm-none-eabi cannot build for, a compile or link
            error (with the compiler's first error lines), or the program does not fit.
    """
    started = time.monotonic()
    board_obj = get_build_board(board)
    sketch = read_sketch(sketch_dir)
    lib = find_library(tflm_lib)
    src = lib / "src"
    cxx, cc = _tool("arm-none-eabi-g++"), _tool("arm-none-eabi-gcc")
    _tool("arm-none-eabi-size")
    if jobs is None:
        jobs = os.cpu_count() or 1
    firmware = _firmware_dir()

    # The library is compiled without the board's own macro (it tests none but the Nano 33
    # BLE's, which is never defined here), so boards with one CPU share one cache.
    defines = [*_DEFINES] + [f"-D{d}" for d in extra_defines]
    sketch_base = [*board_obj.cpu_flags, *_COMMON_FLAGS, *defines]
    base = [*sketch_base, *_LIBRARY_DEFINES]
    board_define = [f"-D{board_obj.define}"]
    includes = [f"-I{firmware}", f"-I{src}", f"-I{src / 'third_party/cmsis_nn'}",
                f"-I{src / 'third_party/cmsis_nn/Include'}", f"-I{src / 'third_party/flatbuffers/include'}",
                f"-I{src / 'third_party/gemmlowp'}", f"-I{src / 'third_party/ruy'}"]
    includes = [i for i in includes if Path(i[2:]).is_dir()]

    def cmd_for(source: str, flags: Sequence[str] = base) -> list[str]:
        if source.endswith(".c"):
            return [cc, *flags, "-std=gnu11", *includes]
        return [cxx, *flags, *_CXX_FLAGS, *includes]

    key_material = json.dumps({"lib": _library_hash(src), "cxx": _compiler_id(cxx),
                               "cc": _compiler_id(cc), "flags": base,
                               "cxxflags": list(_CXX_FLAGS), "includes": [
                                   i.replace(str(src), "<src>").replace(str(firmware),
                                                                        "<firmware>")
                                   for i in includes],
                               # the firmware headers a library source may include
                               "firmware_headers": hashlib.sha256(b"".join(
                                   p.name.encode() + b"\0" + p.read_bytes()
                                   for p in sorted(firmware.glob("*.h")))).hexdigest()},
                              sort_keys=True)
    key = hashlib.sha256(key_material.encode()).hexdigest()[:20]
    cache = cache_root() / "tflm" / key
    cache.mkdir(parents=True, exist_ok=True)
    meta = cache / "key.json"
    if not meta.exists():
        meta.write_text(key_material, encoding="utf-8")

    out_dir = Path(build_dir) if build_dir is not None else sketch.path / "build" / board_obj.name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"Cannot create the build folder {out_dir} ({exc}); pass build_dir "
                         f"(CLI: --build-dir) somewhere writable.") from None

    compiled = 0

    def ensure(sources: Sequence[str]) -> list[Path]:
        nonlocal compiled
        objects, tasks = [], []
        for rel in sources:
            obj = cache / (rel + ".o")
            objects.append(obj)
            if not obj.exists():
                tasks.append(lambda rel=rel, obj=obj: _compile(cmd_for(rel), str(src / rel), obj))
        compiled += len(tasks)
        _run_all(jobs, tasks)
        return objects

    lib_sources = sorted(set(core_sources(src)) | set(kernel_sources(src, sketch.add_calls)))
    lib_objects = ensure(lib_sources)

    # The sketch: the .ino becomes a .cpp with Arduino.h in front, as the Arduino IDE does.
    sketch_build = out_dir / "sketch"
    sketch_build.mkdir(parents=True, exist_ok=True)
    ino_cpp = sketch_build / f"{sketch.ino.name}.cpp"
    ino_text = sketch.ino.read_text("utf-8", errors="replace")
    ino_cpp.write_text(f'#include <Arduino.h>\n#line 1 "{sketch.ino}"\n{ino_text}',
                       encoding="utf-8")
    sketch_inc = [f"-I{sketch.path}"]
    own = [(str(ino_cpp), sketch_build / "sketch.ino.o")]
    own += [(str(p), sketch_build / f"{p.name}.o") for p in sketch.sources]
    own += [(str(firmware / n), out_dir / "core" / f"{n}.o")
            for n in ("efk_core.cpp", "startup_cortexm.c")]
    _run_all(jobs, [lambda s=s, o=o: _compile([*cmd_for(s, sketch_base), *board_define,
                                               *sketch_inc], s, o)
                    for s, o in own])

    ld = out_dir / "efk_cortexm.ld"
    _linker_script(board_obj, ld, stack_bytes)
    elf = out_dir / f"{sketch.path.name}.elf"

    def link(objects: Sequence[Path]) -> subprocess.CompletedProcess:
        archive = out_dir / "libtflm.a"
        if archive.exists():
            archive.unlink()
        rsp = out_dir / "libtflm.rsp"
        rsp.write_text("\n".join(str(o) for o in objects), encoding="utf-8")
        ar = subprocess.run([_tool("arm-none-eabi-ar"), "rcs", str(archive), f"@{rsp}"],
                            capture_output=True, text=True, check=False)
        if ar.returncode != 0:
            raise BuildError(f"arm-none-eabi-ar failed: {ar.stderr.strip()}")
        return subprocess.run(
            [cxx, *board_obj.cpu_flags, "-Os", "-Wl,--gc-sections", f"-T{ld}",
             "--specs=nano.specs", "--specs=nosys.specs", "-nostartfiles",
             f"-Wl,-Map={out_dir / 'link.map'}", *[str(o) for _, o in own], str(archive),
             "-lm", "-o", str(elf)],
            capture_output=True, text=True, check=False)

    proc = link(lib_objects)
    missing = _undefined_symbols(proc.stderr) if proc.returncode != 0 else []
    hooks = [m for m in missing if m in ("DebugLog", "tflite::InitializeTarget()")]
    if hooks:
        raise BuildError(
            f"Linking {elf.name} failed: the sketch defines no {' and no '.join(hooks)}. The "
            f"library defines them only for the Nano 33 BLE, so every other board's sketch "
            f"must (a sketch effkeras writes has them in efk_tflm_port.cpp: regenerate it with "
            f"`effkeras sketch`, or copy that file into {sketch.path})."
        )
    if missing:
        # The selection missed a source. CMSIS-NN names each file after its function: add
        # those first; if symbols are still missing, link the whole library (cached too).
        cmsis = {p.stem: p.relative_to(src).as_posix()
                 for p in (src / "third_party/cmsis_nn/Source").rglob("*.c")}
        extra = {cmsis.get(sym, cmsis.get(sym.removesuffix("_get_buffer_size"))) for sym in missing}
        extra.discard(None)
        if extra:
            lib_sources = sorted(set(lib_sources) | extra)  # type: ignore[arg-type]
            lib_objects = ensure(lib_sources)
            proc = link(lib_objects)
        if proc.returncode != 0 and _undefined_symbols(proc.stderr):
            lib_sources = all_sources(src)
            lib_objects = ensure(lib_sources)
            proc = link(lib_objects)
    if proc.returncode != 0:
        if "does not fit the board's RAM" in proc.stderr or "overflowed" in proc.stderr:
            raise BuildError(f"The sketch does not fit {board_obj.title}: "
                             f"{_first_errors(proc.stderr)}")
        raise BuildError(f"Linking {elf.name} for {board_obj.title} failed:\n"
                         f"{_first_errors(proc.stderr)}")
    text, data, bss = _size(elf)
    version = library_version(lib)
    return BuildResult(
        elf=str(elf), board=board_obj, text=text, data=data, bss=bss, library=str(lib),
        library_version=version, tflm_sync=TFLM_SYNC_DATES.get(version, ""),
        ops=list(sketch.add_calls), library_sources=lib_sources, compiled=compiled,
        cache_dir=str(cache), seconds=time.monotonic() - started,
        flags=[*sketch_base, *board_define, *_CXX_FLAGS], fallback=missing,
    )


__all__ = [
    "BUILD_BOARDS",
    "NANO33_ONLY_SOURCES",
    "BuildBoard",
    "BuildResult",
    "SketchFiles",
    "build_sketch",
    "build_status",
    "cache_root",
    "core_sources",
    "find_library",
    "get_build_board",
    "kernel_sources",
    "library_notes",
    "library_version",
    "read_sketch",
]
