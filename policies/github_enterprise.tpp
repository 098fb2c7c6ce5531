# GitHub Enterprise trusted publishers: GitHub Enterprise Cloud with a unique issuer
# (https://token.actions.githubusercontent.com/<enterprise-slug>), GHE.com with data
# residency (https://token.actions.<subdomain>.ghe.com) and GitHub Enterprise Server
# (https://<host>/_services/token).
#
# PyPI refuses these issuers (pypi/warehouse#18970), so the `github` provider does too.
# This provider takes the issuers an operator registers (`--issuer URL=github_enterprise`):
# each publisher names its instance with `issuer_url`, a lookup identity and a rule, so a
# token of one enterprise never matches another's publisher even where repository names
# and owner ids collide (owner ids are per instance on GitHub Enterprise Server).
#
# Everything else is the `github` provider's, word for word (tests/test_provider_sync.py
# keeps the two alike): the same claims, fields, lookup, rules and optional constraints.
# Its header there explains where the rules depart from PyPI's.

provider github_enterprise {
  # No built-in issuer: every issuer is registered by the operator.
  custom_issuers true
  algorithms ["RS256"]

  claims {
    required repository, repository_owner, repository_owner_id, job_workflow_ref: string
    required event_name: string
    present jti: string  # replay is the verifier's job; the claim must exist
    present ref, sha: string
    optional environment: string
    unchecked sub, actor, actor_id, run_id, run_number, run_attempt, head_ref, base_ref: string
    unchecked ref_type, repository_id, workflow, repository_visibility, workflow_sha: string
    unchecked job_workflow_sha, workflow_ref, runner_environment, environment_node_id: string
    unchecked enterprise, enterprise_id, ref_protected, check_run_id, issuer_scope: string
    ignore prefix "repo_property_"
  }

  fields {
    repository_owner: string matches "^[A-Za-z0-9][A-Za-z0-9-]*$"
        else "a GitHub user or organization name (letters, digits and '-')"
    repository_name: string matches "^[A-Za-z0-9._-]+$"
        else "a GitHub repository name (letters, digits, '.', '_' and '-')"
    repository_owner_id: string matches "^[0-9]+$"
        else "the owner's numeric id, as a string (https://api.github.com/users/OWNER)"
    workflow_filename: string matches "^[^/]+\\.(yml|yaml)$"
        else "a workflow file name such as release.yml, not a path"
    environment: string = "" matches "^([^\\x00-\\x1f'\"`,;\\\\ ]([^\\x00-\\x1f'\"`,;\\\\]{0,253}[^\\x00-\\x1f'\"`,;\\\\ ])?)?$"
        else "an environment name of at most 255 characters, without quotes, ',', ';' or '\\'"
    # Optional constraints: "" (or false) turns each off.
    caller_workflow: string = "" matches "^(([A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+/\\.github/workflows/)?[^/@*?\\x00-\\x1f]+\\.(yml|yaml))?$"
        else "the calling (top-level) workflow: a file name in the publisher's repository (release.yml) or OWNER/REPO/.github/workflows/FILE"
    reusable_workflow: string = "" matches "^([A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+/\\.github/workflows/[^/@*?\\x00-\\x1f]+\\.(yml|yaml)@(?!\\**$)[^\\x00-\\x20]+)?$"
        else "the called workflow of another repository with its ref: OWNER/REPO/.github/workflows/FILE@REF, the ref exact, a commit sha, or a glob such as refs/tags/v*"
    ref_pattern: string = "" matches "^(refs/(?!\\**$)[^\\x00-\\x20]+)?$"
        else "an anchored glob over the token's ref, such as refs/tags/v* ('*' stops at '/', '**' does not); not only '*'"
    version_tag: string = "" matches "^([A-Za-z0-9._/+-]*\\{version\\}[A-Za-z0-9._/+-]*)?$"
        else "a tag name holding {version} once, such as v{version}: the run must be for refs/tags/ and this tag, with the version being uploaded"
    ref_protected: bool = false
    runner_environment: string = "" matches "^(github-hosted|self-hosted)?$"
        else "github-hosted (refuses self-hosted runners), or empty for any runner"
    allowed_events: string = "" matches "^([a-z_]+(,[a-z_]+)*)?$"
        else "the events that may publish, separated by ',' (release,workflow_dispatch), or empty for any"
    denied_events: string = "" matches "^([a-z_]+(,[a-z_]+)*)?$"
        else "events refused besides pull_request_target, separated by ',' (workflow_run), or empty"
    repository_id: string = "" matches "^([0-9]+)?$"
        else "the repository's numeric id, as a string (https://api.github.com/repos/OWNER/REPO), or empty"
    trust_on_first_use: bool = false
    # The instance: the issuer the operator registered for it.
    issuer_url: string matches "^https://(token\\.actions\\.githubusercontent\\.com/[A-Za-z0-9][A-Za-z0-9-]*|token\\.actions\\.[a-z0-9][a-z0-9-]*\\.ghe\\.com|[a-zA-Z0-9.-]+(:[0-9]+)?/_services/token)$"
        else "the enterprise's issuer: https://token.actions.githubusercontent.com/SLUG, https://token.actions.SUBDOMAIN.ghe.com or https://HOST/_services/token"
  }

  # The path of the workflow that ran the job: job_workflow_ref without its @ref / @sha.
  let workflow_path =
    if claims.ref != "" and ends_with(claims.job_workflow_ref, "@" + claims.ref)
    then strip_suffix(claims.job_workflow_ref, "@" + claims.ref)
    else strip_suffix(claims.job_workflow_ref, "@" + claims.sha)
  # Does the job run a workflow of the token's own repository (not a reusable workflow
  # of another repository)?
  let job_in_repository =
    starts_with(claims.job_workflow_ref, claims.repository + "/.github/workflows/")
  # The path of the calling (top-level) workflow: workflow_ref without its @ref.
  let caller_path = strip_suffix(claims.workflow_ref, "@" + claims.ref)
  # The calling workflow a publisher expects: caller_workflow as a path, or a file of its
  # repository; with a reusable_workflow and no caller_workflow, its own workflow_filename.
  let expected_caller =
    if contains(publisher.caller_workflow, "/")
    then publisher.caller_workflow
    else publisher.repository_owner + "/" + publisher.repository_name + "/.github/workflows/" + (if publisher.caller_workflow != "" then publisher.caller_workflow else publisher.workflow_filename)

  # Who the publisher is (identity) and which of its workflows (key); a token that
  # shares no publisher's identity is told nothing about anyone's configuration.
  # The workflow is the job's, as PyPI; when the job runs a reusable workflow of another
  # repository, it is the calling workflow (which a reusable_workflow publisher names).
  lookup {
    identity publisher.issuer_url == claims.iss
    identity publisher.repository_owner == before(claims.repository, "/")
    identity publisher.repository_name == after(claims.repository, "/")
    identity publisher.repository_owner_id == claims.repository_owner_id
    key publisher.workflow_filename == after_last(if job_in_repository then workflow_path else caller_path, "/")
    # A publisher naming the token's environment wins over one without an environment.
    prefer lower(publisher.environment) == lower(claims.environment)
    prefer publisher.environment == ""
  }

  # Trust on first use: a publisher that asks for it and has no repository_id yet learns
  # the one of the first token it allows (the decision reports it, to pin).
  learn repository_id: if publisher.trust_on_first_use and publisher.repository_id == "" then claims.repository_id else null

  # The instance that issued the token (also a lookup identity).
  rule issuer: claims.iss == publisher.issuer_url

  rule repository {
    require claims.repository != "" else "the repository claim is empty"
    require lower(claims.repository) == lower(publisher.repository_owner + "/" + publisher.repository_name)
  }

  rule repository_owner: claims.repository_owner == publisher.repository_owner

  # The numeric id survives renames: a deleted account's name taken by someone else fails here.
  rule repository_owner_id: claims.repository_owner_id == publisher.repository_owner_id

  # The workflow that ran the job: the publisher's own, at the token's ref or sha (PyPI);
  # or, with reusable_workflow, that workflow of another repository (its ref a glob).
  rule job_workflow_ref {
    require claims.job_workflow_ref != "" else "the job_workflow_ref claim is empty"
    require claims.ref != "" or claims.sha != "" else "the ref and sha claims are empty"
    require publisher.reusable_workflow == ""
        or not starts_with(lower(publisher.reusable_workflow), lower(publisher.repository_owner + "/" + publisher.repository_name + "/"))
        else "reusable_workflow is in the publisher's own repository: name the called file in workflow_filename and the caller in caller_workflow"
    require publisher.reusable_workflow == "" and (claims.ref != "" and claims.job_workflow_ref == publisher.repository_owner + "/" + publisher.repository_name + "/.github/workflows/" + publisher.workflow_filename + "@" + claims.ref or claims.sha != "" and claims.job_workflow_ref == publisher.repository_owner + "/" + publisher.repository_name + "/.github/workflows/" + publisher.workflow_filename + "@" + claims.sha)
        or publisher.reusable_workflow != "" and glob(claims.job_workflow_ref, publisher.reusable_workflow)
  }

  # The calling (top-level) workflow, when the publisher names one or calls a reusable
  # workflow: workflow_ref (crates.io's and npm's claim) at the token's ref.
  optional rule workflow_ref: publisher.caller_workflow == "" and publisher.reusable_workflow == ""
      or caller_path == expected_caller

  rule event_name: claims.event_name != "pull_request_target"
      else "publishing from a workflow invoked via 'pull_request_target' is not supported"

  # "" means any environment, or none. Otherwise the token must name it, ignoring case.
  rule environment: publisher.environment == ""
      or lower(claims.environment) == lower(publisher.environment)

  # An anchored glob over the ref (refs/tags/v*): not every branch may publish.
  optional rule ref: publisher.ref_pattern == "" or glob(claims.ref, publisher.ref_pattern)

  # The tag of the version being uploaded (pub.dev): the caller supplies the version.
  optional rule version_tag: publisher.version_tag == ""
      or claims.ref == "refs/tags/" + replace(publisher.version_tag, "{version}", request.version)

  # GitHub sends "true" only when pushing or creating the ref is restricted by a rule.
  optional rule ref_protected: not publisher.ref_protected or claims.ref_protected == "true"
      else "the ref is not protected: protect the branch or tag (a ruleset), or set ref_protected false"

  optional rule runner_environment: publisher.runner_environment == ""
      or claims.runner_environment == publisher.runner_environment

  optional rule allowed_events: publisher.allowed_events == ""
      or claims.event_name in split(publisher.allowed_events, ",")

  # crates.io also refuses workflow_run: `denied_events: workflow_run`.
  optional rule denied_events: publisher.denied_events == ""
      or claims.event_name not in split(publisher.denied_events, ",")

  # The repository's id survives renames and transfers: a repository deleted and
  # re-created under the same name fails here.
  optional rule repository_id: publisher.repository_id == ""
      or claims.repository_id == publisher.repository_id
}
