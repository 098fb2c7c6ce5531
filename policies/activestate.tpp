# ActiveState Platform trusted publishers.
#
# Reproduces PyPI (pypi/warehouse, warehouse/oidc/models/activestate.py) claim by
# claim. Where PyPI's behaviour is an accident, this file does the sound thing
# instead:
#
# * PyPI compares strings with `str.__eq__`, which answers NotImplemented (truthy)
#   for a claim that is not a string. Here every claim has a type: a claim of the
#   wrong type (an integer `actor_id`, say) is an error, and the token is denied.
# * PyPI checks `builder` with Python `==`; here it is a string claim compared with
#   a string, which gives the same answers for every string.
#
# Case rules, as PyPI: everything is exact (case-sensitive): organization, project,
# actor id and the `org:...:project:...` prefix of `sub`. The actor's user name is
# kept for display only; its id is what is checked, so a deleted account's name
# taken by someone else does not publish. `project_visibility` is not checked,
# although ActiveState's docs say the project must be private (as PyPI).
# ActiveState tokens' `jti` is not in PyPI's set: like any unknown claim it is
# reported, never refused.

provider activestate {
  issuer "https://platform.activestate.com/api/v1/oauth/oidc"
  algorithms ["RS256"]

  claims {
    required sub, organization, project, actor_id, builder: string
    unchecked actor, artifact_id, ingredient, organization_id, project_id: string
    unchecked project_path, project_visibility: string
  }

  fields {
    # ActiveState's rules for URL names: no leading, trailing or double '-'.
    organization: string matches "^(?!-)(?!.*--)(?!.*-$)[a-zA-Z0-9-]{3,40}$"
        else "an ActiveState organization URL name (3 to 40 letters, digits and single '-', not at either end)"
    activestate_project_name: string matches "^(?!-)(?!.*--)(?!.*-$)[.a-zA-Z0-9-]{3,40}$"
        else "an ActiveState project name (3 to 40 letters, digits, '.' and single '-', not at either end)"
    # Display only: no rule reads it.
    actor: string matches "^(?!-)(?!.*--)(?!.*-$)[a-zA-Z0-9-]{3,40}$"
        else "the ActiveState user name of the actor (3 to 40 letters, digits and single '-', not at either end)"
    actor_id: string matches "^[a-zA-Z0-9-]+$"
        else "the actor's ActiveState user id, as the platform's API gives it for the user name"
  }

  let sub_parts = split(claims.sub, ":")

  lookup {
    identity publisher.organization == claims.organization
    identity publisher.activestate_project_name == claims.project
    identity publisher.actor_id == claims.actor_id
  }

  identity rule organization {
    require claims.organization == publisher.organization
    fix publisher
        "The token comes from the ActiveState organization '{claims.organization}', the publisher is for '{publisher.organization}'. Build in that organization, or add a publisher for this one."
  }

  identity rule project {
    require claims.project == publisher.activestate_project_name
    fix publisher when claims.organization == publisher.organization
        "The token comes from the project '{claims.organization}/{claims.project}', the publisher is for '{publisher.organization}/{publisher.activestate_project_name}'. Build that project, or add a publisher for this one."
  }

  # The id survives renames: a deleted account's name taken by someone else fails here.
  identity rule actor_id {
    require claims.actor_id == publisher.actor_id
    fix publisher
        "The build was started by another ActiveState user (actor id '{claims.actor_id}', the publisher expects '{publisher.actor_id}', user '{publisher.actor}')."
  }

  # `org:{organization}:project:{project}`, exactly, then anything (`:...`). Checked after
  # the organization and project claims, whose mismatches say more.
  identity rule sub {
    require claims.sub != "" else "missing 'subject' claim"
    require len(sub_parts) >= 4 and sub_parts[0] == "org" and sub_parts[2] == "project"
        else "invalid 'subject' claim: wrong format (not org:ORGANIZATION:project:PROJECT)"
    require sub_parts[1] == publisher.organization
        and sub_parts[3] == publisher.activestate_project_name
        else "the 'subject' claim names another organization or project"
    fix token when claims.sub == ""
        "The token's sub is empty, but every ActiveState token's is org:ORGANIZATION:project:PROJECT: these claims are incomplete or altered. Pass the claims of the token as the build received it."
    fix token when len(sub_parts) < 4 or sub_parts[0] != "org" or sub_parts[2] != "project"
        "The token's sub '{claims.sub}' is not of the form org:ORGANIZATION:project:PROJECT, as every ActiveState token's is: these claims are incomplete or altered. Pass the claims of the token as the build received it."
    fix token when claims.organization == publisher.organization and claims.project == publisher.activestate_project_name
        "The token's sub '{claims.sub}' names another organization or project than its organization and project claims ('{claims.organization}'/'{claims.project}'): ActiveState issues them for the same project, so these claims were not issued together, or were altered. Pass the claims of the token as the build received it."
  }

  rule builder {
    require claims.builder == "pypi-publisher"
    fix workflow when claims.builder == ""
        "The token names no builder (its builder claim is empty), ActiveState's PyPI publisher builder is 'pypi-publisher': publish with that builder."
    fix workflow
        "The token was issued to the builder '{claims.builder}', not 'pypi-publisher': publish with ActiveState's PyPI publisher builder."
  }
}
