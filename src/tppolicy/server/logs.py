"""The server's logging: one configuration for uvicorn's loggers and tppolicy's, as
text or as one JSON object a line, with tokens and credentials masked.

`tppolicy serve --log-level LEVEL --log-format text|json` passes `logging_config(...)`
to uvicorn (its `log_config`), so uvicorn's lines (`uvicorn.error`, `uvicorn.access`)
and the index's own (`tppolicy.server`: mint, upload, refusal) go to standard error
through the same handler, at the same level.

Every decision is logged at INFO with structured fields (`event`, `code`, `provider`,
`publisher`, `projects`, `file`...) which the JSON format writes as keys. The messages
never carry a token or a credential: the index does not put them there, and the
formatters mask anything shaped like one (a JWT, a `tpp-` credential) as a last line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from .names import escape

LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")

# A compact JWT (three base64url parts, the first one a JSON object: `eyJ`) or a
# credential minted by this index. A JWT is masked from the start of its run of base64url
# characters: tried only there (the lookbehind), with no backtracking (possessive), a text
# is masked in linear time. (Tried at every `eyJ`, each attempt scanning to the run's end,
# 'eyJ' * 53 000 took 16 s, and a request path of 16 KB 0.1 s.)
_SECRET = re.compile(r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*?eyJ[A-Za-z0-9_-]{4})"
                     r"[A-Za-z0-9_-]++\.[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]*+|"
                     r"tpp-[A-Za-z0-9_-]{16,}")
# the attributes every LogRecord has: anything else came from `extra=`
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message",
                                                                            "asctime"}


def mask(text: str) -> str:
    """`text` with tokens and credentials replaced by `[token]`, `[credential]`."""
    return _SECRET.sub(lambda m: "[credential]" if m.group().startswith("tpp-")
                       else "[token]", text)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a log call added with `extra=`."""
    return {k: v for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_") and k != "color_message"}


class TextFormatter(logging.Formatter):
    """`2026-01-01T00:00:00Z INFO tppolicy.server: message` (masked)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One line per message: a claim value, a file name or a path sent by a client
        # may hold a newline (or an invisible character) that would forge a line.
        record.message = escape(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the call's fields."""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", moment) +
            f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value if isinstance(value, str | int | float | bool |
                                                      None | list | dict) else str(value))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return mask(json.dumps(entry, default=str, ensure_ascii=False))


def logging_config(level: str = "info", fmt: str = "text") -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn's and tppolicy's loggers."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    formatter = {"()": f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"}
    logger = {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "stream": "ext://sys.stderr"}},
        "loggers": {"uvicorn": logger, "uvicorn.error": {"level": level.upper()},
                    "uvicorn.access": logger, "tppolicy": logger},
    }
