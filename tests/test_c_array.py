"""C arrays for TFLM: round trip, compile with g++ and arm-none-eabi-g++, link, checksum."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from importlib import resources

import pytest

from effkeras.convert import parse_c_array, read_tflite, to_c_array
from effkeras.convert.c_array import BYTES_PER_LINE, c_identifier, fnv1a32
from effkeras.errors import InvalidModelError, OutputExistsError

ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-std=c++11", "-Wall", "-Werror"]
CPP_KEYWORDS = {"class", "int", "new", "delete", "template", "namespace", "auto", "register"}


def _run(cmd: list[str], cwd: str | os.PathLike | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _checksum_header() -> str:
    """The FNV-1a C code the generated sketches use."""
    return os.fspath(resources.files("effkeras.deploy").joinpath("templates", "efk_checksum.h"))


# ---- text --------------------------------------------------------------------------------


def test_round_trip(int8_io_tflite):
    files = to_c_array(int8_io_tflite, "digits")
    assert parse_c_array(files.source) == int8_io_tflite
    assert files.size_bytes == len(int8_io_tflite)


def test_round_trip_from_path_and_model(int8_tflite, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(int8_tflite)
    from_path = to_c_array(path, "m")
    from_model = to_c_array(read_tflite(int8_tflite), "m")
    assert parse_c_array(from_path.source) == int8_tflite
    assert from_model.source.split("\n", 1)[1] == from_path.source.split("\n", 1)[1]


def test_names_and_layout(int8_io_tflite):
    f = to_c_array(int8_io_tflite, "digits")
    assert (f.header_name, f.source_name) == ("digits.h", "digits.cc")
    assert (f.array_name, f.len_name) == ("g_digits_data", "g_digits_data_len")
    assert "alignas(16) const unsigned char g_digits_data[] = {" in f.source
    assert f"const unsigned int g_digits_data_len = {len(int8_io_tflite)};" in f.source
    assert '#include "digits.h"' in f.source
    assert "extern const unsigned char g_digits_data[];" in f.header
    assert "extern const unsigned int g_digits_data_len;" in f.header
    assert re.search(r"#ifndef (\w+)\n#define \1\n", f.header)
    assert f.header.rstrip().endswith("#endif  // EFFKERAS_DIGITS_H_")
    rows = [ln for ln in f.source.splitlines() if ln.startswith("    0x")]
    assert all(len(re.findall(r"0x[0-9a-f]{2}", r)) == BYTES_PER_LINE for r in rows[:-1])
    assert 1 <= len(re.findall(r"0x", rows[-1])) <= BYTES_PER_LINE
    assert len(rows) == -(-len(int8_io_tflite) // BYTES_PER_LINE)


def test_comment_block_states_size_hash_and_io(int8_io_tflite, int8_tflite):
    model = read_tflite(int8_io_tflite)
    f = to_c_array(model, "digits")
    for text in (f.header, f.source):
        assert f"// Model: {model.size_bytes} bytes, sha256 {model.sha256}" in text
        assert f"0x{fnv1a32(model.data):08x}" in text
    inp, out = model.inputs[0], model.outputs[0]
    for kind, t in (("Input", inp), ("Output", out)):
        line = next(ln for ln in f.header.splitlines() if ln.startswith(f"// {kind} 0"))
        assert "int8" in line
        assert "[" + ", ".join(str(d) for d in t.shape) + "]" in line
        scale = float(re.search(r"scale ([0-9.e-]+)", line).group(1))
        zero_point = int(re.search(r"zero point (-?\d+)", line).group(1))
        assert scale == pytest.approx(float(t.quantization.scales[0]), rel=1e-7)
        assert zero_point == int(t.quantization.zero_points[0])
    float_io = to_c_array(int8_tflite, "f")
    assert re.search(r"// Input 0 .*float32 \[1, 8, 8, 1\], not quantized", float_io.header)
    assert hashlib.sha256(parse_c_array(float_io.source)).hexdigest() in float_io.header


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("digits", "digits"),
        ("my-model 2", "my_model_2"),
        ("3d", "model_3d"),
        ("class", "class_"),
        ("int", "int_"),
        ("setup", "setup_"),
        ("", "model"),
        ("__init__", "init"),
        ("a__b", "a_b"),
        ("modèle/v1.0", "mod_le_v1_0"),
        ("Model", "Model"),
    ],
)
def test_c_identifier(name, expected):
    ident = c_identifier(name)
    assert ident == expected
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ident)
    assert "__" not in ident
    assert ident not in CPP_KEYWORDS
    assert c_identifier(name) == ident  # deterministic


def test_c_identifier_rejects_non_strings():
    with pytest.raises(TypeError, match="Received: name=3"):
        c_identifier(3)


def test_invalid_model_and_extension(int8_io_tflite):
    with pytest.raises(InvalidModelError):
        to_c_array(b"not a flatbuffer at all", "x")
    with pytest.raises(ValueError, match="source_ext"):
        to_c_array(int8_io_tflite, "x", source_ext=".c")
    assert to_c_array(int8_io_tflite, "x", source_ext=".cpp").source_name == "x.cpp"


def test_parse_c_array_rejects_garbage(int8_io_tflite):
    src = to_c_array(int8_io_tflite, "m").source
    with pytest.raises(ValueError, match="No 'unsigned char"):
        parse_c_array("int x = 3;")
    with pytest.raises(ValueError, match="not an integer literal"):
        parse_c_array(src.replace("0x00,", "0xzz,", 1))
    with pytest.raises(ValueError, match="not a byte"):
        parse_c_array(src.replace("0x00,", "0x100,", 1))
    # A line dropped from the array: the _len constant no longer agrees.
    lines = src.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("    0x"))
    with pytest.raises(ValueError, match="truncated"):
        parse_c_array("\n".join(lines[:i] + lines[i + 1 :]))
    assert parse_c_array("const unsigned char a[] = { 1, 0x02, 255 };") == b"\x01\x02\xff"


def test_fnv1a32_known_vectors():
    # Published FNV-1a 32-bit test vectors.
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968


# ---- files -------------------------------------------------------------------------------


def test_write_refuses_to_overwrite(int8_io_tflite, tmp_path):
    f = to_c_array(int8_io_tflite, "m")
    paths = f.write(tmp_path / "out")
    assert [os.path.basename(p) for p in paths] == ["m.h", "m.cc"]
    assert parse_c_array(open(paths[1]).read()) == int8_io_tflite
    with pytest.raises(OutputExistsError, match=r"m\.h exists.*force=True"):
        f.write(tmp_path / "out")
    # Only the source exists: refused before anything is written.
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.cc").write_text("keep me")
    with pytest.raises(OutputExistsError, match=r"m\.cc exists.*--force"):
        f.write(other)
    assert not (other / "m.h").exists()
    assert (other / "m.cc").read_text() == "keep me"
    f.write(other, force=True)
    assert parse_c_array((other / "m.cc").read_text()) == int8_io_tflite


# ---- compilers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["digits", "my-model 2", "3d", "class"])
def test_compiles_with_host_gxx(int8_io_tflite, tmp_path, name):
    f = to_c_array(int8_io_tflite, name)
    f.write(tmp_path)
    obj = tmp_path / "model.o"
    _run(["g++", "-std=c++11", "-Wall", "-Werror", "-c", f.source_name, "-o", str(obj)], tmp_path)
    symbols = _run(["nm", str(obj)])
    assert re.search(rf"^\S+ [RD] {f.array_name}$", symbols, re.M), symbols
    assert re.search(rf"^\S+ [RD] {f.len_name}$", symbols, re.M), symbols


def test_cross_compiles_for_cortex_m4(int8_io_tflite, tmp_path):
    f = to_c_array(int8_io_tflite, "my-model 2")
    f.write(tmp_path)
    obj = tmp_path / "model.o"
    _run(["arm-none-eabi-g++", *ARM_FLAGS, "-c", f.source_name, "-o", str(obj)], tmp_path)
    # text + data (the array lands in .rodata, counted as text) covers the model.
    size = _run(["arm-none-eabi-size", str(obj)]).splitlines()[1].split()
    text, data = int(size[0]), int(size[1])
    assert text + data >= len(int8_io_tflite)
    symbols = _run(["arm-none-eabi-nm", "-S", str(obj)])
    match = re.search(rf"^(\w+) (\w+) [RD] {f.array_name}$", symbols, re.M)
    assert match, symbols
    assert int(match.group(2), 16) == len(int8_io_tflite)  # the symbol's size
    assert re.search(rf"^\w+ \w+ [RD] {f.len_name}$", symbols, re.M)
    # alignas(16): the section holding the array is aligned to at least 2**4.
    headers = _run(["arm-none-eabi-objdump", "-h", str(obj)])
    rodata = re.search(r"\.rodata\S*\s+([0-9a-f]+)\s+\S+\s+\S+\s+\S+\s+2\*\*(\d+)", headers)
    assert rodata and int(rodata.group(2)) >= 4, headers


def test_without_its_header_the_array_has_no_external_symbol(int8_io_tflite, tmp_path):
    """Why the .cc includes its .h: a namespace-scope const is otherwise internal."""
    f = to_c_array(int8_io_tflite, "m")
    (tmp_path / "m.cc").write_text(f.source.replace('#include "m.h"', ""))
    _run(["arm-none-eabi-g++", *ARM_FLAGS, "-c", "m.cc", "-o", "m.o"], tmp_path)
    symbols = _run(["arm-none-eabi-nm", "m.o"], tmp_path)
    assert not re.search(rf" [RD] {f.array_name}$", symbols, re.M)


def test_host_program_links_the_array_and_matches_python_checksum(int8_io_tflite, tmp_path):
    f = to_c_array(int8_io_tflite, "my-model 2")
    f.write(tmp_path)
    (tmp_path / "main.cc").write_text(
        "#include <cstdio>\n"
        f'#include "{_checksum_header()}"\n'
        f'#include "{f.header_name}"\n'
        "int main() {\n"
        f'  std::printf("%u %08x %u\\n", {f.len_name},\n'
        f"              static_cast<unsigned>(EfkFnv1a32({f.array_name}, {f.len_name})),\n"
        f"              static_cast<unsigned>(reinterpret_cast<unsigned long>({f.array_name}) % 16));\n"
        "  return 0;\n"
        "}\n"
    )
    _run(
        ["g++", "-std=c++11", "-Wall", "-Werror", "main.cc", f.source_name, "-o", "prog"],
        tmp_path,
    )
    length, checksum, misalign = _run([str(tmp_path / "prog")]).split()
    assert int(length) == len(int8_io_tflite)
    assert int(checksum, 16) == fnv1a32(int8_io_tflite) == f.checksum
    assert int(misalign) == 0
