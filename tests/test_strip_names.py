"""strip_tensor_names / to_tflite(strip_names=True): smaller files, same model."""

from __future__ import annotations

import numpy as np
import pytest


def _buffer_starts(data: bytes) -> list[int]:
    from effkeras.convert.flatbuffer import schema

    m = schema.Model.GetRootAsModel(data, 0)
    starts = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        o = b._tab.Offset(4)
        if o and b.DataLength():
            starts.append(b._tab.Vector(o))
    return starts


@pytest.mark.parametrize("fixture", ["float_tflite", "int8_io_tflite"])
def test_same_model_smaller_file(request, digits, fixture):
    from effkeras.convert import read_tflite, strip_tensor_names
    from effkeras.runtime import LiteRTRunner, TFLMRunner

    data = request.getfixturevalue(fixture)
    small = strip_tensor_names(data)
    assert len(small) < len(data)
    before, after = read_tflite(data), read_tflite(small)
    assert [t.name for t in after.inputs] == [t.name for t in before.inputs]
    assert [t.name for t in after.outputs] == [t.name for t in before.outputs]
    assert [op.name for op in after.ops] == [op.name for op in before.ops]
    names = [t.name for t in after.tensors]
    assert any(n.startswith("t") and n[1:].isdigit() for n in names)
    assert all(";" not in n for n in names if n not in {t.name for t in after.inputs})
    starts = _buffer_starts(small)
    assert starts and all(s % 16 == 0 for s in starts)  # weights stay 16-byte aligned
    x = digits[2][:32]
    if fixture == "int8_io_tflite":
        q = before.inputs[0].quantization
        x = np.clip(np.round(x / q.scales[0] + q.zero_points[0]), -128, 127).astype(np.int8)
    np.testing.assert_array_equal(LiteRTRunner(small).predict(x), LiteRTRunner(data).predict(x))
    if fixture == "int8_io_tflite":
        np.testing.assert_array_equal(TFLMRunner(small).predict(x), TFLMRunner(data).predict(x))


def test_to_tflite_strip_names(digits_model, digits):
    from effkeras.convert import to_tflite

    plain = to_tflite(digits_model)
    small = to_tflite(digits_model, strip_names=True)
    assert len(small) < len(plain)


def test_bad_input():
    from effkeras.convert import strip_tensor_names
    from effkeras.errors import InvalidModelError

    with pytest.raises(InvalidModelError, match="Received: str"):
        strip_tensor_names("model.tflite")
    with pytest.raises(InvalidModelError):
        strip_tensor_names(b"not a flatbuffer at all")


def test_cli_convert_strip_names(digits_model, tmp_path):
    from effkeras.cli import main

    path = tmp_path / "m.keras"
    digits_model.save(path)
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    assert main(["convert", str(path), "-o", str(a)]) == 0
    assert main(["convert", str(path), "-o", str(b), "--strip-names"]) == 0
    assert b.stat().st_size < a.stat().st_size
