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
  # What `tppolicy check-workflow` reads of a publisher, to check a pipeline file before it
  # runs: the file it names (its path), the environment, the refs it accepts (globs),
  # whether its ref and environment must be protected.
  workflows gitlab_ci {
    repository: publisher.namespace + "/" + publisher.project
    file: publisher.workflow_filepath
    environment: publisher.environment
    refs: [publisher.ref_path_pattern, version_tag_refs]
    ref_protected: publisher.ref_protected
    environment_protected: publisher.environment_protected
  }

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
        exact_case "PyPI compares it exactly (ci_config_ref_uri, pypi/warehouse#18797), so it must be spelled as GitLab spells it"
    project: string matches "^(?!.*[._-]{2})(?!.*\\.(git|atom)$)[a-zA-Z0-9][a-zA-Z0-9_.-]*[a-zA-Z0-9]$"
        else "a GitLab project path (letters, digits, '_', '.' and '-'; starting and ending with a letter or digit)"
        exact_case "PyPI compares it exactly (ci_config_ref_uri, pypi/warehouse#18797), so it must be spelled as GitLab spells it"
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
  # PEP 740 attestations (tppolicy serve): the identity an upload's attestation must be
  # signed by, as pypi-attestations' publisher of this kind with these fields.
  let attestation_kind = "GitLab"
  let attestation_repository = publisher.namespace + "/" + publisher.project
  let attestation_workflow_filepath = publisher.workflow_filepath
  let attestation_environment = if publisher.environment == "" then null else publisher.environment
  let config_uri =
    if claims.ref_path != "" and ends_with(claims.ci_config_ref_uri, "@" + claims.ref_path)
    then strip_suffix(claims.ci_config_ref_uri, "@" + claims.ref_path)
    else strip_suffix(claims.ci_config_ref_uri, "@" + claims.sha)
  # For the fixes: the pipeline file, the project and the host the token names, and the
  # project the publisher names.
  let config_path = after(config_uri, "//")
  let config_project = after(before(config_uri, "//"), "/")
  let config_host = before(config_uri, "/")
  let publisher_project = publisher.namespace + "/" + publisher.project
  # The refs a version_tag accepts, whatever the version: a glob (check-workflow).
  let version_tag_refs =
    if publisher.version_tag == ""
    then ""
    else "refs/tags/" + replace(publisher.version_tag, "{version}", "*")

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

  # PyPI e-mails the owners when a token names an environment the publisher ignores.
  note when publisher.environment == "" and has(claims.environment) and claims.environment != ""
      "the token has environment '{claims.environment}' but this publisher accepts any environment; name it in the publisher to require it"

  # Lint's advice on the optional constraints (TPP014; docs/constraints.md has each threat).
  advise ref_path_pattern when glob("refs/heads/any-branch", publisher.ref_path_pattern)
      "'{publisher.ref_path_pattern}' admits every branch: anyone who can push a branch can run the publishing job; name the branch (refs/heads/main) or match release tags (refs/tags/v*)"

  advise ref_path_pattern when publisher.ref_path_pattern != "" and not publisher.ref_protected
      "a ref pattern constrains the ref's name, not who may push it: anyone with write access can push a matching ref; protect those refs and set ref_protected: true"

  advise version_tag when publisher.version_tag != "" and not publisher.ref_protected
      "'{publisher.version_tag}' names the tag, not who may push it: anyone with write access can push a tag for a new version; protect the tags and set ref_protected: true"

  advise runner_environment when publisher.runner_environment == "self-hosted"
      "self-hosted runners keep state between jobs and are shared by the group's projects: a token minted there is only as safe as the machine; use gitlab-hosted unless the runner is ephemeral and dedicated"

  # The first two ':'-parts of `sub`, ignoring case; the rest (`:ref_type:...:ref:...`)
  # is ignored. Namespace and project cannot contain ':', so "the first two parts
  # equal X" is "sub is X, or starts with X:".
  identity rule project_path {
    require claims.project_path != "" else "the project_path claim is empty"
    require lower(claims.project_path) == lower(publisher.namespace + "/" + publisher.project)
    fix token when claims.project_path == ""
        "The token's project_path claim is empty, but every GitLab token names its project: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix publisher
        "The token comes from the GitLab project '{claims.project_path}', the publisher is for '{publisher_project}'. If the project was moved or renamed, update the publisher's namespace and project; otherwise add a publisher for this project. GitLab publishers have no id to catch a deleted namespace taken over by someone else (pypi/warehouse#15643): check who owns it now."
  }

  identity rule sub {
    require claims.sub != "" else "the sub claim is empty"
    require lower(claims.sub) == lower("project_path:" + publisher.namespace + "/" + publisher.project)
        or starts_with(lower(claims.sub), lower("project_path:" + publisher.namespace + "/" + publisher.project) + ":")
    fix token when claims.sub == ""
        "The token's sub claim is empty, but every GitLab token has one (project_path:GROUP/PROJECT:ref_type:...): these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix token when lower(claims.project_path) == lower(publisher_project)
        "The token's sub '{claims.sub}' names another project than its project_path '{claims.project_path}': GitLab issues both for the same project, so these claims were not issued together, or were altered. Pass the claims of the token as the job received it."
  }

  # Exact, with the publisher's spelling: `{host}/{namespace}/{project}//{path}@{ref_path or sha}`.
  # Unlike GitHub, both ref_path and sha must be non-empty.
  rule ci_config_ref_uri {
    require claims.ci_config_ref_uri != "" else "the ci_config_ref_uri claim is empty"
    require claims.ref_path != "" else "the ref_path claim is empty"
    require claims.sha != "" else "the sha claim is empty"
    require claims.ci_config_ref_uri == strip_prefix(publisher.issuer_url, "https://") + "/" + publisher.namespace + "/" + publisher.project + "//" + publisher.workflow_filepath + "@" + claims.ref_path
        or claims.ci_config_ref_uri == strip_prefix(publisher.issuer_url, "https://") + "/" + publisher.namespace + "/" + publisher.project + "//" + publisher.workflow_filepath + "@" + claims.sha
    fix publisher when claims.iss != publisher.issuer_url
        "The token comes from the GitLab instance '{claims.iss}', the publisher is for '{publisher.issuer_url}' (issuer_url)."
    fix token when claims.ci_config_ref_uri == ""
        "The token's ci_config_ref_uri claim is empty, but every GitLab token names its pipeline file: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix token when claims.ref_path == ""
        "The token's ref_path claim is empty, so it does not say which ref the pipeline ran for: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix token when claims.sha == ""
        "The token's sha claim is empty, so it does not say which commit the pipeline ran: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix workflow when not ends_with(claims.ci_config_ref_uri, "@" + claims.ref_path) and not ends_with(claims.ci_config_ref_uri, "@" + claims.sha)
        "The token's ci_config_ref_uri '{claims.ci_config_ref_uri}' ends in neither the pipeline's ref '{claims.ref_path}' nor its commit {claims.sha}: PyPI accepts the pipeline file only at the ref or commit the pipeline runs for. Publish from a pipeline that runs the project's own {publisher.workflow_filepath} at that ref."
    fix publisher when lower(config_project) == lower(publisher_project) and config_project != publisher_project
        "GitLab namespace case mismatch: the pipeline's ci_config_ref_uri names '{config_project}', the publisher '{publisher_project}'. PyPI compares it exactly with the publisher's spelling (pypi/warehouse#18797): write the namespace and project in the publisher as GitLab spells them."
    fix workflow when lower(config_project) != lower(publisher_project) and lower(claims.project_path) == lower(publisher_project)
        "The pipeline file comes from the project '{config_project}' (ci_config_ref_uri), but the job runs in '{claims.project_path}': PyPI checks the top-level pipeline file, which must be the project's own (a pipeline defined in another project cannot publish). Publish from a pipeline file of '{publisher_project}', such as {publisher.workflow_filepath}."
    fix publisher when lower(config_path) == lower(publisher.workflow_filepath) and config_path != publisher.workflow_filepath
        "Fix the pipeline file's case: it is '{config_path}', the publisher says '{publisher.workflow_filepath}', and the path is compared exactly."
    fix workflow or publisher when config_path != publisher.workflow_filepath
        "The pipeline ran from '{config_path}', the publisher is for '{publisher.workflow_filepath}' (the top-level pipeline file, from the repository root). Change workflow_filepath, or publish from that file."
    fix publisher when config_host != strip_prefix(publisher.issuer_url, "https://")
        "The pipeline ran on '{config_host}', the publisher is for '{publisher.issuer_url}'."
  }

  # "" means any environment, or none. Otherwise the token must name it exactly.
  rule environment {
    require publisher.environment == "" or claims.environment == publisher.environment
    fix workflow when not has(claims.environment) or claims.environment == ""
        "The job ran without a deployment environment, but the publisher requires '{publisher.environment}'. Add `environment: {publisher.environment}` to the publishing job, or remove the environment from the publisher (not recommended: the environment's protection rules guard the release)."
    fix workflow or publisher when lower(claims.environment) == lower(publisher.environment)
        "GitLab environment names are case-sensitive: the job ran in '{claims.environment}', the publisher says '{publisher.environment}'. Spell them the same in both."
    fix workflow when trim(claims.environment) != claims.environment
        "The job ran in the environment '{claims.environment}', with blanks around its name; the publisher expects '{publisher.environment}'. Write `environment: {publisher.environment}` in the publishing job, without the blanks (a publisher's environment cannot hold them)."
    fix workflow or publisher
        "Rename the environment: the job ran in '{claims.environment}', the publisher expects '{publisher.environment}'. Set `environment: {publisher.environment}` in the publishing job, or change the publisher's environment to '{claims.environment}'."
  }

  # An anchored glob over ref_path (refs/tags/v*): not every branch may publish.
  optional rule ref_path {
    require publisher.ref_path_pattern == "" or glob(claims.ref_path, publisher.ref_path_pattern)
    fix workflow or publisher
        "The pipeline is for '{claims.ref_path}', the publisher accepts only refs matching '{publisher.ref_path_pattern}'. Publish from such a ref (push a matching tag), or change the publisher's ref_path_pattern."
  }

  # The tag of the version being uploaded (pub.dev): the caller supplies the version.
  optional rule version_tag {
    require publisher.version_tag == ""
        or claims.ref_path == "refs/tags/" + replace(publisher.version_tag, "{version}", request.version)
    fix operator when request.version == null
        "The publisher's version_tag '{publisher.version_tag}' names the tag of the version being uploaded, and no version was given to compare the pipeline's tag with. Give the version: `tppolicy check --upload-version VERSION` (or `explain`'s); an index takes it from the upload."
    fix workflow
        "The pipeline is for '{claims.ref_path}', but the version being uploaded is '{request.version}' and the publisher's version_tag is '{publisher.version_tag}': upload the version the tag names, or push the tag of this version."
  }

  optional rule ref_protected {
    require not publisher.ref_protected or claims.ref_protected == "true"
        else "the ref is not protected: protect the branch or tag in the project's settings, or set ref_protected false"
    fix operator or publisher
        "The pipeline's ref '{claims.ref_path}' is not protected: protect the branch or tag in the project's settings (Repository, Protected branches / tags), or set ref_protected false in the publisher."
  }

  # Protected environments are a GitLab Premium feature; the claim is sent with the
  # environment.
  optional rule environment_protected {
    require not publisher.environment_protected or claims.environment_protected == "true"
        else "the environment is not protected: protect it in the project's settings, or set environment_protected false"
    fix workflow or publisher when not has(claims.environment)
        "The job ran without an environment, so none is protected, and the publisher requires a protected one: give the publishing job a protected `environment:`, or set environment_protected false in the publisher."
    fix operator or publisher
        "The environment '{claims.environment}' is not protected: protect it in the project's settings (Operate, Environments; GitLab Premium), or set environment_protected false in the publisher."
  }

  optional rule runner_environment {
    require publisher.runner_environment == ""
        or claims.runner_environment == publisher.runner_environment
    fix token when not has(claims.runner_environment)
        "The token does not say what runner the job ran on (it has no runner_environment claim), the publisher accepts only '{publisher.runner_environment}' runners: GitLab sets the claim in every token, so these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix workflow
        "The job ran on a runner that is '{claims.runner_environment}', the publisher accepts only '{publisher.runner_environment}' runners. Run the publishing job on such a runner (tags)."
  }

  # The ids survive renames and transfers: a namespace deleted and taken over, or a
  # project re-created under the same path, fails here (#15643).
  optional rule project_id {
    require publisher.project_id == "" or claims.project_id == publisher.project_id
    fix token when not has(claims.project_id)
        "The token has no project_id claim, and the publisher pins '{publisher.project_id}': GitLab sets the claim in every token, so these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix publisher
        "The token's project id is '{claims.project_id}', the publisher pins '{publisher.project_id}': the project '{claims.project_path}' was deleted and re-created, or its path taken by another. Check who controls it before updating the publisher's project_id."
  }

  optional rule namespace_id {
    require publisher.namespace_id == "" or claims.namespace_id == publisher.namespace_id
    fix token when not has(claims.namespace_id)
        "The token has no namespace_id claim, and the publisher pins '{publisher.namespace_id}': GitLab sets the claim in every token, so these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix publisher
        "The token's namespace id is '{claims.namespace_id}', the publisher pins '{publisher.namespace_id}': the namespace was deleted and taken over by someone else (pypi/warehouse#15643). Check who controls it before updating the publisher's namespace_id."
  }
}
