"""The ``gwx`` command line: one module per command group, registered in ``main``.

``pki_ca``, ``pki_requests``, ``pki_seal``, ``pki_revocation`` (``gwx pki``: CA, node credentials,
signing nodes' requests, directory signer, seals, revocation); ``net`` (``gwx net``: the network
directory — build, show, diff); ``doc`` (``gwx doc``); ``node_admin``, ``node_enrol`` (request,
request-seal, install-certs), ``node_run`` (``gwx node``); ``clerk``, ``download`` (the clerks'
top-level commands); ``api_client``, ``passphrase``, ``exit_codes``: what they share.

Started as a command (``gwx …`` or ``python -m node.cli.main …``), Ctrl-C while the modules are
still loading ends the process quietly with status 130: there is nothing to clean up yet, and
Python would print a traceback of whichever import it interrupted. :func:`node.cli.main.main`
re-arms ``KeyboardInterrupt`` once the command itself runs (so ``node init`` can clean up).
"""

import os
import signal
import sys


def _interrupted_while_loading(signum, frame) -> None:
    os._exit(128 + signal.SIGINT)


# Only when this process is the command: imported by a test runner or the node, leave SIGINT alone.
if sys.argv and (os.path.basename(sys.argv[0]) == "gwx" or sys.argv[0] == "-m"):
    try:
        signal.signal(signal.SIGINT, _interrupted_while_loading)
    except ValueError:  # not the main thread
        pass
