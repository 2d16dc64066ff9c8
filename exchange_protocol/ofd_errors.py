"""The typed errors of OFD bodies (:mod:`.ofd_container`, :mod:`.ofd_seal`, :mod:`.ofd_verify`).

One class per cause a clerk or an auditor would tell apart: the container cannot be read, it is
hostile (a path out of the archive, a bomb, XML with a DTD), it is not sealed, a signed file changed,
went missing or was added, the signature belongs elsewhere, the seal beside it is another. Failures
of the SES_Signature itself (its signature, dataHash, the seal maker's signature, validity, chain,
revocation) keep their ``SEAL_*`` codes from :mod:`pki.errors`.
"""

from __future__ import annotations

from pki.errors import ErrorKind

from .errors import ProtocolError


class OfdError(ProtocolError):
    code = "OFD_ERROR"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdMalformed(OfdError):
    """Not an OFD we can read: not a ZIP, no OFD.xml, XML that does not parse, a missing DocRoot or page."""

    code = "OFD_MALFORMED"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdUnsafePath(OfdError):
    """A member name or an ST_Loc that leaves the container (``..``, absolute drive, backslash), a
    symbolic link, an encrypted member, or two names for one file."""

    code = "OFD_UNSAFE_PATH"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdZipBomb(OfdError):
    """Too many members, a member or the whole inflating past its limit, or a ratio no document has."""

    code = "OFD_ZIP_BOMB"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdXmlTooLarge(OfdError):
    """An XML file of the OFD past a cap checked before or while it is parsed (:class:`.ofd_container.OfdLimits`):
    its bytes, its elements, its attributes or its nesting depth — no page needs that many, and building
    the tree would cost the node hundreds of MiB and seconds per request."""

    code = "OFD_XML_TOO_LARGE"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdXmlForbidden(OfdError):
    """XML with a DTD, entity declarations or external references (billion laughs, XXE)."""

    code = "OFD_XML_FORBIDDEN"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdNotSealed(OfdError):
    """The OFD carries no electronic seal (no Signatures.xml, or one that lists no signature)."""

    code = "OFD_NOT_SEALED"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdReferenceMismatch(OfdError):
    """A file the seal covers does not have the check value it had when sealed (a page changed)."""

    code = "OFD_REFERENCE_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdReferenceMissing(OfdError):
    """A file the seal covers is no longer in the OFD."""

    code = "OFD_REFERENCE_MISSING"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdUnreferencedFile(OfdError):
    """A file no seal covers: added after sealing, or a reference removed from Signature.xml."""

    code = "OFD_UNREFERENCED_FILE"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdSignatureMoved(OfdError):
    """A signature that was made for another document or another place: its propertyInfo names
    another Signature.xml, or the document's OFD.xml (its DocID) is not the one sealed."""

    code = "OFD_SIGNATURE_MOVED"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdSealMismatch(OfdError):
    """Seal.esl is not the seal inside SignedValue.dat (a swapped seal picture or unit)."""

    code = "OFD_SEAL_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdCheckMethodRefused(OfdError):
    """References checked with a digest that is not the signature's own (MD5, SHA-1, SHA-256 under an
    SM2 seal): the weakest digest would decide what the seal covers."""

    code = "OFD_CHECK_METHOD_REFUSED"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdStampInvalid(OfdError):
    """The seal shows nowhere, or its StampAnnot names a page the document does not have or a box
    that is not four non-negative numbers."""

    code = "OFD_STAMP_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdSignerMismatch(OfdError):
    """The OFD was sealed with another certificate than the one that signed the package around it."""

    code = "OFD_SIGNER_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class OfdInputError(OfdError):
    """What a sender hands the sealer cannot be sealed: already sealed, a page that does not exist, a box
    off the page."""

    code = "OFD_INPUT_INVALID"
    kind = ErrorKind.INVALID_INPUT
