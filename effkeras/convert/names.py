"""Drop the debug names a converted .tflite carries (tensor names are most of a tiny model).

The TFLite converter names every tensor after its Keras scope path, and a fused op's
tensor after all of the ops it fused, joined by ``;``: in a 15 KB int8 CNN about a third
of the file is such strings. Neither LiteRT nor TensorFlow Lite Micro needs them.
:func:`strip_tensor_names` renames every intermediate tensor ``t<index>`` and keeps the
model's input and output names (and its signature), so code that looks tensors up by
their I/O names keeps working. Weights, operators, quantization and metadata are
unchanged; weight buffers stay 16-byte aligned, as the converter writes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from effkeras.convert.flatbuffer import TFLITE_IDENTIFIER, read_tflite, schema
from effkeras.errors import InvalidModelError

#: alignment of buffer data, as the TFLite schema's ``force_align: 16`` asks
BUFFER_ALIGNMENT = 16


class _AlignedBufferT(schema.BufferT):
    """A BufferT whose data vector is packed with the schema's 16-byte alignment
    (the generated Python object API ignores ``force_align``)."""

    def Pack(self, builder: Any) -> int:  # noqa: N802 - the flatbuffers API's name
        data = None
        if self.data is not None:
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _aligned(buf: Any) -> _AlignedBufferT:
    new = _AlignedBufferT()
    new.data, new.offset, new.size = buf.data, buf.offset, buf.size
    return new


def strip_tensor_names(tflite: bytes | bytearray) -> bytes:
    """Return ``tflite`` with its intermediate tensors renamed ``t<index>``.

    Args:
        tflite: a .tflite flatbuffer (checked like :func:`~effkeras.convert.read_tflite`).

    Returns:
        The smaller flatbuffer. Input and output tensors keep their names; operators,
        weights, quantization parameters, signatures and metadata are the same.

    Raises:
        InvalidModelError: ``tflite`` is not a valid .tflite flatbuffer, or keeps its
            weights outside the flatbuffer (models over 2 GB), which this does not rewrite.
    """
    if not isinstance(tflite, bytes | bytearray):
        raise InvalidModelError(
            f"strip_tensor_names takes the .tflite bytes. Received: {type(tflite).__name__}"
        )
    read_tflite(bytes(tflite))  # validates before the object API touches it
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if any(b.offset for b in model.buffers or []):
        raise InvalidModelError(
            "strip_tensor_names does not rewrite models whose weights are stored after the "
            "flatbuffer (buffer offsets; models over 2 GB). Received a model with such buffers."
        )
    for subgraph in model.subgraphs or []:
        keep = set(subgraph.inputs if subgraph.inputs is not None else []) | set(
            subgraph.outputs if subgraph.outputs is not None else []
        )
        for i, tensor in enumerate(subgraph.tensors or []):
            if i not in keep:
                tensor.name = f"t{i}"
    model.buffers = [_aligned(b) for b in model.buffers or []]
    import flatbuffers

    builder = flatbuffers.Builder(len(tflite))
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    out = bytes(builder.Output())
    read_tflite(out)
    return out
