"""The deep flatbuffer check: every field of a real int8 model edited as a fuzzer would, and
each edit refused with the first problem and its place, before any interpreter sees it."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

from effkeras.convert import read_tflite
from effkeras.convert.flatbuffer import TFLITE_IDENTIFIER, schema
from effkeras.errors import InvalidModelError


def _model(tflite):
    return schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)


def _pack(m) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=TFLITE_IDENTIFIER)
    return bytes(b.Output())


def _conv(m):
    sg = m.subgraphs[0]
    for i, op in enumerate(sg.operators):
        if m.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.CONV_2D:
            return i, op, sg
    raise AssertionError("no CONV_2D")


def _kernel(m):
    _, op, sg = _conv(m)
    return op.inputs[1], sg.tensors[op.inputs[1]]


def edit_scale_nan(m):
    _, t = _kernel(m)
    t.quantization.scale[0] = np.nan


def edit_scale_zero(m):
    _, t = _kernel(m)
    t.quantization.scale[1] = 0.0


def edit_no_zero_points(m):
    _, t = _kernel(m)
    t.quantization.zeroPoint = []


def edit_fewer_scales(m):
    _, t = _kernel(m)
    t.quantization.scale = t.quantization.scale[:3]
    t.quantization.zeroPoint = t.quantization.zeroPoint[:3]


def edit_zero_point_out_of_range(m):
    sg = m.subgraphs[0]
    t = sg.tensors[sg.inputs[0]]
    t.quantization.zeroPoint[0] = 300


def edit_empty_shape(m):
    _, op, sg = _conv(m)
    sg.tensors[op.inputs[0]].shape = np.array([], np.int32)
    sg.tensors[op.inputs[0]].shapeSignature = None


def edit_huge_shape(m):
    sg = m.subgraphs[0]
    t = sg.tensors[sg.inputs[0]]
    t.shape[0] = 1 << 30
    t.shapeSignature = None


def edit_short_buffer(m):
    _, t = _kernel(m)
    buf = m.buffers[t.buffer]
    buf.data = buf.data[:14]


def edit_wrong_options(m):
    _, op, _ = _conv(m)
    op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    op.builtinOptions = schema.SoftmaxOptionsT()


def edit_no_options(m):
    _, op, _ = _conv(m)
    op.builtinOptionsType = schema.BuiltinOptions.NONE
    op.builtinOptions = None


def edit_zero_stride(m):
    _, op, _ = _conv(m)
    op.builtinOptions.strideW = 0


def edit_missing_input(m):
    _, op, _ = _conv(m)
    op.inputs = op.inputs[:1]


def edit_no_model_input(m):
    m.subgraphs[0].inputs = np.array([], np.int32)


def edit_constant_input(m):
    sg = m.subgraphs[0]
    k, _ = _kernel(m)
    sg.inputs = np.array([k], np.int32)


CASES = [
    (edit_scale_nan, r"tensor \d+ '[^']*': quantization scale 0 is nan \(scales must be finite and positive\)"),
    (edit_scale_zero, r"quantization scale 1 is 0.0"),
    (edit_no_zero_points, r"tensor \d+ '[^']*': 0 zero points for \d+ quantization scales"),
    (edit_fewer_scales, r"3 quantization scales for \d+ channels \(dimension 0\)"),
    (edit_zero_point_out_of_range, r"zero point 300 is outside INT8's range -128..127"),
    (edit_empty_shape, r"operator \d+ \(CONV_2D\): input 0 tensor \d+ .* has shape \[\], the op needs 4 dimensions"),
    (edit_huge_shape, r"over the 1,073,741,824-byte limit for one tensor"),
    (edit_short_buffer, r"buffer \d+ holds 14 bytes, but shape \[.*\] of INT8 needs \d+"),
    (edit_wrong_options, r"operator \d+ \(CONV_2D\): options table SoftmaxOptions, the op takes Conv2DOptions"),
    (edit_no_options, r"operator \d+ \(CONV_2D\): no Conv2DOptions"),
    (edit_zero_stride, r"operator \d+ \(CONV_2D\): strideW 0 \(must be at least 1\)"),
    (edit_missing_input, r"operator \d+ \(CONV_2D\): 1 inputs, the op needs 2"),
    (edit_no_model_input, r"the model declares no input tensor"),
    (edit_constant_input, r"input tensor \d+ .* is a constant"),
]


def test_the_unedited_model_passes(int8_io_tflite):
    m = _model(int8_io_tflite)
    assert read_tflite(_pack(m)).op_counts == read_tflite(int8_io_tflite).op_counts


@pytest.mark.parametrize("edit,message", CASES, ids=[c[0].__name__ for c in CASES])
def test_each_edit_is_refused_with_its_place(int8_io_tflite, edit, message):
    m = _model(int8_io_tflite)
    edit(m)
    with pytest.raises(InvalidModelError, match=message):
        read_tflite(_pack(m))


@pytest.mark.parametrize("edit,message", CASES[:6], ids=[c[0].__name__ for c in CASES[:6]])
def test_the_cli_answers_exit_2_with_one_line(tmp_path, int8_io_tflite, edit, message, capsys):
    from effkeras.cli import main

    m = _model(int8_io_tflite)
    edit(m)
    path = tmp_path / "bad.tflite"
    path.write_bytes(_pack(m))
    for cmd in (["inspect", str(path)], ["profile", str(path)], ["sketch", str(path), "--out", str(tmp_path / "s")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("effkeras: error:") and "is invalid:" in err[0], err
