# GitLab CI/CD trusted publishers.
#
# Reproduces PyPI (pypi/warehouse, warehouse/oidc/models/gitlab.py) claim by claim.
# Where PyPI's behaviour is an accident, this file does the sound thing instead:
#
# * PyPI extracts the pipeline file path from `ci_config_ref_uri` with a greedy
#   regular expression: everything after the first "//" up to the LAST ".yml@" or
#   ".yaml@". A ref such as `refs/heads/hotfix.yml@v2` is then swallowed into the
#   path (`.gitlab-ci.yml@refs/heads/hotfix.yml`) and the lookup finds nothing.
#   Here the token's own `@ref_path` (or `@sha`) suffix is removed and the path is
#   what follows the first "//": the same answer for every well-formed token, and
#   no guessing when a ref or a file name contains "@" or ".yml".
# * A `project_path` claim without a "/" makes PyPI's split fail (HTTP 500). Here
#   the lookup keys cannot be computed, so no publisher matches, and the token is
#   denied.
# * PyPI compares strings with `str.__eq__`, which answers NotImplemented (truthy)
#   for a claim that is not a string. Here every claim has a type: a claim of the
#   wrong type (an integer `project_path`, say) is an error, and the token is denied.
# * Registration: PyPI strips the inputs and turns a whitespace-only environment
#   into "". Publisher files are not normalised, so the field patterns below refuse
#   leading and trailing blanks instead; they also refuse "//" in a namespace
#   (GitLab has no empty group name, and the path extraction relies on it).
#
# Case rules, as PyPI end to end: the lookup, `sub` and `project_path` match the
# namespace and project ignoring case, but `ci_config_ref_uri` compares them
# exactly with the publisher's spelling, so a publisher registered as `Acme` does
# not accept a token for `acme` (pypi/warehouse#18797, still open). The pipeline
# file path and the environment are matched exactly (case-sensitive, #18338).
# The ids (`project_id`, `namespace_id`) are not checked by default, as PyPI: such a
# publisher has no defence against a deleted namespace being taken over (#15643).
#
# Optional constraints PyPI does not have (docs/constraints.md): a ref_path pattern,
# the tag of the version being uploaded, a protected ref and environment, the runner,
# the project's and namespace's ids, and trust on first use. Each field's default
# turns its check off, and an `optional rule` that is off is left out of the
# publisher: a publisher that sets none of them is checked exactly as above.

provider gitlab {
  issuer "https://gitlab.com"
  # Self-managed instances registered by the operator; a publisher names its own
  # instance with `issuer_url`, which is also a lookup key.
  custom_issuers true
  algorithms ["RS256"]

  claims {
    required sub, project_path, ci_config_ref_uri: string
    present jti: string  # replay is the verifier's job; the claim must exist
    present ref_path, sha: string
    optional environment: string
    unchecked project_id, namespace_id, namespace_path, user_id, user_login, user_email: string
    unchecked user_identities, groups_direct: list
    unchecked pipeline_id, pipeline_source, job_id, ref, ref_type, ref_protected: string
    unchecked environment_protected, deployment_tier, environment_action: string
    unchecked runner_id: int
    unchecked runner_environment, ci_config_sha, project_visibility, user_access_level: string
    unchecked job_namespace_id, job_namespace_path, job_project_id, job_project_path: string
    unchecked job_source: string
    # `job_config` (an object, GitLab 18.9+) is not in PyPI's set either: like any
    # unknown claim it is reported, never refused.
  }

  fields {
    # A user name or a group path with its subgroups (`group/subgroup`). GitLab's
    # own rules: no run of special characters, no ".git" or ".atom" suffix.
    namespace: string matches "^(?!.*[._-]{2})(?!.*//)(?!.*\\.(git|atom)$)[a-zA-Z0-9][a-zA-Z0-9_./+-]*[a-zA-Z0-9]$"
        else "a GitLab user or group path such as my-group/my-subgroup (letters, digits, '_', '.', '-', '+' and '/'; starting and ending with a letter or digit)"
    project: string matches "^(?!.*[._-]{2})(?!.*\\.(git|atom)$)[a-zA-Z0-9][a-zA-Z0-9_.-]*[a-zA-Z0-9]$"
        else "a GitLab project path (letters, digits, '_', '.' and '-'; starting and ending with a letter or digit)"
    workflow_filepath: string matches "^(?![/\\s])[^\\x00-\\x1f]*[^/\\x00-\\x1f]\\.(yml|yaml)$"
        else "the path of the top-level pipeline file from the repository root, such as .gitlab-ci.yml or ci/release.yml (no leading '/')"
    environment: string = "" matches "^([a-zA-Z0-9_/${}-]([a-zA-Z0-9_/${} -]*[a-zA-Z0-9_/${}-])?)?$"
        else "a GitLab environment name (letters, digits, spaces, '-', '_', '/', '$', '{' and '}'; no blank at either end)"
    issuer_url: string = "https://gitlab.com" matches "^https://[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-zA-Z0-9._~-]+)*$"
        else "the instance's issuer URL, https:// without a trailing '/', such as https://gitlab.com"
    # Optional constraints: "" (or false) turns each off.
    ref_path_pattern: string = "" matches "^(refs/(?!\\**$)[^\\x00-\\x20]+)?$"
        else "an anchored glob over the token's ref_path, such as refs/tags/v* ('*' stops at '/', '**' does not); not only '*'"
    version_tag: string = "" matches "^([A-Za-z0-9._/+-]*\\{version\\}[A-Za-z0-9._/+-]*)?$"
        else "a tag name holding {version} once, such as v{version}: the pipeline must be for refs/tags/ and this tag, with the version being uploaded"
    ref_protected: bool = false
    environment_protected: bool = false
    runner_environment: string = "" matches "^(gitlab-hosted|self-hosted)?$"
        else "gitlab-hosted (refuses self-managed runners), or empty for any runner"
    project_id: string = "" matches "^([0-9]+)?$"
        else "the project's numeric id, as a string (the project's settings page), or empty"
    namespace_id: string = "" matches "^([0-9]+)?$"
        else "the namespace's (group's or user's) numeric id, as a string, or empty"
    trust_on_first_use: bool = false
  }

  # `ci_config_ref_uri` without its @ref_path / @sha suffix:
  # `gitlab.com/my-group/my-project//ci/release.yml`.
  let config_uri =
    if claims.ref_path != "" and ends_with(claims.ci_config_ref_uri, "@" + claims.ref_path)
    then strip_suffix(claims.ci_config_ref_uri, "@" + claims.ref_path)
    else strip_suffix(claims.ci_config_ref_uri, "@" + claims.sha)

  lookup {
    # The namespace is everything before the last "/" of project_path (subgroups
    # included). Both sides lowercased, as PyPI since #18905.
    identity lower(publisher.namespace) == lower(before_last(claims.project_path, "/"))
    identity lower(publisher.project) == lower(after_last(claims.project_path, "/"))
    key publisher.workflow_filepath == after(config_uri, "//")
    identity publisher.issuer_url == claims.iss
    # A publisher naming the token's environment (exactly) wins over one without.
    prefer publisher.environment == claims.environment
    prefer publisher.environment == ""
  }

  # Trust on first use (crates.io stores namespace_id so): a publisher that asks for it
  # learns the ids it has not pinned from the first token it allows.
  learn project_id: if publisher.trust_on_first_use and publisher.project_id == "" then claims.project_id else null

  learn namespace_id: if publisher.trust_on_first_use and publisher.namespace_id == "" then claims.namespace_id else null

  # The first two ':'-parts of `sub`, ignoring case; the rest (`:ref_type:...:ref:...`)
  # is ignored. Namespace and project cannot contain ':', so "the first two parts
  # equal X" is "sub is X, or starts with X:".
  rule sub {
    require claims.sub != "" else "the sub claim is empty"
    require lower(claims.sub) == lower("project_path:" + publisher.namespace + "/" + publisher.project)
        or starts_with(lower(claims.sub), lower("project_path:" + publisher.namespace + "/" + publisher.project) + ":")
  }

  rule project_path {
    require claims.project_path != "" else "the project_path claim is empty"
    require lower(claims.project_path) == lower(publisher.namespace + "/" + publisher.project)
  }

  # Exact, with the publisher's spelling: `{host}/{namespace}/{project}//{path}@{ref_path or sha}`.
  # Unlike GitHub, both ref_path and sha must be non-empty.
  rule ci_config_ref_uri {
    require claims.ci_config_ref_uri != "" else "the ci_config_ref_uri claim is empty"
    require claims.ref_path != "" and claims.sha != "" else "the ref_path and sha claims are empty"
    require claims.ci_config_ref_uri == strip_prefix(publisher.issuer_url, "https://") + "/" + publisher.namespace + "/" + publisher.project + "//" + publisher.workflow_filepath + "@" + claims.ref_path
        or claims.ci_config_ref_uri == strip_prefix(publisher.issuer_url, "https://") + "/" + publisher.namespace + "/" + publisher.project + "//" + publisher.workflow_filepath + "@" + claims.sha
  }

  # "" means any environment, or none. Otherwise the token must name it exactly.
  rule environment: publisher.environment == "" or claims.environment == publisher.environment

  # An anchored glob over ref_path (refs/tags/v*): not every branch may publish.
  optional rule ref_path: publisher.ref_path_pattern == ""
      or glob(claims.ref_path, publisher.ref_path_pattern)

  # The tag of the version being uploaded (pub.dev): the caller supplies the version.
  optional rule version_tag: publisher.version_tag == ""
      or claims.ref_path == "refs/tags/" + replace(publisher.version_tag, "{version}", request.version)

  optional rule ref_protected: not publisher.ref_protected or claims.ref_protected == "true"
      else "the ref is not protected: protect the branch or tag in the project's settings, or set ref_protected false"

  # Protected environments are a GitLab Premium feature; the claim is sent with the
  # environment.
  optional rule environment_protected: not publisher.environment_protected
      or claims.environment_protected == "true"
      else "the environment is not protected: protect it in the project's settings, or set environment_protected false"

  optional rule runner_environment: publisher.runner_environment == ""
      or claims.runner_environment == publisher.runner_environment

  # The ids survive renames and transfers: a namespace deleted and taken over, or a
  # project re-created under the same path, fails here (#15643).
  optional rule project_id: publisher.project_id == "" or claims.project_id == publisher.project_id

  optional rule namespace_id: publisher.namespace_id == ""
      or claims.namespace_id == publisher.namespace_id
}
