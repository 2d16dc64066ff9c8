"""gwx's exchange protocol: the sans-I/O core shared by every node.

Design. This package knows what a 公文 is, how it is packed, sealed, addressed and followed, and
nothing about sockets, event loops, databases or files. Values in, values out: functions take bytes,
frozen dataclasses, keys behind :class:`pki.signer.Signer`, the current time and random numbers as
arguments, and return values or raise typed errors (:mod:`exchange_protocol.errors`, each with a
stable code). The node (``node/``) is the imperative shell that does the I/O around it. Because
nothing here awaits or blocks, every rule is tested without an event loop, and
``tests/exchange_protocol/test_sans_io.py`` fails the build if a module here imports asyncio,
aiohttp, aiosqlite, sqlite3, socket, or anything from ``node`` or ``adapters``.

Modules and what each one owns (one place decides each thing):

- ``errors``: the typed errors of the protocol, grouped by area (DOC_, PKG_, ENV_, STATE_, …).
- ``kinds``: the closed vocabularies — 文种 (15 kinds, legacy mapping), 紧急程度, 密级, 主送/抄送.
- ``doc_number``: 发文字号 (机关代字〔年份〕序号号) parsing and exact formatting.
- ``model``: :class:`~exchange_protocol.model.DocumentMetadata`, the 公文 elements as one frozen
  value that checks its own structure, and ``check_metadata`` (node policy and warnings).
- ``meta_json``: the META.json / metadata.json contract both ways, and the GB/T 33480 short names.
- ``canonical``: the one canonical JSON encoding (``canonical_json``) and the strict JSON reader for
  untrusted bytes; everything signed or hashed as JSON goes through it.
- ``ids``: time-ordered unique ids (UUIDv7 layout) for 公文标识 and envelope message ids.
- ``states``: the per-recipient lifecycle on sender and receiver side — the transition tables,
  events, frozen recipient rows, Chinese labels, the derived ``overdue``.
- ``retry``: retry timing — one pure function from attempt, times, policy and a random number to
  the next attempt or GIVE_UP.
- ``manifest``: the package manifest (every file with SHA-256, size, media type) and member names.
- ``pades``: sealing body.pdf (PAdES through pyHanko) and validating such a seal.
- ``pades_lean``: the lean check of a PAdES seal (byte ranges and the CMS, no PDF parsing), what a
  receiving node's processor uses.
- ``ofd_container`` / ``ofd_seal`` / ``ofd_verify`` (errors in ``ofd_errors``): an OFD body (GB/T 33190)
  opened as hostile, sealed inside per GB/T 38540 (Signatures.xml, Signature.xml, Seal.esl,
  SignedValue.dat) and its seals verified, each failure its own code.
- packages (``package.py``): the sealed document package (ZIP with metadata.json, body, attachments,
  manifest and detached CMS signature), built and read.
- ``envelope``: the routing header — ONE header shape:
  :class:`~exchange_protocol.envelope.HeaderDraft` (every field but the payload's, validated when
  made; what the node's drafts, outgoing messages and local deliveries carry) and
  :class:`~exchange_protocol.envelope.EnvelopeHeader`, the draft completed with the payload's length
  and digest at sealing time — and ``check_bundle``, the rules between the headers of one bundle.
- ``frame``: the binary frame one node hands another (version 2): K ≥ 1 signed headers and one
  payload; K = 1 is the ordinary envelope, K > 1 a bundle (fan-out) a relay splits by next hop.
- ``envelope_crypto`` / ``envelope_seal``: payload encryption, once for every destination node;
  sealing drafts (encrypt, complete, sign each header, frame) and opening a frame (every header
  judged before any payload byte), a relay's check and the prefix of a subset of a bundle.
- ``digests``: the protocol's digests by network profile — SHA-256, or SM3 on a 国密 network — for the
  header's payload digest, the receipt's frame digest and the replay identity (the field's name
  names the algorithm), and which digests are not the protocol's.
- ``replay``: the duplicate/replay identity of an envelope (header and signature, the relays' hop
  count left out) and the new / duplicate / ``ENV_REPLAYED`` decision the receiver's dedupe takes.
- ``transport_receipt``: the receiving node's signed proof that it holds these exact bytes.
- ``batch_answer``: the peer protocol's answer to a batch of frames (receipts, per-frame refusals,
  partial answers, a refusal of the whole request) — encoded by the receiver, decoded by the sender.
- ``directory`` / ``directory_signing``: the network directory as a value (every node and unit, the
  tree, direct links, revocation points, a version that only grows, expiry as a status) and its
  signed file — signed by the directory signer (``pki.directory_signer``), verified for signature,
  chain, purpose, well-formedness and rollback.
- ``notices``: 签收, 退回, 撤回, 催办, 答复, transport-ack and bounce payloads.
"""
