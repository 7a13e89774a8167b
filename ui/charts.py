"""What the tabs draw as HTML and Markdown: the probability bars of a card, the training progress
bar, the line charts per round, and the escaping of data shown in Markdown. No state, no
actions: plain functions of values."""
from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

from ..engine.vocab import RoundStatus, Source
from ..service.round_summary import RoundSummary

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563")


def md(text) -> str:
    """Escape Markdown in data (sample names, transcripts, messages)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", str(text))


def source_counts(row: Mapping[str, int]) -> list[int]:
    """A class's pool labels by source as the tables show them (`row`: service/review.class_table's):
    verified, relabeled, labeled, voted, pseudo. A card's consensus and its adjudication (votes)
    share the one narrow "voted" column, so the tables keep fitting at 1366 px."""
    return [row[Source.VERIFIED], row[Source.RELABELED], row[Source.LABELED],
            row[Source.CONSENSUS] + row[Source.ADJUDICATED], row[Source.PSEUDO]]


def widths(columns: Mapping[str, float]) -> list[str | int]:
    """A table's column widths (Dataframe's column_widths) in % of its width, from each column's
    relative weight: the table fits its box at any width, its cells wrap."""
    total = sum(columns.values())
    return [f"{100 * w / total:.2f}%" for w in columns.values()]


def pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def probability_bars(probs: dict[str, float], predicted: str) -> str:
    """The class probabilities in class order (the order of the relabel keys), each with its
    key and its value to one decimal."""
    rows = []
    for i, (name, p) in enumerate(probs.items()):
        key = str(i + 1) if i < 9 else ""
        top = " top" if name == predicted else ""
        rows.append(f'<div class="pbar{top}"><kbd>{key}</kbd><span class="cls">{html.escape(name)}</span>'
                    f'<span class="track"><span class="fill" style="width:{100 * p:.1f}%"></span></span>'
                    f'<span class="val">{100 * p:.1f}%</span></div>')
    return '<div class="pbars" aria-label="class probabilities">' + "".join(rows) + "</div>"


def progress_bar(snap: dict) -> str:
    pct = round(100 * snap["fraction"])
    state = "running" if snap["running"] else ("failed" if snap["error"] else "idle")  # not vocab: CSS classes
    text = html.escape(snap["message"]) + (f" · {snap['elapsed_s']:.0f} s" if snap["elapsed_s"] else "")
    return (f'<div class="train-progress {state}"><div class="bar" style="width:{pct}%"></div>'
            f'<span>{pct}% · {text}</span></div>')


def waf_plot(rounds: Sequence[RoundSummary]) -> str:
    """CV and test WAF of the finished rounds."""
    done = [r for r in rounds if r.status == RoundStatus.DONE]
    cv = [(r.id, r.cv_waf) for r in done if r.cv_waf is not None]
    test = [(r.id, r.test_waf) for r in done if r.test_waf is not None]
    return round_chart("WAF per round", {"CV": cv, "test": test})  # not vocab: the legend


def f1_plot(rounds: Sequence[RoundSummary]) -> str:
    """CV F1 per class of the finished rounds."""
    done = [(r.id, f1) for r in rounds if r.status == RoundStatus.DONE and (f1 := r.cv_f1)]
    classes = list(dict.fromkeys(c for _, f1 in done for c in f1))
    return round_chart("CV F1 per class", {c: [(rid, f1[c]) for rid, f1 in done if c in f1] for c in classes})


def y_range(values: Sequence[float]) -> tuple[float, float]:
    """The y axis: the data with a margin (at least 0.02 each side), within [0, 1]."""
    lo, hi = min(values), max(values)
    pad = max(0.02, (hi - lo) * 0.15)
    return max(0.0, lo - pad), min(1.0, hi + pad)


def round_chart(title: str, series: dict[str, list[tuple[int, float]]], width: int = 380,
                height: int = 210) -> str:
    """A line-with-points chart of values per round as inline SVG, y axis fitted to the data,
    the values on hover (title), a legend that wraps under the plot."""
    series = {k: v for k, v in series.items() if v}
    head = f'<div class="round-chart"><div class="chart-title">{html.escape(title)}</div>'
    if not series:
        return head + '<div class="chart-empty">no finished round yet</div></div>'
    rounds = sorted({r for pts in series.values() for r, _ in pts})
    lo, hi = y_range([v for pts in series.values() for _, v in pts])
    left, right, top, bottom = 44, 12, 8, 28
    pw, ph = width - left - right, height - top - bottom

    def x(r: int) -> float:
        return left + (pw / 2 if len(rounds) == 1 else pw * rounds.index(r) / (len(rounds) - 1))

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{html.escape(title)}">']
    for k in range(5):  # horizontal grid with tick labels
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{v:.3f}</text>')
    step = max(1, len(rounds) // 12)
    for r in rounds[::step]:
        parts.append(f'<text x="{x(r):.1f}" y="{height - 10}" class="tick" text-anchor="middle">{r}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height}" class="tick" text-anchor="middle">round</text>')
    legend = []
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        xy = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in pts)
        parts.append(f'<polyline points="{xy}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r, v in pts:
            parts.append(f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}">'
                         f'<title>{html.escape(name)} · round {r}: {v:.4f}</title></circle>')
        legend.append(f'<span><i style="background:{color}"></i>{html.escape(name)} {pts[-1][1]:.3f}</span>')
    parts.append("</svg>")
    return head + "".join(parts) + f'<div class="chart-legend">{"".join(legend)}</div></div>'


def alpha_bars(per_class: Mapping[str, Mapping]) -> str:
    """Krippendorff's alpha per class (`agreement --json`'s per_class) as bars from 0, each with
    its 95 % interval as a whisker; the axis runs from the lowest value shown (or 0) to 1."""
    values = [v for a in per_class.values() for v in (a["alpha"], a["low"], a["high"]) if v is not None]
    lo = min([0.0, *values])
    span = 1.0 - lo

    def at(x: float) -> float:
        return 100 * (min(1.0, x) - lo) / span

    rows = []
    for name, a in per_class.items():
        if a["alpha"] is None:
            bar, text = "", f"n/a ({a['items']} cards)"
        else:
            left, right = sorted((at(0.0), at(a["alpha"])))
            bar = f'<span class="fill" style="left:{left:.1f}%;width:{right - left:.1f}%"></span>'
            if a["low"] is not None and a["high"] is not None:
                bar += (f'<span class="ci" style="left:{at(a["low"]):.1f}%;'
                        f'width:{at(a["high"]) - at(a["low"]):.1f}%"></span>')
            ci = "" if a["low"] is None else f" [{a['low']:.2f}, {a['high']:.2f}]"
            text = f"{a['alpha']:.2f}{ci} · {a['items']}"
        rows.append(f'<div class="abar"><span class="cls">{html.escape(name)}</span>'
                    f'<span class="track">{bar}<span class="zero" style="left:{at(0.0):.1f}%"></span></span>'
                    f'<span class="val">{html.escape(text)}</span></div>')
    return ('<div class="abars" aria-label="alpha per class"><div class="abar head"><span>class</span>'
            '<span>alpha, 95 % interval (whisker)</span><span>alpha [interval] · cards</span></div>'
            + "".join(rows) + "</div>")
