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
# The ids (`project_id`, `namespace_id`) are not checked: GitLab publishers have
# no defence against a deleted namespace being taken over (#15643).

provider gitlab {
  issuer "https://gitlab.com"
  # Self-managed instances registered by the operator; a publisher names its own
  # instance with `issuer_url`, which is also a lookup key.
  custom_issuers true
  algorithms ["RS256"]

  claims {
    required sub, project_path, ci_config_ref_uri: string
    present jti: string   # replay is the verifier's job; the claim must exist
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
    namespace: string
      matches "^(?!.*[._-]{2})(?!.*//)(?!.*\\.(git|atom)$)[a-zA-Z0-9][a-zA-Z0-9_./+-]*[a-zA-Z0-9]$"
      else "a GitLab user or group path such as my-group/my-subgroup (letters, digits, '_', '.', '-', '+' and '/'; starting and ending with a letter or digit)"
    project: string
      matches "^(?!.*[._-]{2})(?!.*\\.(git|atom)$)[a-zA-Z0-9][a-zA-Z0-9_.-]*[a-zA-Z0-9]$"
      else "a GitLab project path (letters, digits, '_', '.' and '-'; starting and ending with a letter or digit)"
    workflow_filepath: string
      matches "^(?![/\\s])[^\\x00-\\x1f]*[^/\\x00-\\x1f]\\.(yml|yaml)$"
      else "the path of the top-level pipeline file from the repository root, such as .gitlab-ci.yml or ci/release.yml (no leading '/')"
    environment: string = ""
      matches "^([a-zA-Z0-9_/${}-]([a-zA-Z0-9_/${} -]*[a-zA-Z0-9_/${}-])?)?$"
      else "a GitLab environment name (letters, digits, spaces, '-', '_', '/', '$', '{' and '}'; no blank at either end)"
    issuer_url: string = "https://gitlab.com"
      matches "^https://[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-zA-Z0-9._~-]+)*$"
      else "the instance's issuer URL, https:// without a trailing '/', such as https://gitlab.com"
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

  # The first two ':'-parts of `sub`, ignoring case; the rest (`:ref_type:...:ref:...`)
  # is ignored. Namespace and project cannot contain ':', so "the first two parts
  # equal X" is "sub is X, or starts with X:".
  rule sub {
    require claims.sub != "" else "the sub claim is empty"
    require
      lower(claims.sub) == lower("project_path:" + publisher.namespace + "/" + publisher.project)
      or starts_with(lower(claims.sub),
                     lower("project_path:" + publisher.namespace + "/" + publisher.project) + ":")
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
    require
      claims.ci_config_ref_uri
        == strip_prefix(publisher.issuer_url, "https://") + "/" + publisher.namespace + "/"
           + publisher.project + "//" + publisher.workflow_filepath + "@" + claims.ref_path
      or claims.ci_config_ref_uri
        == strip_prefix(publisher.issuer_url, "https://") + "/" + publisher.namespace + "/"
           + publisher.project + "//" + publisher.workflow_filepath + "@" + claims.sha
  }

  # "" means any environment, or none. Otherwise the token must name it exactly.
  rule environment:
    publisher.environment == "" or claims.environment == publisher.environment
}
