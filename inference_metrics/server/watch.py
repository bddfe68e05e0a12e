"""Kept for imports from before :mod:`inference_metrics.net.watch` held the one file watcher."""

from ..net.watch import FileWatch, Signature

__all__ = ["FileWatch", "Signature"]
