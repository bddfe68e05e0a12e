"""Command-line options, one module per subsystem, shared by every command that offers them.

Each module adds its flags to an ``argparse`` parser and turns the parsed arguments into the
configured object, with the validation and the error messages (naming flags, never Python
parameters) in one place: :mod:`.server` (host, port, authentication, TLS: a
:class:`~inference_metrics.server.ServerConfig`), :mod:`.pool` (a
:class:`~inference_metrics.pool.PoolMonitor`), :mod:`.schema` (the schemas recorded),
:mod:`.multiprocess` (the multiprocess directory), :mod:`.histograms` (native histograms and
exemplars). :mod:`.parsing` holds what they share: the
:class:`OptionError` they raise and :class:`CommandParser`, whose errors are one usage line and
the message. ``inference-metrics`` and ``examples/ext_proc/server.py`` both build on them.
"""

from .histograms import HistogramOptions
from .multiprocess import MultiprocessOptions
from .parsing import CommandParser, OptionError, flag_errors
from .pool import PoolOptions
from .schema import SchemaOptions
from .server import ServerOptions

__all__ = [
    "CommandParser",
    "HistogramOptions",
    "MultiprocessOptions",
    "OptionError",
    "PoolOptions",
    "SchemaOptions",
    "ServerOptions",
    "flag_errors",
]
