# CircleCI trusted publishers (OIDC tokens of CircleCI cloud jobs).
#
# PyPI has no CircleCI publishers; this file follows npm's (the registry with the
# longest record of CircleCI trusted publishing): a publisher is an organization, a
# project and a pipeline definition, all three CircleCI UUIDs, and the repository the
# pipeline builds (`vcs_origin`, such as github.com/octo-org/sampleproject). Claims
# are named like `oidc.circleci.com/org-id`; a rule reads them as
# claims["oidc.circleci.com/org-id"].
#
# Issuers: every organization has its own, https://oidc.circleci.com/org/<org-id>.
# The operator registers the issuer of each organization that publishes
# (`--issuer https://oidc.circleci.com/org/<org-id>=circleci`); a publisher names it in
# `issuer_url`, which must be its organization's.
#
# The audience is the organization's id unless the job asks for another: publish with
# a token requested for the index (`circleci run oidc get --claims '{"aud": "pypi"}'`).
#
# Checks beyond npm's, as PyPI would want them: a job re-run with SSH (a person has a
# shell in it, `oidc.circleci.com/ssh-rerun`) is refused, as npm's exchange refuses it
# (npm/cli #9923); optional constraints (docs/constraints.md) restrict the ref, tie the
# tag to the version being uploaded and require a context (contexts carry their own
# security groups). CircleCI tokens carry no `jti`: replay is bounded by their expiry
# (an hour), as with Google's.

provider circleci {
  # No built-in issuer: one per organization, registered by the operator.
  custom_issuers true
  algorithms ["RS256"]

  claims {
    required "oidc.circleci.com/org-id", "oidc.circleci.com/project-id": string
    required "oidc.circleci.com/pipeline-definition-id", "oidc.circleci.com/vcs-origin": string
    present "oidc.circleci.com/vcs-ref": string
    optional "oidc.circleci.com/context-ids": list
    optional "oidc.circleci.com/ssh-rerun": bool
    unchecked sub, "oidc.circleci.com/pipeline-id": string
  }

  fields {
    org_id: string matches "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        else "the organization's id, a UUID (Organization Settings > Overview)"
    project_id: string matches "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        else "the project's id, a UUID (Project Settings > Overview)"
    pipeline_definition_id: string matches "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        else "the pipeline definition's id, a UUID (Project Settings > Pipelines)"
    vcs_origin: string matches "^[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)+$"
        else "the repository the pipeline builds, such as github.com/octo-org/sampleproject"
    issuer_url: string matches "^https://oidc\\.circleci\\.com/org/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        else "the organization's issuer: https://oidc.circleci.com/org/ORG-ID"
    # Optional constraints: "" turns each off.
    context_id: string = "" matches "^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$"
        else "a context the job must run with, by its UUID (Organization Settings > Contexts), or empty"
    ref_pattern: string = "" matches "^(refs/(?!\\**$)[^\\x00-\\x20]+)?$"
        else "an anchored glob over the token's vcs-ref, such as refs/tags/v* ('*' stops at '/'); not only '*'"
    version_tag: string = "" matches "^([A-Za-z0-9._/+-]*\\{version\\}[A-Za-z0-9._/+-]*)?$"
        else "a tag name holding {version} once, such as v{version}: the pipeline must be for refs/tags/ and this tag, with the version being uploaded"
  }

  # For the fixes: the claims whose names are not names.
  let token_org = claims["oidc.circleci.com/org-id"]
  let token_project = claims["oidc.circleci.com/project-id"]
  let token_pipeline = claims["oidc.circleci.com/pipeline-definition-id"]
  let token_origin = claims["oidc.circleci.com/vcs-origin"]
  let token_ref = claims["oidc.circleci.com/vcs-ref"]

  lookup {
    identity publisher.issuer_url == claims.iss
    identity publisher.org_id == claims["oidc.circleci.com/org-id"]
    identity publisher.project_id == claims["oidc.circleci.com/project-id"]
    key publisher.pipeline_definition_id == claims["oidc.circleci.com/pipeline-definition-id"]
  }

  # The organization, and its issuer (also lookup identities).
  identity rule org_id {
    require publisher.issuer_url == "https://oidc.circleci.com/org/" + publisher.org_id
        else "issuer_url is not the organization's issuer (https://oidc.circleci.com/org/ORG-ID)"
    require claims.iss == publisher.issuer_url
    require claims["oidc.circleci.com/org-id"] == publisher.org_id
    fix operator or publisher when publisher.issuer_url != "https://oidc.circleci.com/org/" + publisher.org_id
        "The publisher's issuer_url '{publisher.issuer_url}' is not its organization's issuer: write issuer_url: https://oidc.circleci.com/org/{publisher.org_id}."
    fix publisher
        "The token comes from the CircleCI organization '{token_org}' (issuer '{claims.iss}'), the publisher is for '{publisher.org_id}'. Publish from a project of that organization, or add a publisher for this one."
  }

  identity rule project_id {
    require claims["oidc.circleci.com/project-id"] == publisher.project_id
    fix publisher
        "The token comes from the CircleCI project '{token_project}', the publisher is for '{publisher.project_id}'. Publish from that project, or add a publisher for this one."
  }

  rule pipeline_definition_id {
    require claims["oidc.circleci.com/pipeline-definition-id"] == publisher.pipeline_definition_id
    fix workflow or publisher
        "The job ran in the pipeline definition '{token_pipeline}', the publisher is for '{publisher.pipeline_definition_id}'. Publish from that pipeline, or add a publisher for this one (the id is in the project's settings, Pipelines)."
  }

  rule vcs_origin {
    require claims["oidc.circleci.com/vcs-origin"] == publisher.vcs_origin
    fix publisher
        "The pipeline's code comes from '{token_origin}', the publisher expects '{publisher.vcs_origin}'. If the repository moved, update the publisher's vcs_origin."
  }

  # A job re-run with SSH has a person at a shell: refused, as npm refuses it.
  rule ssh_rerun {
    require claims["oidc.circleci.com/ssh-rerun"] != true
        else "the job was re-run with SSH: publish from a run without SSH"
    fix workflow
        "The job was re-run with SSH, so a person had a shell in it: publish from a run without SSH (re-run the workflow normally)."
  }

  optional rule context {
    require publisher.context_id == ""
        or publisher.context_id in claims["oidc.circleci.com/context-ids"]
    fix workflow
        "The job does not use the context '{publisher.context_id}' that the publisher requires: add the context to the publishing job in .circleci/config.yml."
  }

  optional rule ref {
    require publisher.ref_pattern == ""
        or glob(claims["oidc.circleci.com/vcs-ref"], publisher.ref_pattern)
    fix workflow or publisher
        "The pipeline is for '{token_ref}', the publisher accepts only refs matching '{publisher.ref_pattern}'. Publish from such a ref, or change the publisher's ref_pattern."
  }

  optional rule version_tag {
    require publisher.version_tag == ""
        or claims["oidc.circleci.com/vcs-ref"] == "refs/tags/" + replace(publisher.version_tag, "{version}", request.version)
    fix operator when request.version == null
        "The publisher's version_tag '{publisher.version_tag}' names the tag of the version being uploaded, and no version was given to compare the pipeline's ref with. Give the version: `tppolicy check --upload-version VERSION` (or `explain`'s); an index takes it from the upload."
    fix workflow
        "The pipeline is for '{token_ref}', but the version being uploaded is '{request.version}' and the publisher's version_tag is '{publisher.version_tag}': upload the version the tag names, or push the tag of this version."
  }
}
