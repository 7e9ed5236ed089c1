"""Server-drawn SVG charts for the operation report: bars per day (no JavaScript library).

The SVG is built from numbers and escaped labels only, so it is safe to put in the page as is.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 640, 180, 28


def bar_chart(title: str, days: list[str], values: dict[str, int], css_class: str = "") -> Markup:
    """Bars of one figure per day (days without activity show as zero), with the title as its accessible name."""
    if not days:
        return Markup("")
    top = max([values.get(day, 0) for day in days] + [1])
    slot = (WIDTH - 2 * PAD) / len(days)
    bar = max(slot * 0.7, 1.0)
    parts = [
        f'<svg class="chart {escape(css_class)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="currentColor" '
        'stroke-opacity="0.4"/>',
        f'<text x="{PAD}" y="14" font-size="11">{top:,}</text>',
    ]
    for index, day in enumerate(days):
        value = values.get(day, 0)
        height = (HEIGHT - 2 * PAD) * value / top
        x = PAD + index * slot + (slot - bar) / 2
        y = HEIGHT - PAD - height
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="currentColor" '
            f'data-day="{escape(day)}" data-value="{value}"><title>{escape(day)}: {value:,}</title></rect>'
        )
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{escape(days[0])}</text>')
    if len(days) > 1:
        parts.append(
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">{escape(days[-1])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value in it is a number or escaped
