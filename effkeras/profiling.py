"""Profile (placeholder: being written)."""


class ProfileReport:  # pragma: no cover - placeholder
    pass


def profile(*args, **kwargs):  # pragma: no cover - placeholder
    raise NotImplementedError
