"""The text projector as portable C: moved to :mod:`effkeras.deploy.c_featurizer`.

The C sources (``effkeras/deploy/c/efk_projector.{h,c}``), :func:`config_header`,
:func:`c_sources`, :func:`write_c_projector` and :class:`HostCProjector` are device code
and live with the rest of it; this module keeps the old import path working.
"""

from __future__ import annotations

from effkeras.deploy.c_featurizer import (
    CONFIG_HEADER,
    SOURCE_FILES,
    HostCProjector,
    c_sources,
    config_header,
    write_c_projector,
)

__all__ = [
    "CONFIG_HEADER",
    "SOURCE_FILES",
    "HostCProjector",
    "c_sources",
    "config_header",
    "write_c_projector",
]
