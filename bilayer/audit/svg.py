"""A trace drawn as a flow graph in SVG: one column per hop, edges labelled with traced amounts.

Columns run in the direction the money went: forward traces put the start on the left,
backward traces on the right, so every arrow of the chain of custody points rightwards
(an edge that goes back to an earlier column is a cycle and is drawn as a curve)."""

from __future__ import annotations

from html import escape
from typing import Any

from .trace import Trace, account_label

COLUMN_WIDTH = 340
ROW_HEIGHT = 64
BOX_WIDTH = 190
BOX_HEIGHT = 40
MARGIN = 24
TITLE_HEIGHT = 40


def _short(label: str) -> str:
    return label if len(label) <= 20 else f"{label[:10]}…{label[-6:]}"


def render_svg(trace: Trace) -> str:
    """The trace as a standalone SVG document (deterministic: the same trace, the same bytes)."""
    forward = trace.request.direction == "forward"
    depths = [n.depth for n in trace.nodes] or [0]
    deepest = max(depths)
    columns: dict[int, list[Any]] = {}
    for node in trace.nodes:  # already ordered by depth, then traced amount
        columns.setdefault(node.depth, []).append(node)
    place: dict[tuple[bytes, str], tuple[int, int]] = {}
    for depth, members in columns.items():
        column = depth if forward else deepest - depth
        for row, node in enumerate(members):
            place[(node.account, node.asset)] = (MARGIN + column * COLUMN_WIDTH,
                                                 TITLE_HEIGHT + MARGIN + row * ROW_HEIGHT)
    title = (f"{trace.request.direction} trace from {trace.request.start}, {trace.request.hops} hops, FIFO,"
             f" height {trace.height}" + (" (truncated)" if trace.truncated else ""))
    width = max(MARGIN * 2 + deepest * COLUMN_WIDTH + BOX_WIDTH + 120, MARGIN * 2 + len(title) * 8)
    height = TITLE_HEIGHT + MARGIN * 2 + max((len(m) for m in columns.values()), default=1) * ROW_HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="monospace" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{MARGIN}" y="{MARGIN}" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for edge in trace.edges:
        source, target = place.get((edge.source, edge.asset)), place.get((edge.target, edge.asset))
        if source is None or target is None:
            continue
        x1, y1 = source[0] + BOX_WIDTH, source[1] + BOX_HEIGHT // 2
        x2, y2 = target[0], target[1] + BOX_HEIGHT // 2
        if x2 > x1:
            path = f"M {x1} {y1} C {x1 + 40} {y1}, {x2 - 40} {y2}, {x2} {y2}"
            lx, ly = (x1 + x2) // 2, (y1 + y2) // 2 - 4
        else:  # a cycle, or a flow between accounts of one column: a loop out to the right
            x2 = target[0] + BOX_WIDTH
            if source == target:  # a refund: back to the sender
                y1, y2 = y1 - BOX_HEIGHT // 4, y2 + BOX_HEIGHT // 4
            bulge = max(x1, x2) + 60 + abs(y2 - y1) // 4
            path = f"M {x1} {y1} C {bulge} {y1}, {bulge} {y2}, {x2} {y2}"
            lx, ly = bulge - 10, (y1 + y2) // 2
        label = f"{edge.traced:,} {edge.asset}" + ("" if edge.traced == edge.amount else f" of {edge.amount:,}")
        parts.append(f'<g class="edge"><title>{escape(edge.kind)} {edge.entry.hex()} at height {edge.height},'
                     f' hop {edge.hop}</title><path d="{path}" fill="none" stroke="#555" stroke-width="1.5"'
                     ' marker-end="url(#arrow)"/>'
                     f'<text x="{lx}" y="{ly}" text-anchor="middle" fill="#a00" stroke="#fff" stroke-width="3"'
                     f' paint-order="stroke">{escape(label)}</text></g>')
    for node in trace.nodes:
        x, y = place[(node.account, node.asset)]
        label = account_label(node.account)
        fill = "#fde8e8" if node.depth == 0 else "#eef3fb"
        parts.append(f'<g class="node"><title>{escape(label)}</title><rect x="{x}" y="{y}" width="{BOX_WIDTH}"'
                     f' height="{BOX_HEIGHT}" rx="6" fill="{fill}" stroke="#335"/>'
                     f'<text x="{x + 8}" y="{y + 16}">{escape(_short(label))}</text>'
                     f'<text x="{x + 8}" y="{y + 32}" fill="#333">{node.traced:,} {escape(node.asset)}'
                     f' · depth {node.depth}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
