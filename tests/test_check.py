from __future__ import annotations

import pytest

import tppolicy
from tppolicy import PolicyCheckError
from tppolicy.language.check import check_policy, check_provider
from tppolicy.language.parse import parse_policy
from tppolicy.language.providers import load_providers

HEADER = '''provider p {
  issuer "https://issuer.example"
  claims {
    required repository: string
    optional environment: string
    unchecked run_id: string
  }
  fields { name: string  env: string = "" }
  lookup { key publisher.name == claims.repository }
'''


def _check(body: str) -> None:
    text = HEADER + body + "}\n"
    check_provider(parse_policy(text, "p.tpp").providers[0], text)


def _messages(body: str) -> str:
    with pytest.raises(PolicyCheckError) as info:
        _check(body)
    return str(info.value)


def test_a_valid_provider() -> None:
    _check('rule repository: claims.repository == publisher.name\n'
           'rule environment: publisher.env == "" or claims.environment == publisher.env\n')


def test_unknown_claim_with_did_you_mean() -> None:
    message = _messages('rule repository: claims.repositry == publisher.name\n'
                        'rule environment: claims.environment == "x"\n')
    assert "p.tpp:10:18: unknown claim 'repositry'" in message
    assert "did you mean 'repository'?" in message


def test_unknown_field_function_and_let() -> None:
    message = _messages('rule repository: lowr(claims.repository) == publisher.nme\n'
                        'rule environment: envv == "x"\n')
    assert "unknown function 'lowr'" in message and "did you mean 'lower'?" in message
    assert "unknown publisher field 'nme'" in message and "did you mean 'name'?" in message
    assert "'envv' is not defined" in message


def test_types() -> None:
    message = _messages('rule repository: claims.repository == 3\n'
                        'rule environment: claims.environment\n'
                        'rule x: len(claims.repository) < "a"\n')
    assert "'==' compares string with int: never equal" in message
    assert "a condition must be a boolean, found string or null" in message
    assert "'<' compares integers, found string" in message


def test_nullable_booleans_are_not_conditions() -> None:
    text = '''provider p {
  issuer "https://issuer.example"
  claims { optional flag: bool }
  rule flag: not claims.flag
}'''
    with pytest.raises(PolicyCheckError, match="must be a boolean, found bool or null"):
        check_provider(parse_policy(text, "p.tpp").providers[0], text)


def test_every_required_and_optional_claim_must_be_read() -> None:
    message = _messages('rule repository: claims.repository == publisher.name\n')
    assert "optional claim 'environment' is not read by any rule" in message


def test_all_errors_are_reported_together() -> None:
    message = _messages('rule repository: claims.nope == publisher.nope\n'
                        'rule repository: claims.environment == 1\n')
    assert message.count("\n") > 4
    assert "rule 'repository' is defined twice" in message
    assert "unknown claim 'nope'" in message
    assert "unknown publisher field 'nope'" in message


def test_lookup_sides() -> None:
    message = _messages('lookup { key claims.repository == publisher.name }\n'
                        'rule repository: claims.repository == publisher.name\n'
                        'rule environment: claims.environment == "x"\n')
    assert "the left side of a lookup key must read publisher fields" in message


def test_glob_everything_is_refused() -> None:
    message = _messages('rule repository: glob(claims.repository, "**")\n'
                        'rule environment: claims.environment == "x"\n')
    assert "a glob of only '*' matches everything" in message


def test_publisher_blocks() -> None:
    providers = load_providers()
    text = '''publisher "a" {
  provider githbu
  projects ["x"]
}
publisher "b" {
  provider github
  projects ["bad name!"]
  fields { repository_owner = "octo" workflow_filename = "dir/release.yml" colour = "red" }
  rule environment: publisher.environment == ""
}
'''
    with pytest.raises(PolicyCheckError) as info:
        check_policy(parse_policy(text, "c.tpp"), providers, text)
    message = str(info.value)
    assert "unknown provider 'githbu'" in message and "did you mean 'github'?" in message
    assert "'bad name!' is not a valid project name" in message
    assert "field 'workflow_filename' is 'dir/release.yml'" in message
    assert "provider 'github' has no field 'colour'" in message
    assert "field 'repository_name' is missing" in message
    assert "a publisher block's rules cannot read publisher fields" in message


def test_indistinguishable_publishers_are_refused() -> None:
    providers = load_providers()
    block = '''publisher "%s" {
  provider google
  projects ["%s"]
  fields { email = "a@example.iam.gserviceaccount.com" }
}
'''
    text = block % ("one", "x") + block % ("two", "y")
    # The rule is the decision core's (tests/test_core.py: both fronts apply it).
    with pytest.raises(PolicyCheckError, match="two has the same identity as one"):
        tppolicy.load_policy_text(text, "c.tpp", providers=providers)


def test_a_publisher_without_rules_needs_provider_rules() -> None:
    text = '''provider bare {
  issuer "https://issuer.example"
  claims { present sub: string }
  fields { sub: string }
  lookup { key publisher.sub == claims.sub }
}
publisher { provider bare projects ["x"] fields { sub = "s" } }
'''
    with pytest.raises(PolicyCheckError, match="publisher has no rules"):
        check_policy(parse_policy(text, "c.tpp"), {}, text)


def test_the_checks_set_aside_on_case_are_worked_out_once() -> None:
    # every near miss's explanation asks for them (explain_record): a walk of every rule's
    # conditions each time cost a third of a refusal's time
    github = load_providers()["github"]
    assert github.case_aside is github.case_aside
    assert github.case_aside == {"repository", "repository_owner", "lookup.repository_owner",
                                 "lookup.repository_name"}
