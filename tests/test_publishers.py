"""Publishers files: loading, every error kind with its position, and the JSON Schema."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from tppolicy.decide.publishers import (
    PublisherEntry,
    _python_regex,
    load_publishers_file,
    load_publishers_text,
    publishers_schema,
    write_shipped_schema,
)
from tppolicy.errors import ConfigError, Diagnostic
from tppolicy.language.ast import Provider
from tppolicy.language.parse import parse_policy

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "publishers"
SHIPPED_POLICIES = ("github", "gitlab", "google", "activestate", "github_enterprise", "circleci",
                    "buildkite")

# Providers with PyPI's field names (and patterns in the style of the shipped policies), written
# here so that these tests do not depend on the files in policies/.
PROVIDERS_TEXT = r'''
provider github {
  issuer "https://token.actions.githubusercontent.com"
  custom_issuers false
  fields {
    repository_owner: string matches "^[A-Za-z0-9][A-Za-z0-9-]*$"
      else "a GitHub user or organization name"
    repository_name: string matches "^[A-Za-z0-9._-]+$"
    repository_owner_id: string matches "^[0-9]+$" else "the owner's numeric id"
    workflow_filename: string matches "^[^/]+\\.(yml|yaml)$"
      else "a workflow file name ending in .yml or .yaml"
    environment: string = "" matches "^[^'\",;\\\\]*$" else "an environment name"
  }
}
provider gitlab {
  issuer "https://gitlab.com"
  custom_issuers true
  fields {
    namespace: string matches "^(?!.*\\.(git|atom)$)[a-zA-Z0-9][a-zA-Z0-9_./+-]*[a-zA-Z0-9]$"
    project: string
    workflow_filepath: string
    environment: string = ""
    issuer_url: string = "https://gitlab.com"
  }
}
provider google {
  issuer "https://accounts.google.com"
  fields {
    email: string matches "^[^@ ]+@[^@ ]+$" else "a service account email address"
    sub: string = ""
  }
}
provider activestate {
  issuer "https://platform.activestate.com/api/v1/oauth/oidc"
  fields {
    organization: string
    activestate_project_name: string
    actor: string
    actor_id: string
  }
}
provider demo {
  issuer "https://demo.example.com"
  fields {
    count: int
    retries: int = 3
    strict: bool = false
    label: string = "main"
  }
}
'''
PROVIDERS: dict[str, Provider] = {
    p.name: p for p in parse_policy(PROVIDERS_TEXT, "<test providers>").providers
}
GITLAB_ISSUER = {"https://gitlab.example.com": "gitlab"}

GITHUB_ENTRY = """\
publishers:
  - provider: github
    projects: [sampleproject]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: release.yml
"""


def load(text: str, providers: Mapping[str, Provider] = PROVIDERS,
         issuers: Mapping[str, str] | None = None) -> tuple[PublisherEntry, ...]:
    return load_publishers_text(text, "pubs.yaml", providers, issuers)


def errors(text: str, providers: Mapping[str, Provider] = PROVIDERS,
           issuers: Mapping[str, str] | None = None) -> list[Diagnostic]:
    with pytest.raises(ConfigError) as info:
        load(text, providers, issuers)
    assert info.value.source_text == text
    str(info.value)  # renders without failing
    return list(info.value.diagnostics)


def only_error(text: str, **kwargs: Any) -> Diagnostic:
    found = errors(text, **kwargs)
    assert len(found) == 1, [d.render() for d in found]
    return found[0]


def where(d: Diagnostic) -> tuple[int, int]:
    assert d.span is not None
    return d.span.line, d.span.column


def github(**fields: str) -> str:
    """GITHUB_ENTRY with some lines replaced or added (an empty line removes the key)."""
    text = GITHUB_ENTRY
    for key, line in fields.items():
        pattern = re.compile(rf"^    {key}:.*\n", re.M)
        if pattern.search(text):
            replacement = f"    {line}\n" if line else ""
            text = pattern.sub(replacement.replace("\\", "\\\\"), text)
        else:
            text += f"    {line}\n"
    return text


# --------------------------------------------------------------------- valid
def test_valid_file_all_kinds_of_entry() -> None:
    entries = load_publishers_file(FIXTURES / "valid.yaml", PROVIDERS, GITLAB_ISSUER)
    assert [e.index for e in entries] == [0, 1, 2, 3, 4]
    first, pending, gitlab, google, active = entries

    assert first.name == "sampleproject-release"
    assert first.provider == "github"
    assert first.projects == ("sampleproject", "Sample.Project-Docs")
    assert first.pending_project is None
    assert dict(first.fields) == {
        "repository_owner": "octo-org",
        "repository_name": "sampleproject",
        "repository_owner_id": "65",
        "workflow_filename": "release.yml",
        "environment": "pypi",
    }
    assert list(first.fields) == [d.name for d in PROVIDERS["github"].fields]
    assert first.span.source == str(FIXTURES / "valid.yaml")
    assert (first.span.line, first.span.column) == (3, 5)

    assert pending.name is None
    assert pending.projects == ()
    assert pending.pending_project == "newproject"
    assert pending.fields["environment"] == ""
    assert (pending.span.line, pending.span.column) == (12, 5)

    assert gitlab.projects == ("acme-tool",)
    assert gitlab.fields["issuer_url"] == "https://gitlab.example.com"
    assert gitlab.fields["environment"] == ""  # default filled in
    assert list(gitlab.fields) == [d.name for d in PROVIDERS["gitlab"].fields]

    assert google.name == "cloud-build"
    assert dict(google.fields) == {"email": "builder@example.iam.gserviceaccount.com", "sub": ""}
    assert active.fields["actor_id"] == "1a2b3c"


def test_entries_are_immutable() -> None:
    (entry,) = load(GITHUB_ENTRY)
    with pytest.raises(TypeError):
        entry.fields["environment"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        entry.name = "x"  # type: ignore[misc]


def test_defaults_and_non_string_types() -> None:
    text = "publishers:\n- provider: demo\n  projects: [a]\n  count: 2\n"
    (entry,) = load(text)
    assert dict(entry.fields) == {"count": 2, "retries": 3, "strict": False, "label": "main"}
    text = ("publishers:\n- provider: demo\n  projects: [a]\n  count: 2.0\n  strict: true\n"
            "  label: dev\n")
    (entry,) = load(text)
    assert entry.fields["count"] == 2
    assert isinstance(entry.fields["count"], int)
    assert entry.fields["strict"] is True
    assert entry.fields["label"] == "dev"


def test_empty_publishers_list_is_valid() -> None:
    assert load("publishers: []\n") == ()


def test_anchors_and_merge_keys() -> None:
    text = """\
publishers:
  - &first
    provider: github
    projects: [one]
    repository_name: one
    workflow_filename: release.yml
    repository_owner: octo-org
    repository_owner_id: "65"
  - <<: *first
    projects: [two]
    repository_name: two
  - <<: [*first]
    projects: [three]
    repository_name: three
    repository_owner: other-org
"""
    entries = load(text)
    assert [e.projects for e in entries] == [("one",), ("two",), ("three",)]
    assert [e.fields["repository_name"] for e in entries] == ["one", "two", "three"]
    assert [e.fields["repository_owner"] for e in entries] == ["octo-org", "octo-org",
                                                               "other-org"]
    # An error in a merged value points at the anchored node, and is reported once.
    found = errors(text.replace('"65"', "65"))
    assert [(d.path, where(d)) for d in found] == [
        ("publishers[0].repository_owner_id", (8, 26))]


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pubs.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GITHUB_ENTRY.encode())
    (entry,) = load_publishers_file(path, PROVIDERS)
    assert entry.span.line == 2


# ---------------------------------------------------------------- YAML errors
@pytest.mark.parametrize(("text", "line", "column", "message"), [
    ("publishers: [a, b\n", 2, 1, "invalid YAML"),
    ("publishers:\n  - provider: github\n   name: x\n", 3, 4, "expected <block end>"),
    ("publishers: 'open\n", 2, 1, "invalid YAML"),
    ("publishers: []\n---\npublishers: []\n", 2, 1, "another document"),
    ("publishers: [\x00]\n", 1, 14, "U+0000"),
    ("a: *nowhere\n", 1, 4, "undefined alias"),
])
def test_yaml_syntax_errors(text: str, line: int, column: int, message: str) -> None:
    d = only_error(text)
    assert where(d) == (line, column)
    assert message in d.render() or message in (d.hint or "")


def test_tabs_get_a_hint() -> None:
    d = only_error("publishers:\n\t- provider: github\n")
    assert where(d) == (2, 1)
    assert d.hint is not None
    assert "tabs" in d.hint


def test_deep_nesting_is_an_error() -> None:
    d = only_error("publishers: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in d.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    d = only_error(text)
    assert "empty" in d.message


def test_empty_document_with_null() -> None:
    d = only_error("null\n")
    assert d.message == "expected a mapping with a 'publishers' list, found null"


def test_non_utf8_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_publishers_file(FIXTURES / "not_utf8.yaml", PROVIDERS)
    (d,) = info.value.diagnostics
    assert "not UTF-8" in d.message
    assert "0xe9" in d.message
    assert where(d) == (3, 14)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_publishers_file(tmp_path / "nope.yaml", PROVIDERS)
    (d,) = info.value.diagnostics
    assert "cannot read" in d.message
    assert d.span is not None
    assert d.span.source.endswith("nope.yaml")


def test_duplicate_keys() -> None:
    text = github(workflow_filename="workflow_filename: release.yml\n"
                                    "    workflow_filename: other.yml")
    d = only_error(text)
    assert d.path == "publishers[0].workflow_filename"
    assert where(d) == (8, 5)
    assert "duplicate key 'workflow_filename'" in d.message
    assert "line 7" in d.message


def test_duplicate_top_level_key() -> None:
    d = only_error("publishers: []\npublishers: []\n")
    assert d.path == "publishers"
    assert where(d) == (2, 1)


def test_recursive_alias() -> None:
    d = only_error("publishers: &a [*a]\n")
    assert "recursive alias" in d.message
    assert where(d) == (1, 13)


def test_alias_bomb() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    d = only_error("\n".join(lines) + "\npublishers: *a7\n")
    assert "expands to more than" in d.message


@pytest.mark.parametrize(("value", "message"), [
    ("!!set {a: null}", "unsupported YAML tag tag:yaml.org,2002:set"),
    ("!custom x", "unsupported YAML tag !custom"),
    ("!!int abc", "invalid int value"),
    ("!!omap [a: 1]", "unsupported YAML tag tag:yaml.org,2002:omap"),
])
def test_unsupported_tags(value: str, message: str) -> None:
    d = only_error(github(environment=f"environment: {value}"))
    assert d.path == "publishers[0].environment"
    assert where(d) == (8, 18)
    assert message in d.message


def test_keys_must_be_strings() -> None:
    d = only_error(github(extra="on: push"))
    assert d.message == "a key must be a string, found on, which YAML reads as the boolean true"
    assert d.hint == "quote it: 'on'"
    assert where(d) == (8, 5)
    d = only_error(github(extra="[a]: x"))
    assert "found a list" in d.message


def test_bad_merge() -> None:
    d = only_error(github(extra="<<: 3"))
    assert "merge key" in d.message
    assert where(d) == (8, 9)


# ------------------------------------------------------------- structure errors
def test_top_level_not_a_mapping() -> None:
    d = only_error("- provider: github\n")
    assert d.path is None
    assert d.message == "expected a mapping with a 'publishers' list, found a list"
    assert d.hint == "put the list under a 'publishers:' key"
    assert where(d) == (1, 1)


def test_missing_publishers() -> None:
    missing, unknown = errors("other: 1\n")
    assert missing.path is None
    assert missing.message == "missing the 'publishers' key"
    assert where(missing) == (1, 1)
    assert unknown.path == "other"
    assert unknown.message == "unknown key 'other'"
    assert where(unknown) == (1, 1)
    d = only_error("# nothing\n{}\n")
    assert d.message == "missing the 'publishers' key"
    assert where(d) == (2, 1)


def test_entries_are_hashable() -> None:
    (entry,) = load(GITHUB_ENTRY)
    (again,) = load(GITHUB_ENTRY)
    assert entry == again
    assert hash(entry) == hash(again)


def test_unknown_top_level_key_did_you_mean() -> None:
    found = errors("publisher: []\n")
    unknown = next(x for x in found if x.path == "publisher")
    assert unknown.hint == "did you mean 'publishers'?"
    assert where(unknown) == (1, 1)


@pytest.mark.parametrize(("text", "found", "hint"), [
    ("publishers:\n", "nothing (an empty value)", "publishers: []"),
    ("publishers:\n  provider: github\n", "a mapping", "start each entry with '- '"),
    ("publishers: github\n", "the string 'github'", None),
])
def test_publishers_not_a_list(text: str, found: str, hint: str | None) -> None:
    d = only_error(text)
    assert d.path == "publishers"
    assert d.message == f"expected a list of publishers, found {found}"
    if hint is not None:
        assert d.hint is not None
        assert hint in d.hint


def test_entry_not_a_mapping() -> None:
    d = only_error("publishers:\n  - github\n")
    assert d.path == "publishers[0]"
    assert d.message == "expected a mapping (one publisher), found the string 'github'"
    assert d.hint == "write '- provider: github' followed by the publisher's keys"
    assert where(d) == (2, 5)


def test_unknown_provider_did_you_mean() -> None:
    d = only_error("publishers:\n  - provider: githbu\n    projects: [a]\n")
    assert d.path == "publishers[0].provider"
    assert d.message == "unknown provider 'githbu'"
    assert d.hint == "did you mean 'github'?"
    assert where(d) == (2, 15)
    d = only_error("publishers:\n  - provider: zzz\n    projects: [a]\n")
    assert d.hint == "the known providers are: activestate, demo, github, gitlab, google"
    d = only_error("publishers:\n  - provider: 5\n    projects: [a]\n")
    assert d.message.startswith("expected a provider name (activestate, demo, github")
    assert d.message.endswith("found the integer 5")


def test_missing_provider() -> None:
    d = only_error("publishers:\n  - projects: [a]\n")
    assert d.path == "publishers[0]"
    assert d.message == "missing 'provider'"


def test_unknown_field_did_you_mean() -> None:
    d = only_error(github(extra="workflow_file: release.yml"))
    assert d.path == "publishers[0].workflow_file"
    assert d.message == "unknown key 'workflow_file' for a github publisher"
    assert d.hint == "did you mean 'workflow_filename'?"
    assert where(d) == (8, 5)
    d = only_error(github(extra="zzz: 1"))
    assert d.hint is not None
    assert d.hint.startswith("the keys are: provider, name, projects, pending_project, ")


def test_missing_required_field() -> None:
    d = only_error(github(repository_owner_id=""))
    assert d.path == "publishers[0]"
    assert d.message == "missing 'repository_owner_id', which a github publisher needs"
    assert where(d) == (2, 5)


def test_projects_or_pending_project() -> None:
    d = only_error(github(projects=""))
    assert d.path == "publishers[0]"
    assert "missing 'projects'" in d.message
    d = only_error(github(pending_project="pending_project: other"))
    assert d.path == "publishers[0].pending_project"
    assert "not both" in d.message
    assert where(d) == (8, 5)
    d = only_error(github(projects="projects: []"))
    assert d.path == "publishers[0].projects"
    assert d.message == "'projects' is empty"
    assert where(d) == (3, 15)
    d = only_error(github(projects="projects: sampleproject"))
    assert d.message == "expected a list of project names, found the string 'sampleproject'"
    assert d.hint == "write a list: projects: [sampleproject]"


@pytest.mark.parametrize(("name", "hint"), [
    ("bad name", "did you mean 'bad-name'?"),
    ("-lead", "did you mean 'lead'?"),
    ("trail.", "did you mean 'trail'?"),
    ("café", "did you mean 'caf'?"),
])
def test_bad_project_names(name: str, hint: str) -> None:
    d = only_error(github(projects=f"projects: [ok, {json.dumps(name)}]"))
    assert d.path == "publishers[0].projects[1]"
    assert d.message == f"expected a project name, found {name!r}"
    assert d.hint == hint
    assert where(d) == (3, 20)
    d = only_error(github(projects="", pending_project=f"pending_project: {json.dumps(name)}"))
    assert d.path == "publishers[0].pending_project"


def test_project_name_with_trailing_newline() -> None:
    # Python's `$` matches before a final newline; the loader must not.
    d = only_error(github(projects='projects: ["foo\\n"]'))
    assert d.path == "publishers[0].projects[0]"


def test_duplicate_projects_after_normalization() -> None:
    d = only_error(github(projects="projects: [Foo.Bar, other, foo__bar]"))
    assert d.path == "publishers[0].projects[2]"
    assert d.message == ("duplicate project 'foo__bar' (projects[0], the same project as "
                         "'Foo.Bar' once normalized)")
    assert where(d) == (3, 32)
    d = only_error(github(projects="projects: [a, a]"))
    assert d.message == "duplicate project 'a' (projects[0])"


def test_duplicate_names() -> None:
    entry = GITHUB_ENTRY.split("\n", 1)[1]
    text = ("publishers:\n" + entry.replace("projects:", "name: rel\n    projects:")
            + entry.replace("projects:", "name: rel\n    projects:"))
    d = only_error(text)
    assert d.path == "publishers[1].name"
    assert d.message == "duplicate publisher name 'rel' (also publishers[0])"
    assert where(d) == (10, 11)


# ------------------------------------------------------------------ value errors
@pytest.mark.parametrize(("value", "found", "hint"), [
    ("65", "the integer 65", "quote it: '65'"),
    ("0x41", "0x41, which YAML reads as the integer 65", "quote it: '0x41'"),
    ("1.5", "the number 1.5", "quote it: '1.5'"),
    ("yes", "yes, which YAML reads as the boolean true", "quote it: 'yes'"),
    ("on", "on, which YAML reads as the boolean true", "quote it: 'on'"),
    ("true", "the boolean true", "quote it: 'true'"),
    ("2024-01-01", "2024-01-01, which YAML reads as a date", "quote it: '2024-01-01'"),
    ("~", "null", "quote it: '~'"),
    ("", "nothing (an empty value)", None),
    ("[65]", "a list", None),
    ("{a: 1}", "a mapping", None),
])
def test_wrong_type_for_string_field(value: str, found: str, hint: str | None) -> None:
    d = only_error(github(repository_owner_id=f"repository_owner_id: {value}"))
    assert d.path == "publishers[0].repository_owner_id"
    assert d.message == f"expected a string, found {found}"
    assert d.hint == hint
    assert where(d) == (6, 26 if value else 25)  # an empty value sits just after the colon


def test_yaml_11_boolean_for_optional_string() -> None:
    d = only_error(github(environment="environment: on"))
    assert d.path == "publishers[0].environment"
    assert d.hint == "quote it: 'on'"
    assert where(d) == (8, 18)


def test_wrong_type_for_int_and_bool_fields() -> None:
    d = only_error("publishers:\n- provider: demo\n  projects: [a]\n  count: '2'\n")
    assert d.message == "expected an integer, found the string '2'"
    assert d.hint == "write it without quotes: 2"
    assert d.path == "publishers[0].count"
    assert where(d) == (4, 10)
    d = only_error("publishers:\n- provider: demo\n  projects: [a]\n  count: 2\n"
                   "  strict: 'true'\n")
    assert d.message == "expected a boolean (true or false), found the string 'true'"
    assert d.hint == "write it without quotes: true"
    d = only_error("publishers:\n- provider: demo\n  projects: [a]\n  count: 1.5\n")
    assert d.message == "expected an integer, found the number 1.5"


@pytest.mark.parametrize(("value", "message"), [
    ('" octo-org"', "expected no leading or trailing spaces, found ' octo-org'"),
    ('"octo-org "', "expected no leading or trailing spaces, found 'octo-org '"),
    ('"octo\\torg"', "expected printable ASCII, found the character '\\t' (U+0009)"),
    ('"octö"', "expected printable ASCII, found the character 'ö' (U+00F6)"),
    ('"octo-org\\n"', "expected printable ASCII, found the character '\\n' (U+000A)"),
    ('""', "'repository_owner' is empty"),
])
def test_identifier_fields(value: str, message: str) -> None:
    d = only_error(github(repository_owner=f"repository_owner: {value}"))
    assert d.path == "publishers[0].repository_owner"
    assert d.message.startswith(message)
    assert where(d) == (4, 23)


def test_empty_optional_field_means_none_but_spaces_do_not() -> None:
    (entry,) = load(github(environment='environment: ""'))
    assert entry.fields["environment"] == ""
    d = only_error(github(environment='environment: " "'))
    assert d.path == "publishers[0].environment"
    assert "leading or trailing spaces" in d.message


def test_provider_pattern_messages() -> None:
    d = only_error(github(repository_owner="repository_owner: octo_org"))
    assert d.message == "expected a GitHub user or organization name, found 'octo_org'"
    assert d.hint == "the pattern is ^[A-Za-z0-9][A-Za-z0-9-]*$"
    d = only_error(github(repository_name="repository_name: 'sample project'"))
    assert d.message == ("expected a value matching ^[A-Za-z0-9._-]+$, "
                         "found 'sample project'")
    d = only_error(github(workflow_filename="workflow_filename: .github/workflows/release.yml"))
    assert d.path == "publishers[0].workflow_filename"
    assert d.hint == "a file name such as release.yml, not a path"
    assert where(d) == (7, 24)
    d = only_error(github(environment="environment: 'a,b'"))
    assert d.message == "expected an environment name, found 'a,b'"


def test_lookahead_patterns_use_ecma_end_anchor() -> None:
    text = ("publishers:\n- provider: gitlab\n  projects: [a]\n  namespace: {ns}\n"
            "  project: p\n  workflow_filepath: ci.yml\n")
    assert load(text.format(ns="acme/tools"))
    d = only_error(text.format(ns="acme/tools.git"))
    assert d.path == "publishers[0].namespace"


# ---------------------------------------------------------------- custom issuers
GITLAB = """\
publishers:
  - provider: gitlab
    projects: [acme]
    namespace: acme
    project: acme
    workflow_filepath: ci.yml
    issuer_url: {issuer}
"""


def test_builtin_issuer_needs_no_registration() -> None:
    (entry,) = load(GITLAB.format(issuer="https://gitlab.com"))
    assert entry.fields["issuer_url"] == "https://gitlab.com"
    (entry,) = load(GITLAB.replace("    issuer_url: {issuer}\n", ""))
    assert entry.fields["issuer_url"] == "https://gitlab.com"


def test_registered_issuer() -> None:
    text = GITLAB.format(issuer="https://gitlab.example.com")
    (entry,) = load(text, issuers=GITLAB_ISSUER)
    assert entry.fields["issuer_url"] == "https://gitlab.example.com"

    d = only_error(text)
    assert d.path == "publishers[0].issuer_url"
    assert where(d) == (7, 17)
    assert d.message == ("issuer 'https://gitlab.example.com' is neither an issuer of provider "
                         "'gitlab' nor a registered custom issuer")
    assert d.hint is not None
    assert d.hint.startswith("register it with --issuer URL=PROVIDER")
    assert "--issuer https://gitlab.example.com=gitlab" in d.hint

    d = only_error(text, issuers={"https://gitlab.example.com": "github"})
    assert d.message == ("issuer 'https://gitlab.example.com' is registered for provider "
                         "'github', not 'gitlab'")


def test_issuer_of_provider_without_custom_issuers() -> None:
    text = """\
publishers:
- provider: fixed
  projects: [a]
  issuer_url: https://other.example.com
"""
    fixed = parse_policy('provider fixed { issuer "https://fixed.example.com" '
                         'fields { issuer_url: string = "https://fixed.example.com" } }')
    providers = {"fixed": fixed.providers[0]}
    d = only_error(text, providers=providers, issuers={"https://other.example.com": "fixed"})
    assert d.path == "publishers[0].issuer_url"
    assert "not an issuer of provider 'fixed'" in d.message
    assert load(text.replace("other", "fixed"), providers=providers)


# ------------------------------------------------------------ all errors at once
def test_every_error_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_publishers_file(FIXTURES / "many_errors.yaml", PROVIDERS)
    found = [(d.path, where(d)) for d in info.value.diagnostics]
    assert found == [
        ("publishers[0].projects[1]", (3, 32)),            # duplicate after normalization
        ("publishers[0].repository_owner_id", (6, 26)),    # integer: quote it
        ("publishers[0].workflow_filename", (7, 24)),      # a path
        ("publishers[0].environment", (8, 18)),            # yes
        ("publishers[0].workflow_file", (9, 5)),           # did you mean
        ("publishers[1].provider", (10, 15)),              # unknown provider
        ("publishers[2].project", (17, 5)),                # duplicate key
        ("publishers[2].issuer_url", (19, 17)),            # unregistered issuer
        ("publishers[3].name", (21, 11)),                  # duplicate name
        ("publishers[3].pending_project", (22, 22)),       # bad project name
        ("publishers[3].email", (23, 12)),                 # leading space
        ("publishers[4]", (24, 5)),                        # not a mapping
        ("publisher", (25, 1)),                            # unknown top-level key
    ]
    rendered = str(info.value)
    assert "hint: quote it: '65'" in rendered
    assert "hint: did you mean 'workflow_filename'?" in rendered
    assert "hint: did you mean 'publishers'?" in rendered


# ---------------------------------------------------------------------- schema
def test_schema_is_valid_draft_2020_12() -> None:
    schema = publishers_schema(PROVIDERS)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["publisher"]["properties"]["provider"]["enum"] == sorted(PROVIDERS)
    github_branch = schema["$defs"]["provider_github"]
    assert github_branch["required"] == ["repository_owner", "repository_name",
                                         "repository_owner_id", "workflow_filename"]
    assert github_branch["properties"]["environment"]["default"] == ""


def test_schema_alone_accepts_the_valid_file_and_rejects_bad_ones() -> None:
    # Tools that only have the schema (editors, CI linters) get the same structure checks.
    validator = Draft202012Validator(publishers_schema(PROVIDERS))
    valid = yaml.safe_load((FIXTURES / "valid.yaml").read_text())
    assert list(validator.iter_errors(valid)) == []
    bad = yaml.safe_load((FIXTURES / "many_errors.yaml").read_text())
    assert len(list(validator.iter_errors(bad))) >= 8


def test_schema_of_no_providers() -> None:
    schema = publishers_schema({})
    Draft202012Validator.check_schema(schema)
    d = only_error("publishers:\n- provider: github\n  projects: [a]\n", providers={})
    assert d.hint == "the known providers are: none"


def test_write_shipped_schema(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    write_shipped_schema(PROVIDERS, path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text) == publishers_schema(PROVIDERS)
    assert text == json.dumps(publishers_schema(PROVIDERS), sort_keys=True, indent=2) + "\n"


def test_bad_provider_declarations_are_programming_errors() -> None:
    clash = parse_policy('provider p { issuer "https://p" fields { name: string } }')
    with pytest.raises(ValueError, match="clashes"):
        publishers_schema({"p": clash.providers[0]})
    odd = parse_policy('provider p { issuer "https://p" fields { n: list } }')
    with pytest.raises(ValueError, match="unknown type"):
        publishers_schema({"p": odd.providers[0]})


@pytest.mark.parametrize(("pattern", "python"), [
    ("^a$", r"^a\Z"),
    (r"^a\$$", r"^a\$\Z"),
    ("^[$]$", r"^[$]\Z"),
    ("^[]$]$", r"^[]$]\Z"),
    ("^[^]$]x$", r"^[^]$]x\Z"),
    ("^(?!.*-$)a$|^b$", r"^(?!.*-\Z)a\Z|^b\Z"),
    (r"^[\]$]$", r"^[\]$]\Z"),
])
def test_python_regex_translation(pattern: str, python: str) -> None:
    assert _python_regex(pattern) == python


def _shipped_providers() -> dict[str, Provider]:
    from tppolicy.language.providers import load_provider_files

    # Checked: a provider that `extends` another has the parent's fields too.
    checked = load_provider_files([ROOT / "policies" / f"{name}.tpp"
                                   for name in SHIPPED_POLICIES])
    return {name: provider.ast for name, provider in checked.items()}


_SHIPPED_MISSING = [n for n in SHIPPED_POLICIES if not (ROOT / "policies" / f"{n}.tpp").exists()]


@pytest.mark.skipif(bool(_SHIPPED_MISSING),
                    reason=f"policies/{{{','.join(_SHIPPED_MISSING)}}}.tpp not written yet")
def test_shipped_schema_matches_shipped_providers() -> None:
    shipped = ROOT / "schemas" / "publishers.schema.json"
    expected = json.dumps(publishers_schema(_shipped_providers()), sort_keys=True, indent=2)
    assert shipped.read_text(encoding="utf-8") == expected + "\n", (
        "schemas/publishers.schema.json is stale: regenerate it with "
        "tppolicy.decide.publishers.write_shipped_schema")


@pytest.mark.skipif(bool(_SHIPPED_MISSING), reason="shipped policies not written yet")
def test_valid_fixture_against_shipped_providers() -> None:
    entries = load_publishers_file(FIXTURES / "valid.yaml", _shipped_providers(), GITLAB_ISSUER)
    assert len(entries) == 5
