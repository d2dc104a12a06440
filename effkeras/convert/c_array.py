"""TFLM C arrays (placeholder: being written)."""


def to_c_array(*args, **kwargs):  # pragma: no cover - placeholder
    raise NotImplementedError


def parse_c_array(*args, **kwargs):  # pragma: no cover - placeholder
    raise NotImplementedError
