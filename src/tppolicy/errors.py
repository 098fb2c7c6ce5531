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
        where = str(self.span) if self.span is not None and self.span.line > 0 else ""
        if self.span is not None and self.span.line <= 0 and self.span.source != NO_SPAN.source:
            where = self.span.source
        head = f"{where}: " if where else ""
        if self.path:
            head += f"{self.path}: "
        lines = [f"{head}{self.message}"]
        if source_text is not None and self.span is not None and self.span.line > 0:
            src_lines = source_lines if source_lines is not None else source_text.splitlines()
            if self.span.line <= len(src_lines):
                text = src_lines[self.span.line - 1]
                width = 1
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_column - self.span.column)
                lines.append(f"    {text}")
                lines.append("    " + " " * (self.span.column - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


class TppolicyError(Exception):
    """Base class: every error tppolicy raises on bad input derives from it."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source_text: str | None = None) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        self.source_text = source_text
        super().__init__(self.render())

    def render(self) -> str:
        lines = self.source_text.splitlines() if self.source_text is not None else None
        return "\n".join(d.render(self.source_text, lines) for d in self.diagnostics)


class PolicySyntaxError(TppolicyError):
    """A policy file does not follow the grammar."""


class PolicyCheckError(TppolicyError):
    """A policy file parses but refers to unknown names or mixes types."""


class ConfigError(TppolicyError):
    """A publishers file is not valid YAML or does not follow the schema."""


class ClaimsError(TppolicyError):
    """A claims document is not a JSON object."""


class OutputError(TppolicyError):
    """An output file (`compile -o`, `check --record`...) cannot be written."""
