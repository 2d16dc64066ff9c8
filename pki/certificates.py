"""Reading certificates and the names gwx puts in them: node ids, unit codes, hosts.

What every part of gwx that holds a certificate needs without holding a CA: loading PEM or DER
(:func:`load_certificate`, :func:`load_certificates`), writing PEM (:func:`pem`), the node id a node
certificate names (``urn:gwx:node:ID`` in its SAN, :func:`node_id_of`) and the 统一社会信用代码 a seal
certificate names (:func:`unit_code_of`), and the checks the CA applies to the names it is given
(:func:`check_node_id`, :func:`check_name`, :func:`host_name`). The CA itself is :mod:`pki.ca`; its
directory's records and revocations :mod:`pki.ca_records`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from .errors import InvalidInput, MalformedEncoding

NODE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
NODE_URI_PREFIX = "urn:gwx:node:"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes (typed error on anything else)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise MalformedEncoding(f"not a certificate: {exc}") from None


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in order (a chain file: leaf first), or a typed error."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise MalformedEncoding(f"not a PEM certificate list: {exc}") from None


def pem(cert: x509.Certificate) -> bytes:
    """``cert`` as PEM: what every ``*.crt`` file gwx writes holds."""
    return cert.public_bytes(serialization.Encoding.PEM)


def check_node_id(node_id: str) -> str:
    """A node id as the CA accepts it (it is a URI, a file name and a log field), else InvalidInput."""
    if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id):
        raise InvalidInput(f"node id {node_id!r} must be lower-case letters, digits, '.' or '-' "
                           "(at most 63, starting with a letter or digit)", field="node_id")
    return node_id


def node_id_of(cert: x509.Certificate) -> str | None:
    """The node id a gwx node certificate names (SAN URI ``urn:gwx:node:ID``), or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(NODE_URI_PREFIX):
            return uri[len(NODE_URI_PREFIX):]
    return None


def unit_code_of(cert: x509.Certificate) -> str | None:
    """The 统一社会信用代码 a seal certificate names (subject organizationIdentifier)."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    return str(attrs[0].value) if attrs else None


def check_name(name: str) -> None:
    """A CA's, an intermediate's or a unit's name as the CA puts it in a subject (InvalidInput else)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise InvalidInput(f"name {name!r} must be 1–64 characters", field="name")


def host_name(host: str) -> x509.GeneralName:
    """The SAN entry for a node's ``host``: an IP address, or a DNS name (lower-cased); InvalidInput
    for anything else, before anything is issued."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.match(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$", host or ""):
        raise InvalidInput(f"host {host!r} is neither an IP address nor a DNS name", field="host")
    return x509.DNSName(host.lower())
