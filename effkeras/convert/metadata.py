"""Named metadata entries of a .tflite file: read them, add one.

A TFLite model's ``metadata`` vector maps names to buffers of bytes; the converter writes
``min_runtime_version`` and ``CONVERSION_METADATA`` there, effkeras adds
``effkeras.projector`` for projection text models
(:func:`effkeras.deploy.featurizer.attach_projector`). LiteRT and TensorFlow Lite Micro
ignore entries they do not know (TFLM reads only ``OfflineMemoryAllocation``), so an
added entry changes no result. :func:`add_metadata` repacks the flatbuffer with the
schema's object API, with every buffer 16-byte aligned as the converter writes them.
Needs numpy, flatbuffers and the schema only, never TensorFlow.
"""

from __future__ import annotations

import os

from effkeras.convert.flatbuffer import TFLITE_IDENTIFIER, TFLiteModel, read_tflite, schema
from effkeras.convert.names import _aligned
from effkeras.errors import InvalidModelError

#: names TFLite itself gives meaning to; add_metadata refuses to overwrite them
RESERVED_NAMES = ("min_runtime_version", "CONVERSION_METADATA", "OfflineMemoryAllocation")


def read_metadata(tflite: bytes | bytearray | str | os.PathLike | TFLiteModel) -> dict[str, bytes]:
    """The model's metadata entries, ``{name: bytes}`` in file order.

    Args:
        tflite: .tflite bytes, a path, or a :class:`~effkeras.convert.TFLiteModel`.
    """
    return dict(read_tflite(tflite).metadata)


def add_metadata(tflite: bytes | bytearray, name: str, data: bytes) -> bytes:
    """Return ``tflite`` with the metadata entry ``name`` holding ``data``.

    An entry of that name is replaced; otherwise one is appended (with a new buffer).
    Operators, tensors, weights and signatures are unchanged, buffers stay 16-byte aligned.

    Args:
        tflite: a .tflite flatbuffer (checked like :func:`~effkeras.convert.read_tflite`).
        name: the entry's name (non-empty; not one of TFLite's own: ``RESERVED_NAMES``).
        data: its contents.

    Raises:
        InvalidModelError: ``tflite`` is not a valid model, or keeps its weights outside
            the flatbuffer (models over 2 GB).
        ValueError: a bad ``name`` or ``data``.
    """
    if not isinstance(tflite, bytes | bytearray):
        raise InvalidModelError(
            f"add_metadata takes the .tflite bytes. Received: {type(tflite).__name__}"
        )
    if not isinstance(name, str) or not name or name in RESERVED_NAMES:
        raise ValueError(
            f"name must be a non-empty string other than TFLite's own {RESERVED_NAMES}. "
            f"Received: name={name!r}"
        )
    if not isinstance(data, bytes | bytearray):
        raise ValueError(f"data must be bytes. Received: {type(data).__name__}")
    read_tflite(bytes(tflite))  # validates before the object API touches it
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if any(b.offset for b in model.buffers or []):
        raise InvalidModelError(
            "add_metadata does not rewrite models whose weights are stored after the "
            "flatbuffer (buffer offsets; models over 2 GB). Received a model with such buffers."
        )
    payload = bytearray(data)
    entries = list(model.metadata or [])
    existing = [m for m in entries if (m.name or b"").decode("utf-8", "replace") == name]
    used = {t.buffer for sg in model.subgraphs or [] for t in sg.tensors or []}
    used |= {m.buffer for m in entries if m not in existing}
    if existing and existing[0].buffer not in used | {0}:
        model.buffers[existing[0].buffer].data = payload
    else:
        buf = schema.BufferT()
        buf.data = payload
        model.buffers = [*(model.buffers or []), buf]
        entry = existing[0] if existing else schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        if not existing:
            entries.append(entry)
        model.metadata = entries
    model.buffers = [_aligned(b) for b in model.buffers]
    import flatbuffers

    builder = flatbuffers.Builder(len(tflite) + len(payload) + 64)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    out = bytes(builder.Output())
    read_tflite(out)
    return out
