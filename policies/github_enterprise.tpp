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
# Everything else is the `github` provider's (`extends github`): the same claims, fields,
# lookup, rules, fixes and optional constraints. Its header explains where the rules
# depart from PyPI's.

provider github_enterprise extends github {
  # No built-in issuer: every issuer is registered by the operator.
  custom_issuers true

  fields {
    # The instance: the issuer the operator registered for it.
    issuer_url: string matches "^https://(token\\.actions\\.githubusercontent\\.com/[A-Za-z0-9][A-Za-z0-9-]*|token\\.actions\\.[a-z0-9][a-z0-9-]*\\.ghe\\.com|[a-zA-Z0-9.-]+(:[0-9]+)?/_services/token)$"
        else "the enterprise's issuer: https://token.actions.githubusercontent.com/SLUG, https://token.actions.SUBDOMAIN.ghe.com or https://HOST/_services/token"
  }

  # No PEP 740 attestation identity (tppolicy serve): pypi-attestations' GitHub
  # identity names github.com's issuer, not an enterprise's.
  let attestation_kind = null

  lookup {
    identity publisher.issuer_url == claims.iss
  }

  # The instance that issued the token (also a lookup identity).
  identity rule issuer {
    require claims.iss == publisher.issuer_url
    fix publisher
        "The token comes from the GitHub instance '{claims.iss}', the publisher is for '{publisher.issuer_url}' (issuer_url). Publish from a repository of that instance, or add a publisher for this one."
  }
}
