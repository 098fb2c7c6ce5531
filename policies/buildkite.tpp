# Buildkite trusted publishers (OIDC tokens of Buildkite Pipelines jobs).
#
# PyPI has no Buildkite publishers; this file follows npm's: a publisher is an
# organization and a pipeline, by their slugs. Every Buildkite organization shares one
# issuer, so the organization's slug is part of who the publisher is.
#
# A job asks for its token with the index as audience
# (`buildkite-agent oidc request-token --audience pypi`); the ids of the organization
# and the pipeline are optional claims the job must ask for too
# (`--claim organization_id,pipeline_id`) when a publisher pins them.
#
# Checks beyond npm's (docs/constraints.md): the step that publishes (`step_key`), the
# branch or tag the build is for, the tag of the version being uploaded, what started
# the build (`build_source`: a webhook, the UI, the API, a schedule...), the runner
# (Buildkite-hosted or self-hosted agents) and the ids (a slug can be taken again once
# freed; the ids cannot), with trust on first use. Buildkite tokens carry no `jti`:
# replay is bounded by their expiry (5 minutes by default).

provider buildkite {
  issuer "https://agent.buildkite.com"
  algorithms ["RS256"]

  claims {
    required organization_slug, pipeline_slug: string
    present build_commit, job_id: string
    optional build_branch, build_tag, step_key, build_source, runner_environment: string
    optional organization_id, pipeline_id: string
    unchecked sub, agent_id, cluster_id, queue_id: string
    unchecked build_number: int
  }

  fields {
    organization_slug: string matches "^[a-z0-9][a-z0-9-]*$"
        else "the organization's slug, as in https://buildkite.com/SLUG"
    pipeline_slug: string matches "^[a-z0-9][a-z0-9._-]*$"
        else "the pipeline's slug, as in https://buildkite.com/ORGANIZATION/SLUG"
    # Optional constraints: "" turns each off.
    step_key: string = "" matches "^([A-Za-z0-9_:.-]+)?$"
        else "the key of the step that publishes (its `key:` in the pipeline), or empty for any step"
    branch_pattern: string = "" matches "^((?!\\**$)[^\\x00-\\x20]+)?$"
        else "an anchored glob over the build's branch, such as main or release/* ('*' stops at '/'); not only '*'"
    tag_pattern: string = "" matches "^((?!\\**$)[^\\x00-\\x20]+)?$"
        else "an anchored glob over the build's tag, such as v* ('*' stops at '/'); not only '*'"
    version_tag: string = "" matches "^([A-Za-z0-9._/+-]*\\{version\\}[A-Za-z0-9._/+-]*)?$"
        else "a tag name holding {version} once, such as v{version}: the build must be for this tag, with the version being uploaded"
    allowed_sources: string = "" matches "^([a-z_]+(,[a-z_]+)*)?$"
        else "what may start a publishing build, separated by ',' (webhook,ui), or empty for any"
    runner_environment: string = "" matches "^(buildkite-hosted|self-hosted)?$"
        else "buildkite-hosted (refuses self-hosted agents), or empty for any agent"
    organization_id: string = "" matches "^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$"
        else "the organization's UUID (its GraphQL id's uuid), or empty"
    pipeline_id: string = "" matches "^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$"
        else "the pipeline's UUID (Pipeline Settings), or empty"
    trust_on_first_use: bool = false
  }

  # What may start a publishing build, as a list (a fix shows it in words: "webhook or ui").
  let allowed_sources = split(publisher.allowed_sources, ",")

  lookup {
    identity publisher.organization_slug == claims.organization_slug
    identity publisher.pipeline_slug == claims.pipeline_slug
    # A publisher naming the token's step wins over one without a step.
    prefer publisher.step_key == claims.step_key
    prefer publisher.step_key == ""
  }

  # Trust on first use: the ids not pinned yet come from the first token allowed.
  learn organization_id: if publisher.trust_on_first_use and publisher.organization_id == "" then claims.organization_id else null

  learn pipeline_id: if publisher.trust_on_first_use and publisher.pipeline_id == "" then claims.pipeline_id else null

  identity rule organization_slug {
    require claims.organization_slug == publisher.organization_slug
    fix publisher
        "The token comes from the Buildkite organization '{claims.organization_slug}', the publisher is for '{publisher.organization_slug}'. Publish from that organization, or add a publisher for this one."
  }

  identity rule pipeline_slug {
    require claims.pipeline_slug == publisher.pipeline_slug
    fix publisher when claims.organization_slug == publisher.organization_slug
        "The token comes from the pipeline '{claims.pipeline_slug}', the publisher is for '{publisher.pipeline_slug}'. If the pipeline was renamed, update the publisher's pipeline_slug; otherwise add a publisher for this pipeline."
  }

  optional rule step_key {
    require publisher.step_key == "" or claims.step_key == publisher.step_key
    fix workflow or publisher when not has(claims.step_key)
        "The publishing step has no key (the token has no step_key), the publisher is for the step '{publisher.step_key}'. Give the publishing step `key: {publisher.step_key}`, or change the publisher's step_key."
    fix workflow or publisher
        "The token comes from the step '{claims.step_key}', the publisher is for the step '{publisher.step_key}'. Give the publishing step `key: {publisher.step_key}`, or change the publisher's step_key."
  }

  optional rule branch {
    require publisher.branch_pattern == "" or glob(claims.build_branch, publisher.branch_pattern)
    fix workflow or publisher when not has(claims.build_branch)
        "The token names no branch (it has no build_branch), the publisher accepts only branches matching '{publisher.branch_pattern}'. Publish from a build of such a branch, or change the publisher's branch_pattern."
    fix workflow or publisher when claims.build_branch == ""
        "The build names no branch (the token's build_branch is empty), the publisher accepts only branches matching '{publisher.branch_pattern}'. Publish from a build of such a branch, or change the publisher's branch_pattern."
    fix workflow or publisher
        "The build is for the branch '{claims.build_branch}', the publisher accepts only branches matching '{publisher.branch_pattern}'. Publish from such a branch, or change the publisher's branch_pattern."
  }

  optional rule tag {
    require publisher.tag_pattern == "" or glob(claims.build_tag, publisher.tag_pattern)
    fix workflow or publisher when not has(claims.build_tag)
        "The build is not for a tag (the token has no build_tag), the publisher accepts only tags matching '{publisher.tag_pattern}'. Publish from a build of such a tag, or change the publisher's tag_pattern."
    fix workflow or publisher when claims.build_tag == ""
        "The build is not for a tag (the token's build_tag is empty), the publisher accepts only tags matching '{publisher.tag_pattern}'. Publish from a build of such a tag, or change the publisher's tag_pattern."
    fix workflow or publisher
        "The build is for the tag '{claims.build_tag}', the publisher accepts only tags matching '{publisher.tag_pattern}'. Publish from a build of such a tag, or change the publisher's tag_pattern."
  }

  optional rule version_tag {
    require publisher.version_tag == ""
        or claims.build_tag == replace(publisher.version_tag, "{version}", request.version)
    fix operator when request.version == null
        "The publisher's version_tag '{publisher.version_tag}' names the tag of the version being uploaded, and no version was given to compare the build's tag with. Give the version: `tppolicy check --upload-version VERSION` (or `explain`'s); an index takes it from the upload."
    fix workflow when not has(claims.build_tag)
        "The build is not for a tag (the token has no build_tag), but the publisher's version_tag '{publisher.version_tag}' accepts only builds of the tag of the version being uploaded, '{request.version}'. Publish from a build of that tag."
    fix workflow when claims.build_tag == ""
        "The build is not for a tag (the token's build_tag is empty), but the publisher's version_tag '{publisher.version_tag}' accepts only builds of the tag of the version being uploaded, '{request.version}'. Publish from a build of that tag."
    fix workflow
        "The build is for the tag '{claims.build_tag}', but the version being uploaded is '{request.version}' and the publisher's version_tag is '{publisher.version_tag}': upload the version the tag names, or build the tag of this version."
  }

  optional rule build_source {
    require publisher.allowed_sources == ""
        or claims.build_source in split(publisher.allowed_sources, ",")
    fix workflow or publisher when not has(claims.build_source)
        "The token does not say what started the build (it has no build_source), the publisher accepts only builds started by {allowed_sources}. Publish from such a build, or empty the publisher's allowed_sources."
    fix workflow or publisher when claims.build_source == ""
        "The token does not say what started the build (its build_source is empty), the publisher accepts only builds started by {allowed_sources}. Publish from such a build, or empty the publisher's allowed_sources."
    fix workflow or publisher
        "The build was started by '{claims.build_source}', the publisher accepts only {allowed_sources}. Publish from a build started so, or add '{claims.build_source}' to the publisher's allowed_sources."
  }

  optional rule runner_environment {
    require publisher.runner_environment == ""
        or claims.runner_environment == publisher.runner_environment
    fix workflow when not has(claims.runner_environment)
        "The token does not say what agent ran the step (it has no runner_environment), the publisher accepts only '{publisher.runner_environment}' agents. Run the publishing step on such an agent, with an agent that sets the claim."
    fix workflow
        "The step ran on a '{claims.runner_environment}' agent, the publisher accepts only '{publisher.runner_environment}' agents. Run the publishing step on such an agent."
  }

  # The ids survive a slug being freed and taken again.
  optional rule organization_id {
    require publisher.organization_id == "" or claims.organization_id == publisher.organization_id
    fix workflow when not has(claims.organization_id)
        "The token has no organization_id, and the publisher pins '{publisher.organization_id}': ask for the claim when requesting the token (`buildkite-agent oidc request-token --audience pypi --claim organization_id,pipeline_id`)."
    fix publisher
        "The token's organization id is '{claims.organization_id}', the publisher pins '{publisher.organization_id}': the organization slug was freed and taken again. Check who controls it before updating the publisher's organization_id."
  }

  optional rule pipeline_id {
    require publisher.pipeline_id == "" or claims.pipeline_id == publisher.pipeline_id
    fix workflow when not has(claims.pipeline_id)
        "The token has no pipeline_id, and the publisher pins '{publisher.pipeline_id}': ask for the claim when requesting the token (`buildkite-agent oidc request-token --audience pypi --claim organization_id,pipeline_id`)."
    fix publisher
        "The token's pipeline id is '{claims.pipeline_id}', the publisher pins '{publisher.pipeline_id}': the pipeline was deleted and re-created (or another took its slug). Check who controls it before updating the publisher's pipeline_id."
  }
}
