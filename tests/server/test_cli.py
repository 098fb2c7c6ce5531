"""`tppolicy serve` and its publishers sub-commands: exit codes, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tppolicy.cli import main
from tppolicy.server.storage import Storage

GH_FIELDS = ["repository_owner=octo-org", "repository_name=sampleproject",
             "repository_owner_id=65", "workflow_filename=release.yml", "environment=pypi"]


def run(*argv: str) -> int:
    return main(list(argv))


def test_publishers_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "index.db")
    assert run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS,
               "--project", "sampleproject", "--name", "release", "--added-by", "alice") == 0
    assert "added publisher release" in capsys.readouterr().out
    assert run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS[:-1],
               "--pending-project", "new-thing") == 0
    pending_id = capsys.readouterr().out.split()[-1]
    assert run("serve", "--db", db, "publishers", "list") == 0
    listing = capsys.readouterr().out
    assert "release\tgithub\tsampleproject\t" in listing
    assert f"{pending_id}\tgithub\tpending new-thing\t" in listing
    assert run("serve", "--db", db, "publishers", "list", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["id"] == "release" and rows[0]["added_by"] == "alice"
    assert run("serve", "--db", db, "publishers", "remove", "release") == 0
    assert run("serve", "--db", db, "publishers", "remove", "release") == 3
    assert "no publisher with id 'release'" in capsys.readouterr().err


def test_publishers_add_refuses_bad_rows(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "index.db")
    assert run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS[:-2],
               "workflow_filename=.github/workflows/r.yml", "--project", "x") == 3
    assert "workflow_filename" in capsys.readouterr().err
    assert run("serve", "--db", db, "publishers", "add", "githb", "--project", "x") == 2
    assert "unknown provider 'githb'" in capsys.readouterr().err
    assert run("serve", "--db", db, "publishers", "add", "github", "nonsense",
               "--project", "x") == 2
    with pytest.raises(SystemExit) as info:
        run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS)
    assert info.value.code == 2
    assert Storage(db).publishers() == []


def test_publishers_add_and_load_refuse_a_twin_of_a_stored_publisher(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A publisher the lookup cannot tell from a stored one (the same repository,
    workflow and environment) was stored, then refused at each sync of the server, which
    never served it; `tppolicy check` refuses such a file. Refused when added now."""
    db = str(tmp_path / "index.db")
    assert run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS,
               "--project", "sampleproject", "--name", "release") == 0
    capsys.readouterr()
    assert run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS,
               "--project", "other", "--name", "twin") == 3
    err = capsys.readouterr().err
    assert "twin has the same identity as release" in err
    assert "merge them into one publisher with both projects" in err
    twin = tmp_path / "twin.yaml"
    twin.write_text("publishers:\n  - name: twin\n    provider: github\n    projects: [other]\n"
                    + "".join(f"    {f.replace('=', ': ', 1)}\n" for f in GH_FIELDS)
                    .replace("65", '"65"'))
    assert run("serve", "--db", db, "publishers", "load", str(twin)) == 3
    assert "twin has the same identity as release" in capsys.readouterr().err
    assert [p.id for p in Storage(db).publishers()] == ["release"]
    # the same publisher replaced (its id), or one in another environment, is fine
    assert run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS,
               "--project", "other", "--name", "release") == 0
    assert run("serve", "--db", db, "publishers", "add", "github", *GH_FIELDS[:-1],
               "environment=release", "--project", "other", "--name", "twin") == 0


def test_publishers_load_a_yaml_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "index.db")
    assert run("serve", "--db", db, "publishers", "load", str(EXAMPLES / "publishers.yaml")) == 0
    assert "loaded 5 publishers" in capsys.readouterr().out
    ids = [p.id for p in Storage(db).publishers()]
    assert "sampleproject-github" in ids and "new-plugin-pending" in ids
    bad = tmp_path / "bad.yaml"
    bad.write_text("publishers:\n  - provider: github\n    projects: [x]\n")
    assert run("serve", "--db", db, "publishers", "load", str(bad)) == 3
    assert "bad.yaml" in capsys.readouterr().err
    assert run("serve", "--db", db, "publishers", "load", str(tmp_path / "missing.yaml")) == 3


def test_serve_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "index.db")
    assert run("serve", "--db", db, "--ssl-certfile", "x.pem") == 2
    assert "--ssl-certfile and --ssl-keyfile go together" in capsys.readouterr().err
    assert run("serve", "--db", db, "--jwks", "https://i.example=" + str(tmp_path / "no.json")
               ) == 3
    assert "no.json: cannot read the file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run("serve", "--jwks", "nonsense")
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:  # refused by the option's type, as --jwks
        run("serve", "--db", db, "--credential-ttl", "0")
    assert info.value.code == 2
    (tmp_path / "dir.db").mkdir()
    assert run("serve", "--db", str(tmp_path / "dir.db")) == 3
    assert "cannot open the database" in capsys.readouterr().err


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tppolicy", "serve", "--db", str(tmp_path / "i.db"),
             "--port", str(port)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_publishers_add_takes_fields_among_the_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`publishers add github --project p FIELD=VALUE`: a field after an option was an
    argparse usage error (unrecognized arguments); options and FIELD=VALUE go in any
    order, the provider too, and a malformed or repeated field is a clear usage error."""
    db = str(tmp_path / "index.db")
    assert run("serve", "--db", db, "publishers", "add", "github", "--project", "a",
               *GH_FIELDS[:2], "--name", "one", *GH_FIELDS[2:]) == 0
    assert run("serve", "--db", db, "publishers", "add", "--project", "b", GH_FIELDS[0],
               "github", *GH_FIELDS[1:-1], "--name", "two", "--", "environment=x") == 0
    rows = {p.id: p.row for p in Storage(db).publishers()}
    assert rows["one"]["environment"] == "pypi" and rows["one"]["projects"] == ["a"]
    assert rows["two"]["environment"] == "x" and rows["two"]["repository_owner_id"] == "65"
    capsys.readouterr()
    assert run("serve", "--db", db, "publishers", "add", "github", "--project", "c",
               *GH_FIELDS, "repository_owner=other") == 2
    assert "repository_owner given twice" in capsys.readouterr().err
    assert run("serve", "--db", db, "publishers", "add", "github", "--project", "c",
               *GH_FIELDS, "=1") == 2
    err = capsys.readouterr().err
    assert "expected FIELD=VALUE" in err and "repository_owner" in err and "'=1'" in err
    assert run("serve", "--db", db, "publishers", "add", "github", "--project", "c",
               *GH_FIELDS, "a\nb") == 2
    assert "'a\\nb'" in capsys.readouterr().err
    assert run("serve", "--db", db, "publishers", "add", GH_FIELDS[0], "--project", "c",
               "gitlab", "github") == 2
    assert "expected the provider" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run("serve", "--db", db, "publishers", "add", "github", "--project", "c",
            *GH_FIELDS, "--bogus")
    assert info.value.code == 2
    assert sorted(rows) == sorted(p.id for p in Storage(db).publishers())
