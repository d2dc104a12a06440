"""Bad input to a bench script: a clear message and exit status 2, as argparse and the
``effkeras`` CLI give, instead of exit status 1 or a traceback from deep inside Keras.

Raise :class:`BadInput` anywhere below a script's ``main()`` (a missing saved model, a
corrupt weights file, an unknown job), and end the script with ``run_main(main)``::

    if __name__ == "__main__":
        run_main(main)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn


class BadInput(SystemExit):
    """What the user gave cannot work; ``str()`` is the message, ``code`` is 2.

    A ``SystemExit``, so a script that forgets ``run_main`` still stops (silently, with
    status 2) rather than carrying on.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2


def run_main(main: Callable[[], int | None]) -> NoReturn:
    """Run ``main()`` and exit with its status; a :class:`BadInput` prints ``error: ...`` to
    stderr and exits 2."""
    try:
        code = main()
    except BadInput as exc:
        print(f"{sys.argv[0]}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)
