"""The clerks' web console, served by the node at ``/console/`` on the local API's listener.

Module map:

- ``app``: the aiohttp application (``make_console_app``, ``mount_console``), thin handlers that call
  the document service's contract with the signed-in user as principal, and render templates.
- ``security``: middlewares — sessions, CSRF (synchronizer token + Origin check), bounded form
  reading, security headers, typed error pages in Chinese.
- ``accounts``: users (``gwx user …``), signing in and out, lockout, session timeouts: the rules.
- ``passwords``: scrypt password hashes (memory-hard; why scrypt: in its docstring).
- ``track`` (a sent document's track page), ``supervision_page`` (the supervisor's 督办 list),
  ``stats_page`` (statistics with ``charts``, inline SVG drawn by the node, and the 台账 export).
- ``errors``: the console's typed errors; ``wording``: the Chinese sentences shown for codes and roles.
- ``templates/`` (Jinja2, autoescaped) and ``static/`` (the one style sheet; no CDN, no framework).

Users and sessions are kept by the store (``node.store.sqlite.accounts``, migration 9).
"""
