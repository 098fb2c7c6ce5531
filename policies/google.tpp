# Google Cloud trusted publishers (service-account ID tokens).
#
# Reproduces PyPI (pypi/warehouse, warehouse/oidc/models/google.py) claim by claim.
# Where PyPI's behaviour is an accident, this file does the sound thing instead:
#
# * PyPI checks `email_verified` with Python `==` against True, so the integer 1
#   passes too (`1 == True`). Here the claim is declared `bool` and compared with
#   `true`, which never equals an integer: only the JSON boolean true passes; 1,
#   "true" and false are all denied, as is a missing claim.
# * PyPI compares the email with `str.__eq__`, which answers NotImplemented
#   (truthy) for a claim that is not a string. Here a claim of the wrong type is an
#   error, and the token is denied.
# * Registration: PyPI checks the email with a general e-mail validator and stores
#   the `sub` as typed. The field patterns below accept ASCII addresses (as service
#   accounts have) and only what Google sends as `sub` (at most 255 printable ASCII
#   characters, no blanks), so that a stray space cannot make a publisher unusable.
#
# Case rules, as PyPI: the email and the sub are matched exactly (case-sensitive).
# Google ID tokens carry no `jti`: there is no replay protection beyond expiry,
# as on PyPI. `azp` and `google` (compute engine details) are known and ignored.

provider google {
  issuer "https://accounts.google.com"
  algorithms ["RS256"]

  claims {
    required email: string
    required email_verified: bool
    optional sub: string
    unchecked azp: string
    unchecked google: object
  }

  fields {
    email: string matches "^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$"
        else "the service account's email address, such as release@my-project.iam.gserviceaccount.com"
    # "" means any subject.
    sub: string = "" matches "^[!-~]{0,255}$"
        else "the service account's unique id (the token's sub, e.g. 110987294251917851298), or empty for any"
  }

  # PEP 740 attestations (tppolicy serve): the service account an upload's attestation
  # must be signed by, as pypi-attestations' Google publisher.
  let attestation_kind = "Google"
  let attestation_email = publisher.email

  lookup {
    identity publisher.email == claims.email
    # A publisher naming the token's subject wins over one without a subject.
    prefer publisher.sub == claims.sub
    prefer publisher.sub == ""
  }

  identity rule email {
    require claims.email == publisher.email
    fix token when claims.email == ""
        "The token's email is empty, but PyPI knows a service account by its email, the publisher's is '{publisher.email}'. Request the ID token with its email included (e.g. `gcloud auth print-identity-token --audiences=pypi --include-email`)."
    fix publisher
        "The token is for the service account '{claims.email}', the publisher for '{publisher.email}'. Run the build as that service account, or add a publisher for this one."
  }

  rule email_verified {
    require claims.email_verified == true else "the email_verified claim is not true"
    fix token
        "The token's email_verified claim is {claims.email_verified}: PyPI needs a token whose email is verified. Request the service account's ID token with its email included (e.g. `gcloud auth print-identity-token --audiences=pypi --include-email`)."
  }

  # "" means any subject, or none. Otherwise the token must carry it exactly.
  identity rule sub {
    require publisher.sub == "" or claims.sub == publisher.sub
    fix token when not has(claims.sub) or claims.sub == ""
        "The token has no sub, but every Google ID token carries one (the service account's unique id): these claims are incomplete. Pass the complete decoded claims of the token."
    fix publisher
        "The token's subject (the service account's unique id) is '{claims.sub}', the publisher pins '{publisher.sub}'. The account was probably deleted and re-created under the same email, which makes it another principal: check who controls it before updating the publisher's sub."
  }
}
