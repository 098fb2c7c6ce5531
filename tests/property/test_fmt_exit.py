"""`tppolicy fmt` on generated YAML that is anything but simple (anchors, aliases, merge keys,
tags, block scalars, flow collections, nested values, comments, odd scalars): it exits 0, 1
or 3 and never 4 (4 is a bug in tppolicy), never prints a traceback, and formatting what it
formats again changes nothing."""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tppolicy.cli import main

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow

PROVIDERS = {
    "github": ["repository_owner", "repository_name", "repository_owner_id",
               "workflow_filename", "environment", "allowed_events"],
    "gitlab": ["namespace", "project", "workflow_filepath", "environment"],
    "google": ["email", "sub"],
    "acme": ["alpha", "beta"],  # an unknown provider
}
SCALARS = ["pypi", "octo-org", "release.yml", "65", "yes", "no", "on", "1.0", "a b", "x:y",
           "-x", "null", "~", "NULL", "0o17", "0x1F", "1_000", "true", "2026-01-01", ".inf",
           "=", "<<", "?x", "@x", "`x", "é", "a,b", "12:30", "1e3", "-", "---x", "a\u00a0b",
           "https://gitlab.com", "v*", "a\\b"]
TAGS = ["!!str", "!!int", "!!null", "!!bool", "!!float", "!t", "!", "!!binary", "!!set",
        "!!map", "!!seq", "!!timestamp", "!<tag:yaml.org,2002:str>", "!!python/none"]


class _Writer:
    """Writes YAML text line by line, with anchors (and aliases to them) and comments."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.anchors: list[str] = []
        self.lines: list[str] = []

    def comment(self) -> str:
        return "#" + self.rnd.choice(["", " note", " a: b", " - x", " 'q'", " é", "#"])

    def eol(self) -> str:
        return ("  " + self.comment()) if self.rnd.random() < 0.15 else ""

    def props(self) -> str:
        """An anchor and/or a tag before a value, or nothing."""
        rnd = self.rnd
        parts = []
        if rnd.random() < 0.15:
            # ruamel.yaml refuses an anchor defined twice (pyyaml takes the last): rarely
            name = rnd.choice(["a", "b"]) if rnd.random() < 0.05 else f"a{len(self.anchors)}"
            self.anchors.append(name)
            parts.append("&" + name)
        if rnd.random() < 0.06:
            parts.append(rnd.choice(TAGS))
        rnd.shuffle(parts)
        return " ".join(parts)

    def scalar(self, in_flow: bool) -> str:
        rnd = self.rnd
        roll = rnd.random()
        if roll < 0.1:
            if self.anchors and roll < 0.095:
                return "*" + rnd.choice(self.anchors)
            return "*" + rnd.choice(["nowhere", "a"])  # maybe undefined
        value = rnd.choice(SCALARS)
        style = rnd.choice(["plain", "plain", "single", "double"])
        if value.startswith(("@", "`")) and style == "plain":
            style = "double"  # cannot start a plain scalar
        if style == "single":
            text = "'" + value.replace("'", "''") + "'"
        elif style == "double":
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif in_flow and any(c in value for c in ",[]{}"):
            text = '"' + value + '"'
        else:
            text = value
        props = self.props()
        if props and rnd.random() < 0.3:
            return props  # an anchored or tagged empty value
        return f"{props} {text}" if props else text

    def flow(self, depth: int) -> str:
        rnd = self.rnd
        props = self.props()
        if rnd.random() < 0.7 or depth > 1:
            items = [self.flow_item(depth) for _ in range(rnd.randrange(4))]
            text = "[" + ", ".join(items) + ("," if items and rnd.random() < 0.1 else "") + "]"
        else:
            pairs = [f"{rnd.choice(['k', 'name', 'x', '? q'])}: {self.flow_item(depth)}"
                     for _ in range(rnd.randrange(3))]
            text = "{" + ", ".join(pairs) + "}"
        return f"{props} {text}" if props else text

    def flow_item(self, depth: int) -> str:
        if self.rnd.random() < 0.15:
            return self.flow(depth + 1)
        return self.scalar(in_flow=True)

    def value(self, key: str, indent: int, depth: int) -> None:
        """`key:` and its value, at `indent`; the last line is open for an end comment."""
        rnd = self.rnd
        pad = " " * indent
        roll = rnd.random()
        if roll < 0.45:
            self.lines.append(f"{pad}{key}: {self.scalar(in_flow=False)}{self.eol()}")
        elif roll < 0.6:
            self.lines.append(f"{pad}{key}: {self.flow(depth)}{self.eol()}")
        elif roll < 0.75:
            indicator = rnd.choice(["|", ">", "|-", ">-", "|+", ">+", "|2", ">1-"])
            props = self.props()
            head = f"{props} {indicator}" if props else indicator
            self.lines.append(f"{pad}{key}: {head}{self.eol()}")
            for _ in range(rnd.randrange(3)):
                self.lines.append(rnd.choice(["", pad + "  text", pad + "    more",
                                              pad + "  # not a comment"]))
        elif roll < 0.88:
            props = self.props()
            self.lines.append(f"{pad}{key}:{' ' + props if props else ''}{self.eol()}")
            for _ in range(rnd.randrange(1, 4)):
                self.lines.append(f"{pad}  - {self.scalar(in_flow=False)}{self.eol()}")
                self.maybe_comment_lines(indent + 2)
        elif depth < 2:
            props = self.props()
            self.lines.append(f"{pad}{key}:{' ' + props if props else ''}{self.eol()}")
            self.mapping(indent + 2, depth + 1, ["k", "name", "<<", "x"])
        else:
            self.lines.append(f"{pad}{key}:")

    def maybe_comment_lines(self, indent: int) -> None:
        rnd = self.rnd
        for _ in range(rnd.randrange(3) if rnd.random() < 0.3 else 0):
            self.lines.append(rnd.choice(["", " " * rnd.choice([0, 2, indent, indent + 2])
                                          + self.comment()]))

    def mapping(self, indent: int, depth: int, keys: list[str]) -> None:
        for key in keys:
            if key == "<<":
                if self.anchors and self.rnd.random() < 0.5:
                    self.lines.append(" " * indent + "<<: *" + self.rnd.choice(self.anchors))
                continue
            self.value(key, indent, depth)
            self.maybe_comment_lines(indent)

    def entry(self, number: int, dash: str) -> None:
        rnd = self.rnd
        roll = rnd.random()
        if roll < 0.05:
            self.lines.append(f"{dash}- {self.scalar(in_flow=False)}")
            return
        if roll < 0.1:
            self.lines.append(f"{dash}- {self.flow(0)}")
            return
        provider = rnd.choice(sorted(PROVIDERS))
        keys = ["name", "provider", rnd.choice(["projects", "pending_project"])]
        keys += rnd.sample(PROVIDERS[provider], rnd.randrange(len(PROVIDERS[provider]) + 1))
        if rnd.random() < 0.3:
            keys.append(rnd.choice(["note", "<<", "ref_protected"]))
        if rnd.random() < 0.1:
            keys.append(rnd.choice(keys))  # a key twice
        rnd.shuffle(keys)
        start = len(self.lines)
        props = self.props() if rnd.random() < 0.3 else ""
        if props:
            self.lines.append(f"{dash}- {props}")
        for key in keys:
            if key == "provider" and rnd.random() < 0.8:
                self.lines.append(f"{dash}  provider: {provider}{self.eol()}")
            elif key == "name" and rnd.random() < 0.6:
                self.lines.append(f"{dash}  name: pub-{number}{self.eol()}")
            elif key == "<<":
                self.mapping(len(dash) + 2, 1, ["<<"])
            else:
                self.value(key, len(dash) + 2, 0)
            self.maybe_comment_lines(len(dash) + 2)
        if len(self.lines) > start and not props:
            first = self.lines[start]
            self.lines[start] = first[:len(dash)] + "- " + first[len(dash) + 2:]
        elif len(self.lines) == start:
            self.lines.append(f"{dash}- {{}}")


def generate(rnd: random.Random, entries: int) -> str:
    """A YAML file that is, mostly, a publishers file with every YAML feature in it."""
    writer = _Writer(rnd)
    if rnd.random() < 0.3:
        writer.lines.append(writer.comment())
    if rnd.random() < 0.1:
        writer.lines.append(rnd.choice(["%YAML 1.1", "---", "--- !!map"]))
    if rnd.random() < 0.15:
        writer.value(rnd.choice(["other", "x"]), 0, 0)
    props = writer.props() if rnd.random() < 0.2 else ""
    if rnd.random() < 0.1:
        writer.lines.append(f"publishers: {writer.flow(0)}")
    else:
        writer.lines.append(f"publishers:{' ' + props if props else ''}{writer.eol()}")
        dash = rnd.choice(["", "  ", "  ", "    "])
        for number in range(entries):
            writer.entry(number, dash)
            writer.maybe_comment_lines(len(dash))
    if rnd.random() < 0.1:
        writer.value("after", 0, 0)
    if rnd.random() < 0.05:
        writer.lines.append(rnd.choice(["...", "---", "--- x"]))
    return "\n".join(writer.lines) + "\n"


@st.composite
def yaml_files(draw: st.DrawFn) -> str:
    """`generate`'s files."""
    return generate(random.Random(draw(st.integers(0, 2**32))), draw(st.integers(1, 3)))


def _fmt(path: Path, *options: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["fmt", *options, str(path)])
    return code, err.getvalue()


# derandomize: the same examples on every run (the slow group must not fail at random);
# tests/test_fmt.py holds a regression case for each crash found by searching further.
@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(yaml_files())
def test_fmt_never_exits_4_and_is_idempotent(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "publishers.yaml"
        path.write_text(text, encoding="utf-8")
        code, err = _fmt(path, "--check")
        event(f"fmt --check exits {code}")
        assert code in (0, 1, 3), err
        assert "Traceback" not in err and "internal error" not in err, err
        if code == 3:
            assert err.startswith(str(path)), err  # the error names the file (and where)
            return
        code, err = _fmt(path)
        assert code == 0, err
        once = path.read_text(encoding="utf-8")
        code, err = _fmt(path, "--check")
        assert code == 0, err  # formatting what it formatted changes nothing
        assert path.read_text(encoding="utf-8") == once
