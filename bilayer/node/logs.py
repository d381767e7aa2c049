"""A node's log: plain text or one JSON object per line, to standard error or a file that
SIGHUP (or logrotate's SIGUSR1) reopens after rotation."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `time` (RFC 3339, UTC), `level`, `logger`, `message`,
    and `error` with the exception text when there is one; collectors need no parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        body = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


class ReopenableFileHandler(logging.FileHandler):
    """A log file that can be closed and opened again by name, so that after logrotate has
    moved it the node writes to a new file of the same name."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


class NodeLog:
    """The node's log configuration; `reopen` answers the reopen signals."""

    def __init__(self, level: str = "info", fmt: LogFormat = "text", file: Path | None = None) -> None:
        self.file = file
        handler: logging.Handler
        if file is not None:
            handler = ReopenableFileHandler(file, encoding="utf-8")
        else:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        self.handler = handler
        root = logging.getLogger()
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
        root.setLevel(level.upper())

    def reopen(self) -> bool:
        """Reopen the log file; False when the log goes to standard error (nothing to reopen)."""
        if isinstance(self.handler, ReopenableFileHandler):
            self.handler.reopen()
            return True
        return False
