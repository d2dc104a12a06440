"""The text projector: its specification, determinism, and bit-exact C (no TensorFlow)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from effkeras.convert.c_array import fnv1a32
from effkeras.text.c_projector import HostCProjector, c_sources, config_header, write_c_projector
from effkeras.text.projector import (
    Projector,
    calibration_data,
    fmix32,
    hash_keys,
    normalize_text,
    split_chars,
    tokenize_bytes,
)

# Test vectors: ASCII, accents, CJK, emoji (with ZWJ and skin tone), empty, whitespace,
# punctuation only, controls and NUL, invalid UTF-8, and very long strings.
VECTORS: list[str | bytes] = [
    "",
    " \t\r\n ",
    "Hello, World!",
    "FREE entry!!! Txt WIN to 80086 now; £1.50/msg",
    "Café naïve résumé Ångström ÉCOLE",
    "我爱北京天安门。你好，世界",
    "日本語のテキスト と English mixed",
    "emoji 😀👍🏽 👨‍👩‍👧 ok",
    "!!!???...",
    "tab\tsep\x00nul\x7fdel\x01ctl",
    b"bad utf8 \x80\xff\xc3 end \xe6\x88",
    b"\x80\x80leading continuation",
    "a" * 5000,
    ("word " * 3000).strip(),
    "é" * 700 + " " + "😀" * 300,
]

CONFIGS = [
    {},
    {"mode": "ternary", "bits": 16, "num_hashes": 4, "max_tokens": 8},
    {"ngram_range": (1, 3), "char_ngrams": (1, 4), "keep_punctuation": False, "seed": 123456789},
    {"ngram_range": None, "char_ngrams": (2, 2), "lowercase": False, "bits": 32, "num_hashes": 70},
    {
        "mode": "ternary",
        "bits": 3,
        "num_hashes": 5,
        "ngram_range": (2, 8),
        "char_ngrams": None,
        "max_tokens": 3,
    },
]

HAS_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no host C compiler (cc/gcc)")


# ---- the specification ----------------------------------------------------------------


def test_hash_primitives_match_published_values():
    # FNV-1a 32 of "a" and "foobar" (the reference test vectors of the FNV authors).
    from effkeras.text.projector import fnv1a32 as fnv

    assert fnv(b"") == 0x811C9DC5
    assert fnv(b"a") == 0xE40C292C
    assert fnv(b"foobar") == 0xBF9CF968
    assert fmix32(0) == 0
    assert fmix32(1) == 0x514E28B7  # MurmurHash3 fmix32(1)
    assert hash_keys(0, 3).tolist() == [fmix32(0x9E3779B9), fmix32(0x3C6EF372), fmix32(0xDAA66D2B)]


def test_tokenization_rules():
    assert tokenize_bytes(b"Hi, there!  x") == [b"Hi", b",", b"there", b"!", b"x"]
    assert tokenize_bytes(b"Hi, there!", keep_punctuation=False) == [b"Hi", b"there"]
    assert tokenize_bytes(b"a\x00b\x7fc\td") == [b"a", b"b", b"c", b"d"]
    # Non-ASCII bytes stay inside tokens (no Unicode punctuation tables).
    assert tokenize_bytes("我爱北京。ok".encode()) == ["我爱北京。ok".encode()]
    assert tokenize_bytes(b"") == [] and tokenize_bytes(b" \n ") == []


def test_characters_are_code_points_not_bytes():
    assert split_chars("naïve".encode()) == [b"n", b"a", "ï".encode(), b"v", b"e"]
    assert split_chars("😀👍🏽".encode()) == ["😀".encode(), "👍".encode(), "🏽".encode()]
    assert split_chars(b"\x80\x80x") == [b"\x80\x80", b"x"]  # stray continuation bytes
    assert b"".join(split_chars("日本語".encode())) == "日本語".encode()


def test_case_and_normalization_rules():
    p = Projector(8, 8)
    assert (p.project("HELLO World") == p.project("hello world")).all()
    # Only ASCII is lowercased without normalization: É and é differ.
    assert not (p.project("École") == p.project("école")).all()
    n = Projector(8, 8, normalization="nfkc_casefold")
    assert (n.project("École") == n.project("école")).all()
    assert (n.project("ＦＲＥＥ ｃａｌｌ") == n.project("free call")).all()  # full-width
    assert normalize_text("Straße ﬁle") == "strasse file"
    # For ASCII text the two normalizations hash the same bytes.
    assert p.to_bytes("Call NOW 0800!") == n.to_bytes("Call NOW 0800!") == b"call now 0800!"
    assert Projector(8, 8, lowercase=False).to_bytes("AbC") == b"AbC"


def test_output_values_shapes_and_sequence_rows():
    p = Projector(8, 4)
    out = p.project("free prize call now")
    assert out.dtype == np.int8 and out.shape == (32,)
    assert set(np.unique(out)) <= {-1, 1}  # binary SimHash: no ties with 4 tokens here
    assert (p.project("") == 0).all()
    t = Projector(4, 8, mode="ternary", ngram_range=(1, 1), char_ngrams=None, max_tokens=3)
    rows = t.project("alpha beta gamma delta")
    assert rows.shape == (3, 32)
    # One feature per token in this config: row i is that token's own ternary digits, and
    # truncation keeps the first three tokens.
    for i, word in enumerate(["alpha", "beta", "gamma"]):
        assert (rows[i] == t.project(word)[0]).all()
    assert (t.project("alpha")[1:] == 0).all()  # padding rows are zero
    assert 0 in rows and 1 in rows and -1 in rows  # ternary: zeros appear
    batch = t(["alpha", "beta gamma"])
    assert batch.shape == (2, 3, 32) and batch.dtype == np.float32


def test_projection_is_locality_sensitive():
    p = Projector(64, 16)
    a = p.project("win a free iphone now, call 0800 123").astype(int)
    b = p.project("win a free iphone today, call 0800 123").astype(int)
    c = p.project("see you at the pub after work tonight").astype(int)
    assert (a == b).mean() > 0.7 > (a == c).mean()


def test_golden_values_pin_the_specification():
    # Same on every platform, Python version and hash seed; a change here breaks every
    # deployed model and the C projector.
    text = "Hello, World! Café 我爱北京 😀"
    assert fnv1a32(Projector(8, 16).project(text).tobytes()) == 2588559224
    seq = Projector(4, 8, mode="ternary", max_tokens=5, ngram_range=(1, 2))
    assert fnv1a32(seq.project(text).tobytes()) == 2266358534


def test_deterministic_across_python_hash_seeds():
    code = (
        "from effkeras.text.projector import Projector;"
        "from effkeras.convert.c_array import fnv1a32;"
        "print(fnv1a32(Projector(16, 8, char_ngrams=(1, 3)).project('Déjà vu 😀 ok ok').tobytes()))"
    )
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    assert len(outs) == 1


def test_config_round_trip_and_errors():
    p = Projector(
        12,
        7,
        mode="ternary",
        max_tokens=9,
        char_ngrams=(2, 4),
        seed=7,
        normalization="nfkc_casefold",
    )
    q = Projector.from_config(p.get_config())
    assert q == p and (q.project("abc déf") == p.project("abc déf")).all()
    assert Projector(seed=1) != Projector(seed=2)
    with pytest.raises(ValueError, match=r"bits=17"):
        Projector(4, 17, mode="ternary")
    with pytest.raises(ValueError, match=r"mode='quaternary'"):
        Projector(mode="quaternary")
    with pytest.raises(ValueError, match=r"ngram_range=\(2, 1\)"):
        Projector(ngram_range=(2, 1))
    with pytest.raises(ValueError, match="both None"):
        Projector(ngram_range=None, char_ngrams=None)
    with pytest.raises(ValueError, match="seed=-1"):
        Projector(seed=-1)
    with pytest.raises(TypeError, match="int"):
        Projector().project(5)


def test_calibration_data_pins_the_input_range():
    x = np.sign(np.random.default_rng(0).standard_normal((10, 6))).astype(np.float32)
    c = calibration_data(x)
    assert c.shape == (11, 6)
    lo, hi = float(c.min()), float(c.max())
    scale = (hi - lo) / 255.0
    assert scale == pytest.approx(1 / 127) and round(-128 - lo / scale) == 0
    with pytest.raises(ValueError, match="shape"):
        calibration_data(np.zeros((0, 3)))


# ---- the C projector ------------------------------------------------------------------


@needs_cc
@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default"
)
def test_c_projector_is_bit_exact(config):
    p = Projector(**config)
    c = HostCProjector(p)
    try:
        for text in VECTORS:
            data = p.to_bytes(text)
            out, n_tokens = c.project_bytes(data)
            expected = p.project(text)
            assert out.shape == expected.shape
            assert (out == expected).all(), f"C and Python differ on {text[:40]!r}"
            assert n_tokens == len(p.tokens(text))
    finally:
        c.close()


@needs_cc
def test_c_projector_matches_on_normalized_unicode():
    p = Projector(16, 8, normalization="nfkc_casefold")
    c = HostCProjector(p)
    try:
        for text in ("ÉCOLE Straße", "ＦＲＥＥ", "Ǆemo ﬁ"):
            assert (c.project(text) == p.project(text)).all()
        # The C side itself does only ASCII lowercasing: raw non-normalized bytes differ.
        raw = c.project_bytes("ÉCOLE".encode())[0]
        assert not (raw == p.project("ÉCOLE")).all()
    finally:
        c.close()


def test_c_sources_are_portable_c99():
    src = c_sources()
    text = src["efk_projector.c"] + src["efk_projector.h"]
    includes = set(re.findall(r"#include [<\"]([^>\"]+)[>\"]", text))
    assert includes == {"efk_projector.h", "stddef.h", "stdint.h", "string.h"}
    assert not re.search(
        r"\b(malloc|calloc|realloc|free|printf|float|double)\b", src["efk_projector.c"]
    )
    header = config_header(Projector(8, 8, max_tokens=4, seed=99))
    assert "#define EFK_PROJ_OUTPUT_SIZE 256" in header
    assert "99u,  /* seed */" in header


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_c_projector_compiles_strictly_and_runs_from_a_c_main(tmp_path):
    p = Projector(8, 8, mode="ternary", max_tokens=4, char_ngrams=(2, 3))
    write_c_projector(p, tmp_path)
    with pytest.raises(Exception, match="exists"):
        write_c_projector(p, tmp_path)
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include <string.h>\n#include "efk_projector_config.h"\n'
        "int main(int argc, char** argv) {\n"
        "  static int8_t out[EFK_PROJ_OUTPUT_SIZE]; static int32_t s[EFK_PROJ_SCRATCH_SIZE];\n"
        "  int32_t n = efk_project(&kEfkProjectorConfig, (const uint8_t*)argv[1], strlen(argv[1]), out, s);\n"
        '  printf("%d", (int)n); for (int i = 0; i < EFK_PROJ_OUTPUT_SIZE; ++i) printf(" %d", out[i]);\n'
        "  return argc > 1 ? 0 : 1;\n}\n"
    )
    exe = tmp_path / "proj"
    subprocess.run(
        ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wno-sign-conversion",
         str(tmp_path / "efk_projector.c"), str(tmp_path / "main.c"), "-o", str(exe)],
        check=True, capture_output=True,
    )  # fmt: skip
    text = "Déjà vu, 日本 😀 ok"
    values = [
        int(v)
        for v in subprocess.run(
            [str(exe), text], capture_output=True, text=True, check=True
        ).stdout.split()
    ]
    assert values[0] == len(p.tokens(text))
    assert values[1:] == p.project(text).reshape(-1).tolist()


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
def test_c_projector_compiles_for_cortex_m4(tmp_path):
    write_c_projector(Projector(), tmp_path)
    obj = tmp_path / "efk_projector.o"
    subprocess.run(
        ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-std=c99", "-Os", "-Wall", "-Wextra",
         "-Werror", "-pedantic", "-ffreestanding", "-c", str(tmp_path / "efk_projector.c"), "-o", str(obj)],
        check=True, capture_output=True,
    )  # fmt: skip
    symbols = subprocess.run(
        ["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r" T efk_project$", symbols, re.M)
    undefined = set(re.findall(r"^\s+U (\w+)$", symbols, re.M))
    assert undefined <= {"memset"}, undefined  # no libc beyond <string.h>
    size = subprocess.run(
        ["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    text_bytes = int(size.splitlines()[1].split()[0])
    assert text_bytes < 4096  # the whole projector is a few KB of flash


def test_sms_loader_finds_and_splits(tmp_path, monkeypatch):
    import gzip

    from effkeras.errors import DatasetError
    from effkeras.text.datasets import load_sms_spam

    lines = [f"{'spam' if i % 5 == 0 else 'ham'}\tmessage {i} é" for i in range(50)]
    folder = tmp_path / "sms_spam"
    folder.mkdir()
    with gzip.open(folder / "SMSSpamCollection.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    monkeypatch.setenv("EFFKERAS_DATA_DIR", str(tmp_path))
    a, b = load_sms_spam(), load_sms_spam(folder)
    assert len(a.x_train) + len(a.x_test) == 50 and int(a.y_test.sum()) == 2
    assert list(a.x_test) == list(b.x_test)
    assert list(load_sms_spam(seed=1).x_test) != list(a.x_test)
    assert a.class_names == ["ham", "spam"]
    with pytest.raises(DatasetError, match="not found"):
        load_sms_spam(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    Path(tmp_path / "bad" / "SMSSpamCollection").write_text("maybe\tx\n")
    with pytest.raises(DatasetError, match="line 1"):
        load_sms_spam(tmp_path / "bad")


def test_device_side_needs_neither_training_code_nor_tensorflow():
    """The projector and the C generator live in effkeras.deploy; importing the text sketch
    loads no effkeras.text, Keras or TensorFlow. The old paths are the same objects."""
    code = (
        "import sys\n"
        "import effkeras.deploy.text_sketch, effkeras.deploy.featurizer, effkeras.deploy.c_featurizer\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'keras')\n"
        "             or k == 'effkeras.text' or k.startswith('effkeras.text.'))\n"
        "print(bad)\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": root},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
    from effkeras.deploy import c_featurizer, featurizer
    from effkeras.text import c_projector, projector

    assert projector.Projector is featurizer.Projector
    assert c_projector.HostCProjector is c_featurizer.HostCProjector
    assert c_projector.config_header is c_featurizer.config_header
    assert set(c_featurizer.c_sources()) == {"efk_projector.h", "efk_projector.c"}
