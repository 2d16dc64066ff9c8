"""一键归档 (issue 10 §4): the archive package of a finished document, time-stamped by the network's TSA.

Module map:

* ``settings`` — ``[archive]`` in node.toml: the TSA signer a root node answers with, and where a
  node asks for time-stamps (``tsa_node`` / ``tsa_url``, else the directory's root node).
* ``time_stamps`` — :class:`~node.archive.time_stamps.TimeStamps`: a time-stamp request answered by this
  node's own TSA signer or sent to the TSA node over mutual TLS (``POST /peer/v1/tsa``, served by
  :mod:`node.federation.tsa_api`), the token checked against the network's root before use.
* ``builder`` — what goes into the package, read from the store (the sealed package, the signed
  envelope headers and transport receipts of every message about the document, the audit excerpt),
  written by :class:`exchange_protocol.archive.ArchiveWriter` to a temporary file, streamed.

The format and its offline verification are :mod:`exchange_protocol.archive` and
:mod:`exchange_protocol.archive_verify`; the document service decides who may archive what.
"""
