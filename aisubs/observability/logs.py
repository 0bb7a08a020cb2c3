"""Structured logs: every line of a job's life says which job, which attempt, which worker.

The job executor enters :func:`job_context` while it works on a job. The context lives in a
:mod:`contextvars` variable, so it follows the job's asyncio task and the worker threads
started with ``asyncio.to_thread`` (which copy the context), and :class:`JobContextFilter`,
installed on the handlers by :func:`configure_logging`, stamps ``job_id``, ``attempt`` and
``worker_instance`` on every record passing through, library records (faster-whisper,
fsspec...) included. :class:`JsonFormatter` writes one JSON object per line.

The formatter is a few lines over :mod:`json` rather than a dependency: the only thing it
has to know is which record attributes are the standard ones.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from aisubs.settings import ObservabilitySettings

CONTEXT_FIELDS = ("job_id", "attempt", "worker_instance")
APP_LOGGERS = ("aisubs", "serve_app", "deployments")

_job: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "aisubs_job_log_context", default=None
)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` or a filter.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_MARK = "_aisubs_handler"


@contextlib.contextmanager
def job_context(job_id: str, attempt: int, worker_instance: str) -> Iterator[None]:
    """Stamp every log line emitted inside the block (this task and its threads)."""
    token = _job.set({"job_id": job_id, "attempt": attempt, "worker_instance": worker_instance})
    try:
        yield
    finally:
        _job.reset(token)


def current_job_context() -> Mapping[str, Any] | None:
    """The job the current task works on, if any."""
    return _job.get()


class JobContextFilter(logging.Filter):
    """Adds the current job's fields to records that do not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _job.get()
        if context:
            for key, value in context.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The usual human format, with the job fields appended when the line has them."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if hasattr(record, k)]
        return f"{text} [{' '.join(fields)}]" if fields else text


def make_formatter(settings: ObservabilitySettings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else TextFormatter()


def configure_logging(settings: ObservabilitySettings) -> logging.Handler:
    """Send this process's log lines to stderr in the configured format, job-stamped.

    Idempotent (a Ray replica may call it again after a restart of its deployment): one
    handler of ours on the root logger, replaced on each call. Other handlers already on
    the root logger (Ray's own) get the job filter too. The ``aisubs`` logger is set to
    ``log_level`` (also ``serve_app`` and ``deployments``, the Ray shells); third-party
    loggers (and the root logger's level) stay as they are.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
        elif not any(isinstance(f, JobContextFilter) for f in handler.filters):
            handler.addFilter(JobContextFilter())
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(make_formatter(settings))
    handler.addFilter(JobContextFilter())
    root.addHandler(handler)
    for name in APP_LOGGERS:
        logging.getLogger(name).setLevel(settings.log_level)
    return handler
