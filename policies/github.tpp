# GitHub Actions trusted publishers.
#
# Reproduces PyPI (pypi/warehouse, warehouse/oidc/models/github.py) claim by claim.
# Where PyPI's behaviour is an accident, this file does the sound thing instead:
#
# * A `repository` claim without a "/" crashes PyPI's lookup (HTTP 500). Here the
#   lookup key cannot be computed, so no publisher matches, and the token is denied.
# * PyPI extracts the workflow file name from `job_workflow_ref` with a regular
#   expression (the leftmost "<name>.yml@"). Here the token's own `@ref` (or `@sha`)
#   suffix is removed and the last path segment is the file name: the same answer
#   for every well-formed token, and no guessing when a ref contains "@" or ".yml".
# * PyPI accepts `job_workflow_ref == "<path>@"` when `ref` is empty. Here an empty
#   ref or sha never completes a `job_workflow_ref`.
# * PyPI's environment lookup lowercases only the token side; the publisher side is
#   stored lowercased by its form. Publisher files are not normalised, so both
#   sides are lowercased here: the same decisions.
#
# Case rules, as PyPI end to end: owner and repository name are matched exactly by
# the lookup (the `repository` rule alone would accept any case), the workflow file
# name exactly, the environment ignoring case.

provider github {
  issuer "https://token.actions.githubusercontent.com"
  custom_issuers false
  algorithms ["RS256"]

  claims {
    required repository, repository_owner, repository_owner_id, job_workflow_ref: string
    required event_name: string
    present jti: string   # replay is the verifier's job; the claim must exist
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
  }

  # The path of the workflow that ran the job: job_workflow_ref without its @ref / @sha.
  let workflow_path =
    if claims.ref != "" and ends_with(claims.job_workflow_ref, "@" + claims.ref)
    then strip_suffix(claims.job_workflow_ref, "@" + claims.ref)
    else strip_suffix(claims.job_workflow_ref, "@" + claims.sha)

  # Who the publisher is (identity) and which of its workflows (key); a token that
  # shares no publisher's identity is told nothing about anyone's configuration.
  lookup {
    identity publisher.repository_owner == before(claims.repository, "/")
    identity publisher.repository_name == after(claims.repository, "/")
    identity publisher.repository_owner_id == claims.repository_owner_id
    key publisher.workflow_filename == after_last(workflow_path, "/")
    # A publisher naming the token's environment wins over one without an environment.
    prefer lower(publisher.environment) == lower(claims.environment)
    prefer publisher.environment == ""
  }

  rule repository {
    require claims.repository != "" else "the repository claim is empty"
    require lower(claims.repository)
      == lower(publisher.repository_owner + "/" + publisher.repository_name)
  }

  rule repository_owner: claims.repository_owner == publisher.repository_owner

  # The numeric id survives renames: a deleted account's name taken by someone else fails here.
  rule repository_owner_id: claims.repository_owner_id == publisher.repository_owner_id

  rule job_workflow_ref {
    require claims.job_workflow_ref != "" else "the job_workflow_ref claim is empty"
    require claims.ref != "" or claims.sha != "" else "the ref and sha claims are empty"
    require
      claims.ref != "" and claims.job_workflow_ref
        == publisher.repository_owner + "/" + publisher.repository_name
           + "/.github/workflows/" + publisher.workflow_filename + "@" + claims.ref
      or claims.sha != "" and claims.job_workflow_ref
        == publisher.repository_owner + "/" + publisher.repository_name
           + "/.github/workflows/" + publisher.workflow_filename + "@" + claims.sha
  }

  rule event_name: claims.event_name != "pull_request_target"
    else "publishing from a workflow invoked via 'pull_request_target' is not supported"

  # "" means any environment, or none. Otherwise the token must name it, ignoring case.
  rule environment:
    publisher.environment == "" or lower(claims.environment) == lower(publisher.environment)
}
