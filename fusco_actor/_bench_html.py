"""The ``fusco bench --html FILE`` page: the report of one run as charts and a table.

Strategy
--------
The charts are Plotly figures (the optional ``html`` extra): each is rendered
with ``plotly.io.to_html(full_html=False, include_plotlyjs=False)`` into a
``<div>`` plus the script that draws it, and plotly.js itself is inlined once
in the page's ``<head>`` (``plotly.offline.get_plotlyjs()``, about 4.6 MiB),
so the page draws with no network at all: it can be mailed or archived as
one file.

Three charts, all latencies in milliseconds:

- *latency over time*: p50 and p99 of the responses of each second;
- *latency by percentile*: the HDR spectrum, on a log axis of
  ``1 / (1 - p)`` as HdrHistogram's plotter draws it, so that 90%, 99%,
  99.9%... are evenly spaced and the tail gets the room it deserves; the
  100% point (the maximum) sits one decade past the last finite one;
- *throughput over time*: responses and errors per second (with the asked
  rate in the open model).

Injection: every string taken from the report (URL, path, error messages,
status codes) reaches the page through :func:`html.escape` only; the figures
carry numbers and fixed labels, and Plotly's JSON encoder escapes ``<``,
``>`` and ``/`` inside its ``<script>`` anyway.
"""

from __future__ import annotations

import html
import math
from typing import Any, Final

from fusco_actor._bench_report import errors_not_shown, seconds_text, size_text

__all__ = ["INSTALL_HINT", "render_html"]

INSTALL_HINT: Final = "pip install 'fusco_actor[html]'"
CHART_HEIGHT: Final = "380px"
CHART_IDS: Final = ("latency-over-time", "latency-spectrum", "throughput-over-time")
CHART_TITLES: Final = ("Latency over time", "Latency by percentile", "Throughput over time")
PLOT_CONFIG: Final = {"displaylogo": False, "responsive": True}
P50_COLOR: Final = "#1f77b4"
P99_COLOR: Final = "#ff7f0e"
SPECTRUM_COLOR: Final = "#9467bd"
RESPONSES_COLOR: Final = "#2ca02c"
ERRORS_COLOR: Final = "#d62728"
STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin-top: 1.6em; }
.target { font-family: monospace; word-break: break-all; color: #444; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #ddd;
         vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.msg { font-family: monospace; word-break: break-word; }
.warn { color: #b00020; font-weight: 600; }
.chart { margin: 0.5em 0 1.5em; }
"""


def render_html(report: dict[str, Any]) -> str:
    """Return one self-contained HTML page (charts and a summary) for a bench report.

    ``report`` is the dict of :func:`fusco_actor._bench_report.summarize` (what
    ``fusco bench --json`` prints). Empty time series, a run with no response
    (latencies None), errors only and a one-second run all give a page; a
    chart with nothing to draw says so. The page needs no network: plotly.js
    is inlined (a few MiB).

    Example::

        Path("bench.html").write_text(render_html(report), encoding="utf-8")

    Raises:
        ImportError: plotly is not installed; the message says
            ``pip install 'fusco_actor[html]'``.
        KeyError: ``report`` lacks a key that :func:`summarize` always gives.
    """
    pio, offline = _plotly()
    figures = (_latency_figure, _spectrum_figure, _throughput_figure)
    body = "\n".join(
        f'<h2>{title}</h2>\n<div class="chart">{_figure_html(pio, figure(report), div_id)}</div>'
        for figure, div_id, title in zip(figures, CHART_IDS, CHART_TITLES, strict=True)
    )
    url = _e(report["url"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fusco bench: {url}</title>
<style>{STYLE}</style>
<script type="text/javascript">{offline.get_plotlyjs()}</script>
</head>
<body>
<h1>fusco bench</h1>
<div class="target">{url}</div>
{_notices(report)}
<h2>Summary</h2>
{_summary_table(report)}
<h2>Status codes</h2>
{_status_table(report)}
<h2>Errors</h2>
{_errors_table(report)}
{body}
</body>
</html>
"""


def _plotly() -> tuple[Any, Any]:
    """Return ``(plotly.io, plotly.offline)`` or raise ImportError with the install hint."""
    try:
        from plotly import io as pio  # type: ignore[import-untyped]  # noqa: PLC0415
        from plotly import offline  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            f"fusco bench --html needs plotly, which is not installed: {INSTALL_HINT}"
        ) from exc
    return pio, offline


def _figure_html(pio: Any, figure: dict[str, Any], div_id: str) -> str:
    return str(
        pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=div_id,
            config=PLOT_CONFIG,
            default_height=CHART_HEIGHT,
            default_width="100%",
            validate=True,
        )
    )


# -- figures (plain dicts: plotly.io validates them) -----------------------------------


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1e3


def _layout(x_title: str, y_title: str, empty: str | None) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "margin": {"l": 70, "r": 20, "t": 20, "b": 55},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": 1.08},
        "hovermode": "x unified",
    }
    if empty is not None:
        layout["annotations"] = [
            {
                "text": empty,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "font": {"size": 16, "color": "#888"},
            }
        ]
    return layout


def _seconds_axis(layout: dict[str, Any], seconds: list[int]) -> dict[str, Any]:
    """Tick the time axis on whole seconds (at most about ten ticks)."""
    layout["xaxis"].update(tick0=0, dtick=max(1, math.ceil(len(seconds) / 10)))
    return layout


def _line(name: str, x: list[Any], y: list[Any], color: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": name,
        "x": x,
        "y": y,
        "line": {"color": color},
        "marker": {"size": 5},
        **extra,
    }


def _no_series(report: dict[str, Any]) -> str | None:
    """Return what an empty time series means, or None when it has rows."""
    if report.get("timeseries"):
        return None
    return "no per-second data" if report["requests"] else "no requests completed"


def _latency_figure(report: dict[str, Any]) -> dict[str, Any]:
    """p50 and p99 of each second, in ms; seconds with no response are gaps."""
    series = report.get("timeseries") or []
    seconds = [row["second"] for row in series]
    p50 = [_ms(row.get("p50")) for row in series]
    p99 = [_ms(row.get("p99")) for row in series]
    empty = _no_series(report) or (
        None if any(v is not None for v in p50 + p99) else "no responses to time"
    )
    hover = "%{y:.3f} ms"
    return {
        "data": [
            _line("p50", seconds, p50, P50_COLOR, hovertemplate=hover),
            _line("p99", seconds, p99, P99_COLOR, hovertemplate=hover),
        ],
        "layout": _seconds_axis(_layout("second of the run", "latency (ms)", empty), seconds),
    }


def _spectrum_x(percentile: float) -> float | None:
    """Return ``1 / (1 - p)`` for a percentile 0-100; None for 100 (infinite)."""
    remaining = 1.0 - percentile / 100.0
    return None if remaining <= 0 else 1.0 / remaining


def _percentile_label(decade: int) -> str:
    """Return the label of ``x = 10**decade``: 90%, 99%, 99.9%..."""
    return f"{100.0 - 100.0 / 10**decade:.{max(0, decade - 2)}f}%"


def _spectrum_figure(report: dict[str, Any]) -> dict[str, Any]:
    """Latency (ms) against percentile on a log ``1/(1-p)`` axis, HdrHistogram style."""
    points = report.get("spectrum") or []
    xs = [_spectrum_x(p["percentile"]) for p in points]
    top = max((x for x in xs if x is not None), default=1.0)
    decades = max(1, math.floor(math.log10(top) + 1e-9) + 1)  # the decade after the last point
    x_max = 10.0**decades
    x = [x_max if value is None else value for value in xs]
    tickvals = [1.0, 2.0] + [10.0**k for k in range(1, decades)] + [x_max]
    ticktext = ["0%", "50%"] + [_percentile_label(k) for k in range(1, decades)] + ["max"]
    layout = _layout("percentile", "latency (ms)", None if points else "no responses to time")
    layout["xaxis"].update(
        type="log",
        tickvals=tickvals,
        ticktext=ticktext,
        range=[0, math.log10(x_max) + 0.05],
        showgrid=True,
    )
    layout["hovermode"] = "closest"
    trace = _line(
        "latency",
        x,
        [_ms(p["latency"]) for p in points],
        SPECTRUM_COLOR,
        customdata=[[p["percentile"], p.get("count", 0)] for p in points],
        hovertemplate="p%{customdata[0]}: %{y:.3f} ms<br>%{customdata[1]} responses<extra></extra>",
        showlegend=False,
    )
    trace["line"]["shape"] = "hv"
    return {"data": [trace], "layout": layout}


def _throughput_figure(report: dict[str, Any]) -> dict[str, Any]:
    """Responses and errors of each second; the asked rate as a dashed line (open model)."""
    series = report.get("timeseries") or []
    seconds = [row["second"] for row in series]
    data = [
        _line("responses/s", seconds, [row["responses"] for row in series], RESPONSES_COLOR),
        _line("errors/s", seconds, [row["errors"] for row in series], ERRORS_COLOR),
    ]
    target = (report.get("rate") or {}).get("target")
    if target is not None and seconds:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "asked rate",
                "x": [seconds[0], seconds[-1]],
                "y": [target, target],
                "line": {"color": "#888", "dash": "dash"},
            }
        )
    empty = _no_series(report)
    layout = _layout("second of the run", "per second", empty)
    return {"data": data, "layout": _seconds_axis(layout, seconds)}


# -- tables (every report string through _e) --------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else seconds_text(value, micro="µs")


def _rate_text(report: dict[str, Any]) -> str:
    rate = report.get("rate") or {}
    achieved = rate.get("achieved", report["requests_per_sec"])
    if report.get("model", "closed") == "closed" or rate.get("target") is None:
        return f"as fast as the connections go (closed model): {achieved:,.1f} req/s"
    kept = "kept up" if rate.get("kept_up") else "did NOT keep up"
    lag = _seconds(rate.get("max_lag"))
    return (
        f"asked {rate['target']:,.1f} req/s, achieved {achieved:,.1f} req/s: {kept} (max lag {lag})"
    )


def _latency_text(report: dict[str, Any]) -> str:
    latency = report["latency"]
    if latency.get("max") is None:
        return "n/a (no responses)"
    percentiles = sorted(
        (key for key in latency if key.startswith("p")), key=lambda key: float(key[1:])
    )
    parts = [f"min {_seconds(latency['min'])}", f"mean {_seconds(latency['mean'])}"]
    parts += [f"{key} {_seconds(latency[key])}" for key in percentiles]
    parts.append(f"max {_seconds(latency['max'])}")
    return ", ".join(parts)


def _summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    target = report["url"] + (" (embedded server)" if report["embedded_server"] else "")
    done = (
        f"{report['requests']:,} completed: {report['responses']:,} responses, "
        f"{report['error_count']:,} errors"
    )
    if report["unfinished"]:
        done += f", {report['unfinished']:,} unfinished"
    rate = report["success_rate"]
    duration = f"{report['duration']:.3f} s"
    if report["interrupted"]:
        duration += f" (interrupted by {report['signal'] or 'SIGINT'})"
    return [
        ("Target", target),
        ("Request", f"{report['method']} {report['path']}, body {size_text(report['body_size'])}"),
        ("Model", report.get("model", "closed")),
        ("Rate", _rate_text(report)),
        ("Connections", f"{report['connections']}"),
        ("Pipeline", f"{report['pipeline']}"),
        ("Workers", f"{report.get('workers', 1)}"),
        ("Duration", duration),
        ("Requests", done),
        ("Success rate", "n/a" if rate is None else f"{rate * 100:.2f}% of requests sent"),
        ("Responses/s", f"{report['requests_per_sec']:,.1f}"),
        ("Transfer", f"{size_text(report['bytes'])} read, {size_text(report['bytes_per_sec'])}/s"),
        ("Latency", _latency_text(report)),
    ]


def _summary_table(report: dict[str, Any]) -> str:
    rows = "\n".join(
        f"<tr><th>{_e(label)}</th><td>{_e(value)}</td></tr>"
        for label, value in _summary_rows(report)
    )
    return f'<table id="summary">\n{rows}\n</table>'


def _status_table(report: dict[str, Any]) -> str:
    if not report["status"]:
        return "<p>none (no responses)</p>"
    rows = "\n".join(
        f'<tr><td>{_e(code)}</td><td class="num">{int(count):,}</td></tr>'
        for code, count in report["status"].items()
    )
    return f'<table id="status">\n<tr><th>status</th><th>responses</th></tr>\n{rows}\n</table>'


def _errors_table(report: dict[str, Any]) -> str:
    total = report["error_count"]
    if not total:
        return "<p>none</p>"
    rows = "\n".join(
        f'<tr><td class="num">{int(error["count"]):,}</td><td>{_e(error["type"])}</td>'
        f'<td class="msg">{_e(error["message"])}</td></tr>'
        for error in report["errors"]
    )
    hidden, rest = errors_not_shown(report)
    more = f"<p>... and {hidden:,} more distinct ({rest:,} errors)</p>" if hidden > 0 else ""
    return (
        f'<p class="warn">{total:,} errors ({report["error_kinds"]:,} distinct)</p>\n'
        f'<table id="errors">\n<tr><th>count</th><th>type</th><th>message</th></tr>\n'
        f"{rows}\n</table>{more}"
    )


def _notices(report: dict[str, Any]) -> str:
    """Return warnings worth seeing first: a client that fell behind, an interrupted run."""
    notes = []
    rate = report.get("rate") or {}
    if report.get("model") == "open" and rate.get("target") is not None and not rate["kept_up"]:
        notes.append(
            "The client did not keep up with the asked rate: requests left later than "
            "planned, and latency counts that wait."
        )
    if report["interrupted"]:
        notes.append(f"The run was interrupted by {report['signal'] or 'SIGINT'}.")
    if report["error_count"] or report["unfinished"]:
        notes.append("Some requests failed or did not finish.")
    return "\n".join(f'<p class="warn">{_e(note)}</p>' for note in notes)
