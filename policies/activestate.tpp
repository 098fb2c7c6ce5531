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

  # `org:{organization}:project:{project}`, exactly, then anything (`:...`).
  rule sub {
    require claims.sub != "" else "missing 'subject' claim"
    require len(sub_parts) >= 4 else "invalid 'subject' claim: wrong format"
    require sub_parts[0] == "org"
        and sub_parts[1] == publisher.organization
        and sub_parts[2] == "project"
        and sub_parts[3] == publisher.activestate_project_name
        else "invalid 'subject' claim"
  }

  rule organization: claims.organization == publisher.organization

  rule project: claims.project == publisher.activestate_project_name

  # The id survives renames: a deleted account's name taken by someone else fails here.
  rule actor_id: claims.actor_id == publisher.actor_id

  rule builder: claims.builder == "pypi-publisher"
}
