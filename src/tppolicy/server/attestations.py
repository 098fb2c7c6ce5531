"""PEP 740 attestations, bound to the trusted publisher that minted the upload's
credential, verified with `pypi-attestations` and `sigstore` (offline: sigstore's
bundled trust root, no network), stored and served as provenance.

The identity an attestation's signing certificate must carry is data: the provider
file declares it with `let attestation_kind = "GitHub"` (a `kind` of pypi-attestations'
publishers: GitHub, GitLab, Google, CircleCI) and one `let attestation_FIELD` per field
of that publisher, written over the publisher's fields:

    let attestation_kind = "GitHub"
    let attestation_repository = publisher.repository_owner + "/" + publisher.repository_name
    let attestation_workflow = publisher.workflow_filename
    let attestation_environment =
        if publisher.environment == "" then null else publisher.environment

So a provider added as a file gets attestation support without Python changes; a
provider whose file declares no `attestation_kind` (or `let attestation_kind = null`,
as github_enterprise, which extends github, does) has none, and an upload through one
of its publishers that carries attestations is refused, saying so.

Refusals follow PyPI: HTTP 400 "Invalid attestations supplied during upload: ..." for
anything the uploader sent wrong (not JSON, not a list of attestations, more than one,
an unsupported predicate, a signature or identity that does not verify); HTTP 503 when
the index cannot verify now (the verifier is missing or fails on its own). Either way
nothing is stored: an attestation is never dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tppolicy.language import ast as A
from tppolicy.language.bind import bind_expr, inline_lets

log = logging.getLogger("tppolicy.server")

INVALID = "Invalid attestations supplied during upload: "
PREFIX = "attestation_"
KIND = PREFIX + "kind"
PUBLISH_V1 = "https://docs.pypi.org/attestations/publish/v1"
SLSA_V1 = "https://slsa.dev/provenance/v1"
ACCEPTED_PREDICATES = (PUBLISH_V1, SLSA_V1)
MAX_ATTESTATIONS_BYTES = 1024 * 1024


class AttestationRefused(Exception):
    """An upload's attestations are refused: `status` 400 or 503, `message` for the
    client (PyPI's words first)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class IdentityError(Exception):
    """A provider file's attestation declaration cannot give an identity."""


def identity_of(provider: Any, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pypi-attestations publisher (as JSON) a publisher's attestations must be
    signed by, from its provider's `attestation_*` lets with the publisher's field
    `values`; None when the provider declares none."""
    ast: A.Provider = provider.ast
    lets = {let.name: let.value for let in ast.lets}
    if KIND not in lets:
        return None
    identity: dict[str, Any] = {}
    for name, expr in lets.items():
        if not name.startswith(PREFIX):
            continue
        for _ in range(len(lets) + 1):  # lets may read lets (no cycles: checked at load)
            inlined = inline_lets(expr, lets)
            if inlined == expr:
                break
            expr = inlined
        bound = bind_expr(expr, values)
        if not isinstance(bound, A.Literal):
            raise IdentityError(f"provider {ast.name}: let {name} must be computed from the "
                                "publisher's fields alone (it reads a claim, or fails)")
        identity["kind" if name == KIND else name[len(PREFIX):]] = bound.value
    if identity.get("kind") is None:  # `let attestation_kind = null`: none (an extension
        return None                   # of a provider that has one can say so)
    return identity


@dataclass(frozen=True)
class Prepared:
    """Parsed attestations and the identity they must verify against."""

    attestations: tuple[Any, ...]  # pypi_attestations.Attestation
    identity: Any  # a pypi_attestations publisher
    provider: str


def prepare(text: str, provider: Any, values: Mapping[str, Any]) -> Prepared:
    """The `attestations` form field, parsed; raises `AttestationRefused`."""
    name = provider.ast.name
    try:
        declared = identity_of(provider, values)
    except IdentityError as exc:
        log.error("%s", exc)
        raise AttestationRefused(503, "The index cannot verify attestations for this "
                                 f"publisher now ({exc})") from None
    if declared is None:
        raise AttestationRefused(400, f"{INVALID}the trusted publisher's provider '{name}' "
                                 "declares no attestation identity (its provider file has no "
                                 f"'let {KIND}'), so attestations cannot be verified for it; "
                                 "upload without attestations")
    try:
        from pydantic import TypeAdapter, ValidationError
        from pypi_attestations import Attestation, Publisher
    except ImportError as exc:
        raise AttestationRefused(503, "The index cannot verify attestations now (it lacks "
                                 f"{exc.name}: pip install 'tppolicy[server]')") from None
    try:
        identity: Any = TypeAdapter(Publisher).validate_python(declared)
    except ValidationError as exc:
        log.error("provider %s: its attestation identity is not usable: %s", name, exc)
        raise AttestationRefused(503, "The index cannot verify attestations for this "
                                 f"publisher now (provider '{name}' declares an unusable "
                                 "attestation identity)") from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_ATTESTATIONS_BYTES:
        raise AttestationRefused(400, f"{INVALID}the field is larger than "
                                 f"{MAX_ATTESTATIONS_BYTES} bytes")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise AttestationRefused(400, f"{INVALID}the field is not JSON ({exc})") from None
    if not isinstance(parsed, list):
        raise AttestationRefused(400, f"{INVALID}expected a JSON list of attestations, got "
                                 f"{type(parsed).__name__}")
    try:
        attestations = TypeAdapter(list[Attestation]).validate_python(parsed)
    except ValidationError as exc:
        raise AttestationRefused(400, INVALID + _summary(exc)) from None
    if not attestations:
        raise AttestationRefused(400, f"{INVALID}the list is empty")
    if len(attestations) > 1:
        raise AttestationRefused(400, "Only a single attestation per file is supported.")
    return Prepared(tuple(attestations), identity, name)


def _summary(exc: Any) -> str:
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return f"not an attestation: {where}: {first.get('msg', 'invalid')}{more}"


def verify(prepared: Prepared, filename: str, sha256: str) -> str:
    """Verify the attestations for the distribution `filename` with digest `sha256`,
    offline; the PEP 740 provenance object (JSON text) to store. Raises
    `AttestationRefused`."""
    from pypi_attestations import (
        AttestationBundle,
        Distribution,
        Provenance,
        VerificationError,
    )

    try:
        dist = Distribution(name=filename, digest=sha256)
    except Exception as exc:  # pydantic refuses a name it cannot read as a distribution
        raise AttestationRefused(400, f"{INVALID}{exc}") from None
    for attestation in prepared.attestations:
        try:
            predicate_type, _ = attestation.verify(prepared.identity, dist, offline=True)
        except VerificationError as exc:
            raise AttestationRefused(400, f"{INVALID}Could not verify the uploaded artifact "
                                     f"using the included attestation: {exc}") from None
        except Exception as exc:  # the trust root, a network call: fail closed, say so
            log.exception("attestation verification failed on the index's side")
            raise AttestationRefused(503, "The index cannot verify attestations now "
                                     f"({type(exc).__name__}); try again") from None
        if predicate_type not in ACCEPTED_PREDICATES:
            raise AttestationRefused(400, f"{INVALID}Attestation with unsupported predicate "
                                     f"type: {predicate_type}")
    provenance = Provenance(attestation_bundles=[AttestationBundle(
        publisher=prepared.identity, attestations=list(prepared.attestations))])
    text: str = provenance.model_dump_json()
    return text
