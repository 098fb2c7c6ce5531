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
# * An empty ref or sha never completes a `job_workflow_ref` (`<path>@`): PyPI accepted
#   that until 2023 and refuses it since, as here.
# * PyPI's environment lookup lowercases only the token side; the publisher side is
#   stored lowercased by its form. Publisher files are not normalised, so both
#   sides are lowercased here: the same decisions.
#
# Case rules, as PyPI end to end: owner and repository name are matched exactly by
# the lookup, and by the `repository` rule (PyPI's ignores case, but its lookup refuses
# such a token anyway: here the refusal names the repository's case, not the workflow
# path that holds it), the workflow file name exactly, the environment ignoring case (ASCII letters only: a Kelvin sign is not
# a 'k').
#
# Each rule says what to change when it fails (`fix`), with the values filled in;
# `tppolicy explain` shows the fixes, and a server shows those of rules that are not
# `identity` rules (who the publisher is) to whoever presented the token.
#
# Optional constraints PyPI does not have (docs/constraints.md): the calling and the
# called (reusable) workflow, a ref pattern, the tag of the version being uploaded,
# a protected ref, the runner, allowed and denied events, the repository's id, and
# trust on first use. Each field's default turns its check off, and an `optional
# rule` that is off is left out of the publisher: a publisher that sets none of
# them is checked exactly as above, as PyPI checks it.

provider github {
  issuer "https://token.actions.githubusercontent.com"
  algorithms ["RS256"]
  # What `tppolicy check-workflow` reads of a publisher, to check a workflow file before it
  # runs: the file it names, the calling workflow, the reusable workflow, the environment,
  # the refs it accepts (globs), the events it accepts, whether its ref must be protected.
  workflows github_actions {
    repository: publisher.repository_owner + "/" + publisher.repository_name
    file: publisher.workflow_filename
    caller: publisher.caller_workflow
    reusable: publisher.reusable_workflow
    environment: publisher.environment
    refs: [publisher.ref_pattern, version_tag_refs]
    events: split(publisher.allowed_events, ",")
    ref_protected: publisher.ref_protected
  }

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
        exact_case "PyPI compares it exactly (the lookup), so it must be spelled as GitHub spells it"
    repository_name: string matches "^[A-Za-z0-9._-]+$"
        else "a GitHub repository name (letters, digits, '.', '_' and '-')"
        exact_case "PyPI compares it exactly (the lookup), so it must be spelled as GitHub spells it"
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
  }

  # The path of the workflow that ran the job: job_workflow_ref without its @ref / @sha
  # (without anything after its first "@" when it ends in neither: a workflow called at
  # another ref, which the job_workflow_ref rule refuses).
  let workflow_path =
    if claims.ref != "" and ends_with(claims.job_workflow_ref, "@" + claims.ref)
    then strip_suffix(claims.job_workflow_ref, "@" + claims.ref)
    else if claims.sha != "" and ends_with(claims.job_workflow_ref, "@" + claims.sha)
    then strip_suffix(claims.job_workflow_ref, "@" + claims.sha)
    else before(claims.job_workflow_ref, "@")
  # For the fixes: the workflow's file and repository, and the publisher's repository.
  let workflow_file = after_last(workflow_path, "/")
  let workflow_version = after(claims.job_workflow_ref, "@")
  let workflow_repository = before(workflow_path, "/.github/workflows/")
  let publisher_repository = publisher.repository_owner + "/" + publisher.repository_name
  # The owner and name of the token's repository (OWNER/REPO), as GitHub spells them.
  let token_owner = before(claims.repository, "/")
  let token_name = after(claims.repository, "/")
  # The refs a version_tag accepts, whatever the version: a glob (check-workflow).
  let version_tag_refs =
    if publisher.version_tag == ""
    then ""
    else "refs/tags/" + replace(publisher.version_tag, "{version}", "*")
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
  # The events a publisher accepts, as a list (a fix shows it in words: "push or release").
  let allowed_events = split(publisher.allowed_events, ",")
  let denied_events = split(publisher.denied_events, ",")
  # PEP 740 attestations (tppolicy serve): the identity an upload's attestation must be
  # signed by, as pypi-attestations' publisher of this kind with these fields (the
  # certificate names the repository and the workflow file, as PyPI checks them).
  let attestation_kind = "GitHub"
  let attestation_repository = publisher.repository_owner + "/" + publisher.repository_name
  let attestation_workflow = publisher.workflow_filename
  let attestation_environment = if publisher.environment == "" then null else publisher.environment

  # Who the publisher is (identity) and which of its workflows (key); a token that
  # shares no publisher's identity is told nothing about anyone's configuration.
  # The workflow is the job's, as PyPI; when the job runs a reusable workflow of another
  # repository, it is the calling workflow (which a reusable_workflow publisher names).
  lookup {
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

  # PyPI e-mails the owners when a token names an environment the publisher ignores.
  note when publisher.environment == "" and has(claims.environment) and claims.environment != ""
      "the token has environment '{claims.environment}' but this publisher accepts any environment; name it in the publisher to require it"

  # Lint's advice on the optional constraints (TPP014; docs/constraints.md has each threat).
  advise ref_pattern when glob("refs/heads/any-branch", publisher.ref_pattern)
      "'{publisher.ref_pattern}' admits every branch: anyone who can push a branch can run the publishing workflow; name the branch (refs/heads/main) or match release tags (refs/tags/v*)"

  advise ref_pattern when publisher.ref_pattern != "" and not publisher.ref_protected
      "a ref pattern constrains the ref's name, not who may push it: anyone with write access can push a matching ref; protect those refs and set ref_protected: true"

  advise version_tag when publisher.version_tag != "" and not publisher.ref_protected
      "'{publisher.version_tag}' names the tag, not who may push it: anyone with write access can push a tag for a new version; protect tag creation and set ref_protected: true"

  advise runner_environment when publisher.runner_environment == "self-hosted"
      "self-hosted runners keep state between jobs and are shared: a token minted there is only as safe as the machine; use github-hosted unless the runner is ephemeral and dedicated"

  advise allowed_events when contains("," + publisher.allowed_events + ",", ",pull_request_target,")
      "pull_request_target runs with the base repository's permissions on a fork's pull request, and is refused for every publisher: remove it, it allows nothing"

  advise allowed_events when contains("," + publisher.allowed_events + ",", ",workflow_run,")
      "workflow_run runs after a workflow a fork's pull request can start, and its artifacts can reach the publishing job (artifact poisoning): publish from release or workflow_dispatch"

  advise reusable_workflow when contains(publisher.reusable_workflow, "@refs/heads/")
      "'{publisher.reusable_workflow}' follows a branch of the shared repository: whoever can push to it decides what runs with your token; pin a commit sha or a protected tag"

  identity rule repository {
    require claims.repository != "" else "the repository claim is empty"
    require claims.repository == publisher.repository_owner + "/" + publisher.repository_name
    fix token when claims.repository == ""
        "The token's repository claim is empty, but every GitHub Actions token names its repository (OWNER/REPO): these claims are incomplete or altered. Pass the claims of the token as the job received it (`python -m id -d pypi` prints them)."
    fix token when not contains(claims.repository, "/")
        "The token's repository claim '{claims.repository}' has no '/', but every GitHub Actions token names its repository as OWNER/REPO ('{publisher_repository}' for this publisher): these claims are incomplete or altered. Pass the claims of the token as the job received it (`python -m id -d pypi` prints them)."
    fix publisher when lower(claims.repository) == lower(publisher_repository) and token_owner != publisher.repository_owner and token_name == publisher.repository_name
        "Fix the owner's case: GitHub spells it '{token_owner}', the publisher '{publisher.repository_owner}', and PyPI's lookup compares it exactly. Write repository_owner: {token_owner} in the publisher."
    fix publisher when lower(claims.repository) == lower(publisher_repository) and claims.repository != publisher_repository
        "Fix the repository's case: GitHub spells it '{claims.repository}', the publisher '{publisher_repository}', and PyPI's lookup compares owner and name exactly. Write repository_owner: {token_owner} and repository_name: {token_name} in the publisher."
    fix publisher when before(claims.repository, "/") == publisher.repository_owner and claims.repository != publisher_repository
        "The token comes from the repository '{claims.repository}', the publisher is for '{publisher_repository}'. If the repository was renamed, update the publisher's repository_name; otherwise add a publisher for this repository."
  }

  identity rule repository_owner {
    require claims.repository_owner == publisher.repository_owner
    fix token when claims.repository_owner == ""
        "The token's repository_owner claim is empty, but every GitHub Actions token names its owner: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix publisher when lower(claims.repository_owner) == lower(publisher.repository_owner) and claims.repository_owner != publisher.repository_owner
        "Fix the owner's case: GitHub spells it '{claims.repository_owner}', the publisher '{publisher.repository_owner}', and PyPI's lookup compares it exactly. Write repository_owner: {claims.repository_owner} in the publisher."
    fix publisher when lower(claims.repository_owner) != lower(publisher.repository_owner)
        "The token comes from another owner: '{claims.repository_owner}', not '{publisher.repository_owner}'. If the repository was transferred, update the publisher's repository_owner and repository_owner_id (the new owner's id); otherwise this token is not from your repository."
  }

  # The numeric id survives renames: a deleted account's name taken by someone else fails here.
  identity rule repository_owner_id {
    require claims.repository_owner_id == publisher.repository_owner_id
    fix token when claims.repository_owner_id == ""
        "The token's repository_owner_id is empty, but every GitHub Actions token carries its owner's id: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix publisher when claims.repository_owner == publisher.repository_owner
        "Possible resurrection: the token's owner is called '{publisher.repository_owner}' but its id is '{claims.repository_owner_id}', not '{publisher.repository_owner_id}' as when the publisher was made. The account or organization '{publisher.repository_owner}' may have been deleted and its name taken by someone else: do not trust this token. Only if you are sure the owner is yours and the publisher's id is wrong, look the id up (https://api.github.com/users/{publisher.repository_owner}) and fix repository_owner_id."
  }

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
    fix token when claims.job_workflow_ref == ""
        "The token's job_workflow_ref claim is empty, but every GitHub Actions token names the workflow that ran the job: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix token when claims.ref == "" and claims.sha == ""
        "The token's ref and sha claims are both empty, so it does not say which version of the workflow ran: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix token when claims.ref == "" and ends_with(claims.job_workflow_ref, "@")
        "The token's job_workflow_ref '{claims.job_workflow_ref}' ends in a bare '@' and its ref claim is empty, but GitHub always names the ref the workflow ran at: these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix publisher when publisher.reusable_workflow != "" and starts_with(lower(publisher.reusable_workflow), lower(publisher_repository + "/"))
        "The publisher's reusable_workflow '{publisher.reusable_workflow}' is in its own repository: name the called file in workflow_filename and the calling one in caller_workflow instead."
    fix workflow or publisher when publisher.reusable_workflow != ""
        "The job ran '{claims.job_workflow_ref}', the publisher accepts only the reusable workflow '{publisher.reusable_workflow}'. Call that workflow (at a ref its pattern accepts) from the publishing job, or change the publisher's reusable_workflow."
    fix workflow when lower(workflow_repository) != lower(claims.repository)
        "The job ran the reusable workflow '{workflow_path}', called from '{claims.repository}'. PyPI checks the workflow that runs the job (job_workflow_ref) and cannot accept a reusable workflow from another repository (pypi/warehouse#11096). Run the publishing step in a job of a workflow in '{claims.repository}' itself."
    fix workflow when claims.ref == "" and workflow_file == publisher.workflow_filename and claims.repository == publisher_repository and not ends_with(claims.job_workflow_ref, "@" + claims.sha)
        "The job ran '{workflow_file}' at '{workflow_version}', but the run is for the commit {claims.sha} (its ref is empty): PyPI accepts the workflow only at the run's own ref or commit. Call it as `uses: ./.github/workflows/{workflow_file}` (the same commit), or publish from the workflow that the run started."
    fix workflow when workflow_file == publisher.workflow_filename and claims.repository == publisher_repository and not ends_with(claims.job_workflow_ref, "@" + claims.ref) and not ends_with(claims.job_workflow_ref, "@" + claims.sha)
        "The job ran '{workflow_file}' at '{workflow_version}', but the run is for '{claims.ref}' (commit {claims.sha}): PyPI accepts the workflow only at the run's own ref or commit. Call it as `uses: ./.github/workflows/{workflow_file}` (the same ref), or publish from the workflow that the run started."
    fix workflow or publisher when workflow_file != publisher.workflow_filename and claims.repository == publisher_repository and not ends_with(claims.job_workflow_ref, "@" + claims.ref) and not ends_with(claims.job_workflow_ref, "@" + claims.sha)
        "The job ran '{workflow_file}' of this repository at '{workflow_version}' (a reusable workflow called at another ref), the publisher is for '{publisher.workflow_filename}'. PyPI accepts only the workflow the run started, at the run's ref or commit: publish from a job in .github/workflows/{publisher.workflow_filename}."
    fix workflow when contains(after(workflow_path, "/.github/workflows/"), "/")
        "The job ran '{workflow_path}', a file in a subfolder of .github/workflows, but the publisher's workflow is .github/workflows/{publisher.workflow_filename} and PyPI compares the whole path. Publish from a job in .github/workflows/{publisher.workflow_filename}."
    fix publisher when lower(workflow_file) == lower(publisher.workflow_filename) and workflow_file != publisher.workflow_filename
        "Fix the workflow filename's case: the file is '{workflow_file}', the publisher says '{publisher.workflow_filename}', and file names are compared exactly. Write workflow_filename: {workflow_file} in the publisher (or rename the file)."
    fix publisher when ends_with(workflow_file, ".yml") and ends_with(publisher.workflow_filename, ".yaml") and strip_suffix(workflow_file, ".yml") == strip_suffix(publisher.workflow_filename, ".yaml") or ends_with(workflow_file, ".yaml") and ends_with(publisher.workflow_filename, ".yml") and strip_suffix(workflow_file, ".yaml") == strip_suffix(publisher.workflow_filename, ".yml")
        "The workflow file is '{workflow_file}', the publisher says '{publisher.workflow_filename}': write workflow_filename: {workflow_file} in the publisher."
    fix workflow or publisher when workflow_file != publisher.workflow_filename
        "The token comes from the workflow '{workflow_file}', the publisher is for '{publisher.workflow_filename}'. Publish from a job in .github/workflows/{publisher.workflow_filename}, or add a publisher for {workflow_file} (each workflow that publishes needs its own)."
  }

  # The calling (top-level) workflow, when the publisher names one or calls a reusable
  # workflow: workflow_ref (crates.io's and npm's claim) at the token's ref.
  optional rule workflow_ref {
    require publisher.caller_workflow == "" and publisher.reusable_workflow == ""
        or caller_path == expected_caller
    fix token when not has(claims.workflow_ref)
        "The token has no workflow_ref claim, but every GitHub Actions token names the workflow the run started, and the publisher's caller_workflow is checked against it: these claims are incomplete. Pass the claims of the token as the job received it."
    fix workflow or publisher
        "The run was started by the workflow '{caller_path}', the publisher expects '{expected_caller}'. Publish from a run of that workflow, or change the publisher's caller_workflow."
  }

  rule event_name {
    require claims.event_name != "pull_request_target"
        else "publishing from a workflow invoked via 'pull_request_target' is not supported"
    fix publisher when publisher.allowed_events == "pull_request_target"
        "The job was triggered by pull_request_target, which PyPI refuses whatever the publisher says: such runs use the base repository's permissions on code from a pull request. The publisher's allowed_events names only pull_request_target, so it can never publish: replace it with the event that should publish (usually release, push (tags) or workflow_dispatch), and publish from a workflow triggered by that event."
    fix workflow or publisher when publisher.allowed_events != ""
        "The job was triggered by pull_request_target, which PyPI refuses whatever the publisher says: such runs use the base repository's permissions on code from a pull request. Publish from a workflow triggered by another event the publisher's allowed_events accepts ({allowed_events}); release, push (tags) and workflow_dispatch are the usual ones: add one to allowed_events if none is there."
    fix workflow when publisher.denied_events != ""
        "The job was triggered by pull_request_target, which PyPI refuses: such runs use the base repository's permissions on code from a pull request. Publish from a workflow triggered by an event other than {denied_events} (which the publisher refuses): usually push (tags), release or workflow_dispatch."
    fix workflow
        "The job was triggered by pull_request_target, which PyPI refuses: such runs use the base repository's permissions on code from a pull request. Publish from a workflow triggered by push (tags), release or workflow_dispatch."
  }

  # "" means any environment, or none. Otherwise the token must name it, ignoring case.
  rule environment {
    require publisher.environment == "" or lower(claims.environment) == lower(publisher.environment)
    fix workflow when not has(claims.environment) or claims.environment == ""
        "The job ran without a deployment environment, but the publisher requires '{publisher.environment}'. Add `environment: {publisher.environment}` to the publishing job, or remove the environment from the publisher (not recommended: the environment's protection rules guard the release)."
    fix workflow when trim(claims.environment) != claims.environment
        "The job ran in the environment '{claims.environment}', with blanks around its name; the publisher expects '{publisher.environment}'. Write `environment: {publisher.environment}` in the publishing job, without the blanks (a publisher's environment cannot hold them)."
    fix workflow or publisher
        "Rename the environment: the job ran in '{claims.environment}', the publisher expects '{publisher.environment}'. Set `environment: {publisher.environment}` in the publishing job, or change the publisher's environment to '{claims.environment}'."
  }

  # An anchored glob over the ref (refs/tags/v*): not every branch may publish.
  optional rule ref {
    require publisher.ref_pattern == "" or glob(claims.ref, publisher.ref_pattern)
    fix workflow or publisher when claims.ref == ""
        "The run is for no branch or tag (the token's ref is empty, as for a deployment), the publisher accepts only refs matching '{publisher.ref_pattern}'. Publish from a run for such a ref (push a matching tag), or change the publisher's ref_pattern."
    fix workflow or publisher
        "The run is for '{claims.ref}', the publisher accepts only refs matching '{publisher.ref_pattern}'. Publish from such a ref (push a matching tag), or change the publisher's ref_pattern."
  }

  # The tag of the version being uploaded (pub.dev): the caller supplies the version.
  optional rule version_tag {
    require publisher.version_tag == ""
        or claims.ref == "refs/tags/" + replace(publisher.version_tag, "{version}", request.version)
    fix operator when request.version == null
        "The publisher's version_tag '{publisher.version_tag}' names the tag of the version being uploaded, and no version was given to compare the run's tag with. Give the version: `tppolicy check --upload-version VERSION` (or `explain`'s); an index takes it from the upload."
    fix workflow when claims.ref == ""
        "The run is for no tag (the token's ref is empty): the publisher accepts only runs for the tag '{publisher.version_tag}' of the version being uploaded. Publish from a run for that tag."
    fix workflow when not has(claims.ref) or not starts_with(claims.ref, "refs/tags/")
        "The run is for '{claims.ref}', not a tag: the publisher accepts only runs for the tag '{publisher.version_tag}' of the version being uploaded. Publish from a run for that tag."
    fix workflow
        "The run is for '{claims.ref}', but the version being uploaded is '{request.version}' and the publisher's version_tag is '{publisher.version_tag}': upload the version the tag names, or push the tag of this version."
  }

  # GitHub sends "true" only when pushing or creating the ref is restricted by a rule.
  optional rule ref_protected {
    require not publisher.ref_protected or claims.ref_protected == "true"
        else "the ref is not protected: protect the branch or tag (a ruleset), or set ref_protected false"
    fix operator or publisher
        "The run's ref '{claims.ref}' is not protected: protect the branch or tag in the repository's settings (a ruleset restricting who may push or create it), or set ref_protected false in the publisher."
  }

  optional rule runner_environment {
    require publisher.runner_environment == ""
        or claims.runner_environment == publisher.runner_environment
    fix token when not has(claims.runner_environment)
        "The token does not say what runner the job ran on (it has no runner_environment claim), the publisher accepts only '{publisher.runner_environment}' runners: GitHub sets the claim in every token, so these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix workflow
        "The job ran on a runner that is '{claims.runner_environment}', the publisher accepts only '{publisher.runner_environment}' runners. Run the publishing job on such a runner (runs-on)."
  }

  optional rule allowed_events {
    require publisher.allowed_events == ""
        or claims.event_name in split(publisher.allowed_events, ",")
    fix workflow or publisher when claims.event_name == "pull_request_target"
        "The run was triggered by 'pull_request_target', which can never publish, whatever the publisher's allowed_events (the event_name rule refuses it): do not add it. Publish from a workflow triggered by {allowed_events}; release, push (tags) and workflow_dispatch are the usual ones: add one to allowed_events if none is there."
    fix workflow when claims.event_name in split(publisher.denied_events, ",")
        "The run was triggered by '{claims.event_name}', which the publisher refuses twice: its allowed_events accepts only {allowed_events}, and its denied_events names it (adding it to allowed_events would not help). Publish from a run triggered by {allowed_events}, other than {denied_events}."
    fix publisher when publisher.allowed_events == "pull_request_target"
        "The run was triggered by '{claims.event_name}', the publisher's allowed_events names only pull_request_target, which can never publish (the event_name rule refuses it): replace it with '{claims.event_name}' in the publisher's allowed_events."
    fix workflow or publisher
        "The run was triggered by '{claims.event_name}', the publisher accepts only {allowed_events}. Publish from a run triggered by one of those, or add '{claims.event_name}' to the publisher's allowed_events."
  }

  # crates.io also refuses workflow_run: `denied_events: workflow_run`.
  optional rule denied_events {
    require publisher.denied_events == ""
        or claims.event_name not in split(publisher.denied_events, ",")
    fix workflow when publisher.allowed_events != ""
        "The run was triggered by '{claims.event_name}', which the publisher refuses (its denied_events). Publish from a run triggered by an event the publisher accepts ({allowed_events}) other than {denied_events}."
    fix workflow
        "The run was triggered by '{claims.event_name}', which the publisher refuses (its denied_events). Publish from a run triggered by an event other than {denied_events}: usually a tag pushed, a release or workflow_dispatch."
  }

  # The repository's id survives renames and transfers: a repository deleted and
  # re-created under the same name fails here.
  optional rule repository_id {
    require publisher.repository_id == "" or claims.repository_id == publisher.repository_id
    fix token when not has(claims.repository_id)
        "The token has no repository_id claim, and the publisher pins '{publisher.repository_id}': GitHub sets the claim in every token, so these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix token when claims.repository_id == ""
        "The token's repository_id is empty, and the publisher pins '{publisher.repository_id}': GitHub sets the claim in every token, so these claims are incomplete or altered. Pass the claims of the token as the job received it."
    fix publisher
        "The token's repository id is '{claims.repository_id}', the publisher pins '{publisher.repository_id}': the repository '{claims.repository}' was deleted and re-created (or another took its name). Check who controls it before updating the publisher's repository_id."
  }
}
