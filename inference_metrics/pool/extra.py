"""What polling needs beyond the base install (the ``pool`` extra), asked for up front.

Polling and discovery use the library's own h11 client, so today that is nothing: the list is
empty and the ``pool`` extra installs nothing. Should the pool code come to import a module the
base install lacks, it belongs in :data:`EXTRA_MODULES` (``tests/test_pool_extra.py`` reads the
package's imports and fails until it is there), and a program about to poll (``inference-metrics
serve --pool-name``) calls :func:`require_pool_extra` at start-up: without the module it learns
so there, with the command that installs it, rather than from a failed poll every minute while
the pool gauges read 0.
"""

from __future__ import annotations

import importlib

__all__ = ["EXTRA_MODULES", "require_pool_extra"]

#: The modules the pool package imports that the base install lacks: the ``pool`` extra's.
#: ``tests/test_pool_extra.py`` reads the package's imports and keeps this list in step with them.
EXTRA_MODULES: tuple[str, ...] = ()


def require_pool_extra() -> None:
    """Import what polling imports; ``ImportError`` naming the extra if any of it is missing."""
    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ImportError(
                f"polling model servers needs the {name!r} package: "
                "pip install 'inference-metrics[pool]'",
                name=name,
            ) from None
