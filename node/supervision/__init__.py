"""督办 (issue 10 §2): red lights on overdue documents and escalation to the supervising unit.

Module map:

* ``settings`` — ``[supervision]`` in node.toml: the grace in working days, the operator's
  holiday calendar file (parsed by ``exchange_protocol.supervision.parse_calendar``), how often the
  sweep runs. Why node.toml and not the signed directory: see that module.
* ``supervisors`` — who supervises a unit: the directory's ``supervisor``, else its ``parent``,
  else node.toml's ``parent`` of a hosted unit.
* ``escalation`` — the :class:`~node.supervision.escalation.Escalator`: the sweep that notices
  overdue rows (``document.overdue``) and escalates them once (``document.escalated``), the
  settlement sent when an escalated unit signs or returns, and applying a 督办 that arrived.

The rules themselves (overdue, working days, when escalation falls due) are pure functions in
:mod:`exchange_protocol.supervision`; what is kept is :mod:`node.store.supervision`.
"""
