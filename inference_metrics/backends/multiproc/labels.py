"""The series bound across processes: ``labels.db``, the shared list of admitted label sets.

The file is append-only JSON lines, ``[group, [label values...]]``, one per admitted label set,
where a group is the label names its metrics share. A process binding a label set not in the
list takes an exclusive ``flock`` on the file, reads what others appended since it last looked,
and appends the label set while its group holds fewer than ``max_series``; otherwise the label
set goes to the overflow series. A label set once admitted stays admitted (the list only grows),
so no count ever moves between series.

When the file cannot be read or appended (a full or read-only filesystem, something that is not a
regular file under its name), the label set is admitted by this process alone and listed at the
next admission that can write; meanwhile other processes do not know it, so the bound can be
exceeded by the label sets admitted that way. A line half-written by a process that died is
dropped by the next admission.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
from pathlib import Path

from .log import RateLimitedLog

__all__ = ["LabelRegistry"]

logger = logging.getLogger(__name__)


class LabelRegistry:
    """This process' view of ``labels.db``: the admitted label sets per group."""

    def __init__(self, path: Path, max_series: int) -> None:
        self._path = path
        self._max_series = max_series
        self._offset = 0
        #: Every label set admitted here, per group: those the file lists and the unlisted.
        self._known: dict[str, set[tuple[str, ...]]] = {}
        #: The label sets the file lists (as far as this process read or wrote it).
        self._listed: set[tuple[str, tuple[str, ...]]] = set()
        #: Admitted here while the file could not be written: listed at the next admission.
        self._unlisted: list[tuple[str, tuple[str, ...]]] = []
        self._log = RateLimitedLog(logger)

    def admit(self, group: str, label_values: tuple[str, ...]) -> bool:
        """Whether ``label_values`` has (or now gets) its own series in ``group``."""
        known = self._known.setdefault(group, set())
        if label_values in known:
            return True
        if len(known) >= self._max_series:  # the list only grows: full stays full
            return False
        try:
            return self._admit_listed(group, label_values)
        except OSError as exc:
            known.add(label_values)
            self._unlisted.append((group, label_values))
            self._log.warning(
                "labels",
                "cannot update %s (%s): label sets are admitted by this process alone until it "
                "can (%d so far)",
                self._path,
                exc.strerror or type(exc).__name__,
                len(self._unlisted),
            )
            return True

    @property
    def unlisted(self) -> int:
        """Label sets this process admitted that ``labels.db`` does not list yet."""
        return len(self._unlisted)

    def _admit_listed(self, group: str, label_values: tuple[str, ...]) -> bool:
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._path, flags, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._refresh(fd)
            known = self._known.setdefault(group, set())
            lines = [line for line in self._unlisted if line not in self._listed]
            admitted = label_values in known or len(known) < self._max_series
            if admitted and (group, label_values) not in self._listed:
                lines.append((group, label_values))
            self._append(fd, lines)
            self._listed.update(lines)
            if admitted:
                known.add(label_values)
            self._unlisted.clear()
            return admitted
        finally:
            os.close(fd)  # releases the flock

    def _append(self, fd: int, lines: list[tuple[str, tuple[str, ...]]]) -> None:
        data = b"".join(
            json.dumps([group, list(values)], separators=(",", ":")).encode() + b"\n"
            for group, values in lines
        )
        written = 0
        try:
            while written < len(data):
                written += os.pwrite(fd, data[written:], self._offset + written)
        except OSError:
            if written:  # never leave half a line behind
                os.ftruncate(fd, self._offset)
            raise
        self._offset += len(data)

    def _refresh(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size <= self._offset:
            return
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # A writer died mid-line (lines are written whole under the lock): drop the stub.
            os.ftruncate(fd, self._offset + end)
        for line in data[:end].splitlines():
            try:
                group, values = json.loads(line)
                name, label_values = str(group), tuple(str(v) for v in values)
            except (ValueError, TypeError):
                logger.warning("ignoring a malformed line in %s", self._path)
                continue
            self._listed.add((name, label_values))
            self._known.setdefault(name, set()).add(label_values)
        self._offset += end
