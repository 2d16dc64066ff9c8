"""The watched folder (issue 9 §4): OA systems that can only write files send and receive through it.

Per hosted unit (``[[folders]]`` in node.toml) a folder with ``outgoing/`` (the OA's drops),
``results/``, ``rejects/``, ``inbox/`` and the node's own ``work/``. Module map:

* ``layout``   — the folder's parts, and the atomic writes and moves everything else uses;
* ``drop``     — what counts as a complete drop, and reading one without trusting it;
* ``unzip``    — unpacking a zipped drop, refusing traversal, links and bombs;
* ``outgoing`` — claim, key, submit, result or reject: each drop sent exactly once across kill -9;
* ``inbox``    — the unit's consumer of the adapters' outbox: received documents and event files;
* ``watcher``  — the polling task per unit that the node's runner starts and stops;
* ``errors``   — the ``DROP_*`` codes an OA reads in ``error.json``.
"""
