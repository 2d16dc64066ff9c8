"""bench/node.py's report: the figures so far after each phase, and the table of those that ran.

The table has a block per phase that ran — acceptance (with the floor it is measured against), the
inbox behind it, Postfix beside it (``--vs-postfix``), the package validations and the fan-out
(``pdf``), the large attachment (``big``) — so ``--small`` and ``--skip`` print a table too, not a
dump. bench/node.py prints the JSON object after it, as its last line.
"""

from __future__ import annotations

import json


def progress(phase: str, fig: dict) -> None:
    """The figures so far, so a later phase that fails does not lose them."""
    print(f"after {phase}: " + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()},
                                          ensure_ascii=False), flush=True)


def _accept_rows(fig: dict, args) -> list[tuple[str, str, str]]:
    rows = [
        ("documents sent over the peer API", f"{fig['accepted']:,} accepted", f"{fig['refused']} refused"),
        ("envelope size", f"{fig['envelope_bytes'] / 1024:.0f} KiB", f"batches of {args.batch}, {args.inflight} in flight"),
        ("accepted durably", f"{fig['accept_per_s']:.0f} /s", f"{fig['accept_wall_s']:.1f} s wall"),
        *([("  by worker (one peer port)", " / ".join(f"{n:,.0f}" for n in fig["accepted_by_worker"]),
            f"{len(fig['accepted_by_worker'])} workers, reuse_port")] if len(fig.get("accepted_by_worker", ())) > 1 else []),
        ("latency submit → receipt p50", f"{fig['latency_p50_ms']:.0f} ms", "per envelope (its batch)"),
        ("latency submit → receipt p99", f"{fig['latency_p99_ms']:.0f} ms", ""),
        ("receiver CPU per document", f"{fig['receiver_cpu_ms_per_doc']:.2f} ms",
         f"{fig['receiver_cpu_cores']:.2f} cores busy, {fig['receiver_cpu_kernel_share']:.0%} in the kernel"),
        ("  of it, its check processes'", f"{fig['check_processes_cpu_ms_per_doc']:.2f} ms",
         f"[processing] check_processes = {fig['check_processes'] if fig['check_processes'] is not None else 'default'}"),
        ("  PAdES-validated meanwhile (processor)", f"{fig['pdf_validated_meanwhile']:.0f}", "documents"),
        ("  sender node / bench client CPU", f"{fig['sender_node_cpu_cores']:.2f} / {fig['client_cpu_cores']:.2f}",
         "cores"),
        *([("  PostgreSQL server CPU per document", f"{fig['postgres_cpu_ms_per_doc']:.2f} ms",
            f"{fig['postgres_cpu_cores']:.2f} cores busy (both nodes' databases)")]
          if "postgres_cpu_ms_per_doc" in fig else []),
        ("receipts verified afterwards", f"{fig['receipts_verified']:,}", f"{fig['receipt_verify_ms']:.2f} ms each"),
        ("floor: ECDSA P-256 verify", f"{fig['floor_ecdsa_verify_us']:.0f} µs", "×2"),
        ("floor: ECDSA P-256 sign", f"{fig['floor_ecdsa_sign_us']:.0f} µs", "×1"),
        ("floor: ECDH", f"{fig['floor_ecdh_us']:.0f} µs", "×1"),
        ("floor: AES-256-GCM, envelope size", f"{fig['floor_aes_gcm_us']:.0f} µs", "×2"),
        ("floor: SHA-256, envelope size", f"{fig['floor_sha256_us']:.0f} µs", "×3"),
        ("floor per acceptance", f"{fig['floor_us_per_doc'] / 1000:.2f} ms",
         f"{fig['floor_per_s_one_core']:.0f} /s on one core; measured CPU is "
         f"{fig['receiver_cpu_ms_per_doc'] * 1000 / fig['floor_us_per_doc']:.0f}× it"),
    ]
    if "inbox_per_s" in fig:
        rows += [("in the inbox, full check", f"{fig['inbox_per_s']:.0f} /s",
                  f"{fig['inbox_wall_s']:.1f} s from the first POST, {fig['inbox_failed']:.0f} failed"),
                 ("  receiver CPU per document, inbox too", f"{fig['cpu_ms_per_doc_with_inbox']:.2f} ms",
                  f"{fig['cpu_cores_with_inbox']:.2f} cores busy; its check processes' "
                  f"{fig['check_processes_cpu_ms_per_doc_with_inbox']:.2f} ms")]
    if "postfix_per_s" in fig:
        rows += [("Postfix, same messages (fsync on)", f"{fig['postfix_per_s']:.0f} /s",
                  f"{fig['postfix_cpu_ms_per_msg']:.2f} ms CPU each, {fig['postfix_connections']} connections"),
                 ("  with STARTTLS and client certificates", f"{fig['postfix_tls_per_s']:.0f} /s",
                  f"{fig['postfix_tls_cpu_ms_per_msg']:.2f} ms CPU each"),
                 ("accepted × Postfix (plain / TLS)",
                  f"{fig['ratio_vs_postfix']:.2f} / {fig['ratio_vs_postfix_tls']:.2f}", "aim ≥ 1.2")]
    return rows


def _pdf_rows(fig: dict) -> list[tuple[str, str, str]]:
    return [
        ("full package validation (PAdES)", f"{fig['pdf_validations_per_s']:.1f} /s", "one core, bench process"),
        ("  with the lean PAdES check", f"{fig['pdf_lean_validations_per_s']:.1f} /s", "what the processor runs"),
        (f"one document to {fig['fanout_units']} units: validations", f"{fig['fanout_pdf_validations']:.0f}",
         "gwx_pdf_validations_total"),
    ]


def _big_rows(fig: dict) -> list[tuple[str, str, str]]:
    return [
        (f"{fig['big_attachment_mib']:.0f} MiB attachment: submit", f"{fig['big_submit_s']:.1f} s",
         "sender's local API, package built"),
        ("  end to end (in receiver's inbox)", f"{fig['big_end_to_end_s']:.1f} s", f"{fig['big_mib_per_s']:.0f} MiB/s"),
        ("  peak RSS sender / receiver", f"{fig['peak_rss_sender_mib']:.0f} / {fig['peak_rss_receiver_mib']:.0f} MiB",
         "VmHWM, aim ≤ 200 MB"),
    ]


def table(fig: dict, args) -> None:
    """The figures of the phases that ran, one row each: label, value, note."""
    rows = [*(_accept_rows(fig, args) if "accepted" in fig else []),
            *(_pdf_rows(fig) if "pdf_validations_per_s" in fig else []),
            *(_big_rows(fig) if "big_attachment_mib" in fig else [])]
    print()
    print(f"{'figure':44} {'value':>16}  note")
    for label, value, note in rows:
        print(f"{label:44} {value:>16}  {note}")
