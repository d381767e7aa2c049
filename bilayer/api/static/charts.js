// Small SVG charts for the console's dashboards: a line chart with threshold lines (a
// facility's LTV against its warning, call and liquidation lines) and stacked bars (stock by
// state). Drawn from data with DOM calls only, like ui.js: nothing is parsed as markup.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2856c8", "#1d8a4e", "#b7791f", "#7b3fb5", "#c53030", "#0f8a94", "#6b7385", "#d45d9a"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Round tick steps (1, 2, 5 × 10^k) so the axis reads like a person drew it.
function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((m) => m >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9 && out.length < 50; v += step) out.push(v);
  return out;
}

// series: [{name, points: [[x label, y number], ...]}]; lines: [{name, y, kind}] drawn across
// the whole width (kind picks the colour class: warn, bad, held). x values are labels (days),
// shared by every series in the order they first appear.
export function lineChart({ series, lines = [], yFormat = (v) => String(v), width = 720, height = 260, label = "" }) {
  const xs = [];
  for (const one of series) for (const [x] of one.points) if (!xs.includes(x)) xs.push(x);
  const ys = [...series.flatMap((one) => one.points.map(([, y]) => y)), ...lines.map((l) => l.y)].filter(Number.isFinite);
  const pad = { left: 56, right: 120, top: 14, bottom: 34 };
  const w = width - pad.left - pad.right;
  const hgt = height - pad.top - pad.bottom;
  let lo = ys.length ? Math.min(...ys) : 0;
  let hi = ys.length ? Math.max(...ys) : 1;
  const margin = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  lo -= margin; hi += margin;
  const x = (i) => pad.left + (xs.length <= 1 ? w / 2 : (i * w) / (xs.length - 1));
  const y = (v) => pad.top + hgt - ((v - lo) / (hi - lo)) * hgt;
  const grid = ticks(lo, hi).map((v) => s("g", { class: "tick" },
    s("line", { x1: pad.left, x2: pad.left + w, y1: y(v), y2: y(v) }),
    s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, yFormat(v))));
  const every = Math.max(1, Math.ceil(xs.length / 8));
  const xlabels = xs.map((d, i) => (i % every === 0 || i === xs.length - 1
    ? s("text", { class: "xlabel", x: x(i), y: pad.top + hgt + 18, "text-anchor": "middle" }, d) : null));
  const thresholds = lines.map((l) => s("g", { class: `threshold ${l.kind || "warn"}`, "data-line": l.name },
    s("line", { x1: pad.left, x2: pad.left + w, y1: y(l.y), y2: y(l.y) }),
    s("text", { x: pad.left + w + 6, y: y(l.y) + 4 }, `${l.name} ${yFormat(l.y)}`)));
  const paths = series.map((one, k) => {
    const colour = one.colour || PALETTE[k % PALETTE.length];
    const pts = one.points.filter(([, v]) => Number.isFinite(v)).map(([d, v]) => [x(xs.indexOf(d)), y(v)]);
    return s("g", { class: "series", "data-series": one.name },
      s("polyline", { points: pts.map((p) => p.join(",")).join(" "), stroke: colour }),
      pts.map(([px, py], i) => s("circle", { cx: px, cy: py, r: 3, fill: colour },
        s("title", {}, `${one.name} ${one.points[i][0]}: ${yFormat(one.points[i][1])}`))));
  });
  const legend = series.length > 1 ? series.map((one, k) => s("text", {
    class: "legend", x: pad.left + 8 + (k % 4) * 150, y: pad.top + 12 + Math.floor(k / 4) * 14,
    fill: one.colour || PALETTE[k % PALETTE.length] }, one.name)) : [];
  return s("svg", { class: "chart line-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    s("title", {}, label), grid, xlabels, thresholds, paths, legend);
}

// rows: [{label, parts: [[part name, value], ...]}]; one horizontal bar per row, its parts
// stacked in the order of `parts` (the same part names colour the same in every row).
export function stackedBars({ rows, format = (v) => String(v), width = 720, label = "", colours = {} }) {
  const names = [];
  for (const row of rows) for (const [name] of row.parts) if (!names.includes(name)) names.push(name);
  const colourOf = (name) => colours[name] || PALETTE[names.indexOf(name) % PALETTE.length];
  const barH = 20;
  const gap = 10;
  const pad = { left: 150, right: 120, top: 26 };
  const w = width - pad.left - pad.right;
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((sum, [, v]) => sum + v, 0)));
  const height = pad.top + rows.length * (barH + gap) + 6;
  const legend = names.map((name, k) => s("g", { class: "legend" },
    s("rect", { x: pad.left + k * 120, y: 4, width: 12, height: 12, fill: colourOf(name) }),
    s("text", { x: pad.left + k * 120 + 16, y: 15 }, name)));
  const bars = rows.map((row, i) => {
    const top = pad.top + i * (barH + gap);
    let left = pad.left;
    const total = row.parts.reduce((sum, [, v]) => sum + v, 0);
    return s("g", { class: "bar", "data-row": row.label },
      s("text", { x: pad.left - 8, y: top + barH - 5, "text-anchor": "end" }, row.label),
      row.parts.filter(([, v]) => v > 0).map(([name, v]) => {
        const span = (v / max) * w;
        const rect = s("rect", { x: left, y: top, width: Math.max(span, 1), height: barH, fill: colourOf(name),
          "data-part": name }, s("title", {}, `${row.label} · ${name}: ${format(v)}`));
        left += span;
        return rect;
      }),
      s("text", { x: left + 6, y: top + barH - 5 }, format(total)));
  });
  return s("svg", { class: "chart bar-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    s("title", {}, label), legend, bars);
}
