"""The HTTP status of the errors that used to fall through to 500 or to the wrong class.

Each status now follows from the error's kind (``node.error_kinds``): a unit whose seal the
operator has not installed is a state to fix (409), not a server fault; malformed CMS is bad
input (400) and a CMS signature that does not verify a verification failure (422); a notice that
cannot be read is bad input; not knowing whether a signer is revoked is transient (503), retried by
the sender and never bounced; a peer whose identity cannot be established is retried too.
"""

from __future__ import annotations

import dataclasses

import pytest

from exchange_protocol.errors import EnvelopeRevocationUnknown
from exchange_protocol.notices import NoticeError
from node.documents.service import NoSeal
from node.error_kinds import Disposition, disposition, exit_code_for, gives_up_on_code, http_status_for
from node.errors import NodeUnavailable
from node.federation.notice_apply import NoticeNotOurs
from node.federation.transport import PeerIdentityMismatch
from pki.errors import CmsBadSignature, CmsDigestMismatch, CmsMalformed, RevocationStale
from tests.node.api.local_api_support import (
    UNIT_A,
    expect_error,
    make_env,
    outbox_of_a,
    run,
    still_serving,
    submission,
)


def test_a_clerk_whose_unit_has_no_seal_gets_409_and_nothing_is_sent(tmp_path):
    env = make_env(tmp_path)
    env.ctx = dataclasses.replace(env.ctx, seals={u: s for u, s in env.ctx.seals.items() if u != UNIT_A})

    async def scenario(client):
        body, headers = submission()
        response = await client.post("/api/v1/documents", data=body, headers={**headers, **env.auth(env.clerk_a)})
        error = await expect_error(response, 409, "NODE_NO_SEAL")
        assert UNIT_A in error["message"]
        assert await outbox_of_a(client, env) == []
        await still_serving(client)
    run(env, scenario)


@pytest.mark.parametrize(("error", "status", "exit_code"), [
    (CmsMalformed("not a SignedData"), 400, 2),
    (CmsBadSignature("signature does not verify"), 422, 1),
    (CmsDigestMismatch("digest differs"), 422, 1),
    (NoticeError("退回 needs a reason", code="NOTICE_REASON_REQUIRED"), 400, 2),
    (NoticeNotOurs("not ours"), 403, 3),
    (NodeUnavailable("early", code="NOTICE_EARLY"), 503, 4),
    (NoSeal("no seal"), 409, 2),
    (PeerIdentityMismatch("another node answered"), 401, 3),
    (EnvelopeRevocationUnknown("stale CRL"), 503, 4),
    (RevocationStale("CRL past nextUpdate"), 503, 4),
], ids=lambda v: getattr(v, "code", v))
def test_the_errors_that_fell_through_have_the_status_of_their_kind(error, status, exit_code):
    assert http_status_for(error) == status
    assert exit_code_for(error) == exit_code


def test_not_knowing_whether_a_signer_is_revoked_is_retried_never_bounced():
    for code in ("ENV_REVOCATION_UNKNOWN", "PKI_REVOCATION_UNKNOWN", "PKI_REVOCATION_STALE",
                 "SEAL_REVOCATION_UNKNOWN", "PEER_IDENTITY", "PEER_IDENTITY_MISMATCH"):
        assert not gives_up_on_code(code), code
    assert disposition(EnvelopeRevocationUnknown("x")) is Disposition.RETRY
    for code in ("CMS_MALFORMED", "NOTICE_INVALID", "NOTICE_BY_REQUIRED", "ENV_SIGNER_UNTRUSTED"):
        assert gives_up_on_code(code), code
