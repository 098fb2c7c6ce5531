"""The exceptions tppolicy raises for bad input, each carrying where and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file, 1-based lines and columns (end column exclusive)."""

    source: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


NO_SPAN = Span("<generated>", 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in an input: where it is, what is wrong, and how to fix it."""

    message: str
    span: Span | None = None
    path: str | None = None  # a YAML/JSON path such as publishers[2].environment
    hint: str | None = None

    def render(self, source_text: str | None = None,
               source_lines: list[str] | None = None) -> str:
        """The diagnostic as text: location, message, the source line (a bounded excerpt
        around the column) with a caret, and the hint. Each part is bounded, so a huge
        value in a file never makes a huge error."""
        where = str(self.span) if self.span is not None and self.span.line > 0 else ""
        if self.span is not None and self.span.line <= 0 and self.span.source != NO_SPAN.source:
            where = self.span.source
        head = f"{where}: " if where else ""
        if self.path:
            head += f"{shorten(self.path, MAX_MESSAGE_CHARS // 4)}: "
        lines = [visible(f"{head}{shorten(self.message, MAX_MESSAGE_CHARS)}", KEEP_LINES)]
        if source_text is not None and self.span is not None and self.span.line > 0:
            src_lines = source_lines if source_lines is not None else source_text.splitlines()
            if self.span.line <= len(src_lines):
                text = src_lines[self.span.line - 1]
                width = 1
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_column - self.span.column)
                shown, column, width = excerpt(text, self.span.column, width)
                lines.append(f"    {visible(shown)}")
                lines.append("    " + " " * (column - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"    hint: {visible(shorten(self.hint, MAX_MESSAGE_CHARS), KEEP_LINES)}")
        return "\n".join(lines)


KEEP_LINES = "\t\n"  # what a message or a hint may hold besides visible characters
MAX_MESSAGE_CHARS = 400  # a message or hint longer than this is shortened in the middle
MAX_EXCERPT_CHARS = 120  # the part of a source line shown under a diagnostic


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text`, or its start and end around a note of how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 2)
    left = text[:keep // 2]
    right = text[len(text) - keep // 2:]
    return f"{left}...({len(text) - len(left) - len(right)} characters)...{right}"


def visible(text: str, keep: str = "\t") -> str:
    """`text` with each control or invisible character (but those in `keep`) shown as one
    visible character: a C0 control as its picture (U+2400 + code: ESC is U+241B), DEL
    as U+2421, any other (C1 controls, bidi overrides, zero-width) as U+FFFD. A file's
    line shown under an error went to the terminal as it was: its escape sequences
    cleared the screen, moved the cursor, hid text. The caret stays aligned."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else
                   chr(0x2400 + ord(c)) if ord(c) < 0x20 else
                   "\u2421" if c == "\x7f" else "\ufffd" for c in text)


def excerpt(line: str, column: int, width: int = 1) -> tuple[str, int, int]:
    """A window of at most `MAX_EXCERPT_CHARS` of `line` around the 1-based `column`, the
    column in it, and the caret width clipped to it (for every tool that shows a line)."""
    if len(line) <= MAX_EXCERPT_CHARS:
        return line, column, width
    start = max(0, min(column - 1 - MAX_EXCERPT_CHARS // 3, len(line) - MAX_EXCERPT_CHARS))
    end = start + MAX_EXCERPT_CHARS
    prefix = "..." if start > 0 else ""
    suffix = "..." if end < len(line) else ""
    new_column = column - start + len(prefix)
    new_width = max(1, min(width, end - (column - 1)))
    return prefix + line[start:end] + suffix, new_column, new_width


class TppolicyError(Exception):
    """Base class: every error tppolicy raises on bad input derives from it."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source_text: str | None = None) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        self.source_text = source_text
        super().__init__(self.render())

    def render(self) -> str:
        lines = self.source_lines(self.source_text) if self.source_text is not None else None
        return "\n".join(d.render(self.source_text, lines) for d in self.diagnostics)

    @staticmethod
    def source_lines(text: str) -> list[str]:
        """The source's lines as its spans number them (here: at every line break
        `str.splitlines` knows, as the policy and YAML readers count them)."""
        return text.splitlines()


class PolicySyntaxError(TppolicyError):
    """A policy file does not follow the grammar."""


class PolicyCheckError(TppolicyError):
    """A policy file parses but refers to unknown names or mixes types."""


class ConfigError(TppolicyError):
    """A publishers file is not valid YAML or does not follow the schema."""


class ClaimsError(TppolicyError):
    """A claims document is not a JSON object."""

    @staticmethod
    def source_lines(text: str) -> list[str]:
        """JSON's lines: only a line feed ends one (a line separator or NEL inside a
        string is text), a carriage return before it is dropped."""
        return [line.removesuffix("\r") for line in text.split("\n")]


class OutputError(TppolicyError):
    """An output file (`compile -o`, `check --record`...) cannot be written."""
