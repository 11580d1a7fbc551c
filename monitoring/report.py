"""Human-readable views of the monitor state: rich tables for `distillery monitor report`, lines for the demo."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from monitoring.errors import StateError
from monitoring.state import load_state

STATUS_STYLE = {"ok": "green", "drift": "bold red", "warming_up": "yellow"}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _detector_hint(d: Mapping[str, Any]) -> str:
    """The one number that tells how close a detector is to firing, by detector type."""
    kind = d.get("detector")
    if kind == "ks":
        return f"D {_fmt(d.get('statistic'))} / {_fmt(d.get('threshold'))}"
    if kind == "page_hinkley":
        return f"PH {_fmt(d.get('statistic'))} / {_fmt(d.get('threshold'))}, mean {_fmt(d.get('recent_mean'))}"
    if kind == "binomial":
        rate = d.get("running_rate") if d.get("running_rate") is not None else d.get("statistic")
        return f"rate {_fmt(rate)} vs {_fmt(d.get('baseline'))}"
    if kind == "adwin":
        return f"mean {_fmt(d.get('statistic'))} (window {d.get('window', 0)})"
    return _fmt(d.get("statistic"))


def _detectors_table(title: str, detectors: list[Mapping[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for col in ("signal", "detector", "updates", "now", "firings", "alerts", "reference", "last alert"):
        table.add_column(col, overflow="fold")
    for d in detectors:
        cooldown = d.get("cooldown") or {}
        last = d.get("last_alert") or {}
        last_text = f"{last.get('severity')} {last.get('detected_at')}" if last else "–"
        ready = "" if d.get("ready", True) else " (warming up)"
        table.add_row(
            str(d.get("signal")), str(d.get("detector")), str(d.get("updates", 0)), _detector_hint(d) + ready,
            str(d.get("firings", 0)), str(cooldown.get("fired", 0)), str(d.get("reference") or "–"), last_text,
        )
    return table


def render_report(state: Mapping[str, Any], filters: list[str] | None = None, max_alerts: int = 10) -> Group:
    """The full report: a header, one detector table per filter, the global rates, the latest alerts."""
    parts: list[Any] = [
        Text(f"monitor state at {state.get('generated_at')} (since {state.get('started_at')}): "
             f"{state.get('records', 0)} records, {state.get('ignored', 0)} ignored", style="bold")
    ]
    for name, f in sorted(state.get("filters", {}).items()):
        if filters and name not in filters:
            continue
        status = str(f.get("status"))
        counts = ", ".join(f"{k} {v}" for k, v in sorted((f.get("counts") or {}).items()))
        header = Text.assemble(
            (f"{name} v{f.get('filter_version')}: ", "bold"), (status, STATUS_STYLE.get(status, "")),
            f"  [{counts}]  fingerprint {str(f.get('fingerprint') or '–')[:12]}  reference {f.get('reference')}",
        )
        parts += [Text(""), header, _detectors_table(f"{name} detectors", f.get("detectors", []))]
    glob = state.get("global") or {}
    parts += [Text(""), _detectors_table(f"global rates ({glob.get('status', 'ok')})", glob.get("detectors", []))]
    alerts = list(state.get("alerts") or [])[-max_alerts:]
    parts.append(Text(""))
    if alerts:
        table = Table(title=f"latest {len(alerts)} alerts", title_justify="left")
        for col in ("detected_at", "severity", "filter", "signal", "detector", "value", "baseline", "window"):
            table.add_column(col)
        for a in alerts:
            table.add_row(str(a.get("detected_at")), str(a.get("severity")), str(a.get("filter") or "global"),
                          str(a.get("signal")), str(a.get("detector")), _fmt(a.get("value")), _fmt(a.get("baseline")),
                          str(a.get("window")))
        parts.append(table)
    else:
        parts.append(Text("no drift alerts", style="green"))
    return Group(*parts)


def status_lines(state: Mapping[str, Any]) -> list[str]:
    """One plain line per filter (and the global rates): what `make demo` prints at the end."""
    lines = []
    alerts = list(state.get("alerts") or [])
    for name, f in sorted(state.get("filters", {}).items()):
        n_alerts = sum(1 for a in alerts if a.get("filter") == name)
        counts = f.get("counts") or {}
        drifting = sorted({a.get("signal") for a in alerts if a.get("filter") == name})
        extra = f"; drifting: {', '.join(drifting)}" if drifting else ""
        lines.append(
            f"{name}: {f.get('status')} ({sum(counts.values())} results, {n_alerts} alerts; "
            f"reference {f.get('reference')}{extra})"
        )
    glob = state.get("global") or {}
    n_global = sum(1 for a in alerts if not a.get("filter"))
    lines.append(f"global (commerce block, DLQ rates): {glob.get('status', 'ok')} ({n_global} alerts)")
    return lines


def demo_summary(state_path: str | Path, metrics_url: str | None = None) -> str:
    """The closing lines of `make demo`: drift status per filter and where the metrics endpoint is."""
    try:
        lines = ["drift status:"] + [f"  {line}" for line in status_lines(load_state(state_path))]
    except StateError as err:
        lines = [f"drift status: unavailable ({err})"]
    lines.append(f"metrics endpoint: {metrics_url}" if metrics_url else "metrics endpoint: off")
    lines.append(f"detector details: distillery monitor report --state {state_path}")
    return "\n".join(lines)


def print_report(state: Mapping[str, Any], filters: list[str] | None = None, console: Console | None = None) -> None:
    (console or Console()).print(render_report(state, filters))
