// The live picture of the DAG layer: entries as dots, lines to their parents; a dot turns green
// ("covered") once a checkpoint finalizes it, red when rejected, purple when held for review.

const SVG = "http://www.w3.org/2000/svg";
const MAX_NODES = 150;
const COLUMN_WIDTH = 30;
const ROW_HEIGHT = 22;
const ROWS = 10;

export class DagView {
  constructor(svg, onSelect) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.nodes = new Map(); // id -> {id, parents, author, kind, column, row, state}
    this.outcomes = new Map(); // id -> outcome, also for entries not (yet) drawn
    this.scheduled = false;
  }

  add(entry) {
    if (this.nodes.has(entry.id)) return;
    let column = 0;
    for (const parent of entry.parents) {
      const known = this.nodes.get(parent);
      if (known) column = Math.max(column, known.column + 1);
    }
    if (column === 0 && this.nodes.size) column = this.minColumn();
    const row = [...this.nodes.values()].filter((n) => n.column === column).length;
    this.nodes.set(entry.id, { ...entry, column, row, state: stateOf(this.outcomes.get(entry.id)) });
    while (this.nodes.size > MAX_NODES) this.nodes.delete(this.nodes.keys().next().value);
    this.schedule();
  }

  minColumn() {
    let low = Infinity;
    for (const n of this.nodes.values()) low = Math.min(low, n.column);
    return low === Infinity ? 0 : low;
  }

  settle(id, outcome) {
    this.outcomes.set(id, outcome);
    if (this.outcomes.size > 4 * MAX_NODES) this.outcomes.delete(this.outcomes.keys().next().value);
    const node = this.nodes.get(id);
    if (node) { node.state = stateOf(outcome); this.schedule(); }
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.render(); });
  }

  render() {
    const svg = this.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const nodes = [...this.nodes.values()];
    if (!nodes.length) {
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", "16"); text.setAttribute("y", "30"); text.setAttribute("fill", "#6b7385");
      text.textContent = "No entries yet: they appear here as they are accepted.";
      svg.appendChild(text);
      return;
    }
    const width = Math.max(600, svg.clientWidth || 600);
    const fits = Math.floor((width - 32) / COLUMN_WIDTH);
    let high = 0;
    for (const n of nodes) high = Math.max(high, n.column);
    const first = Math.max(this.minColumn(), high - fits + 1);
    const place = (n) => [16 + (n.column - first) * COLUMN_WIDTH, 16 + (n.row % ROWS) * ROW_HEIGHT];
    svg.setAttribute("viewBox", `0 0 ${width} ${32 + ROWS * ROW_HEIGHT}`);
    const lines = document.createElementNS(SVG, "g");
    const dots = document.createElementNS(SVG, "g");
    for (const n of nodes) {
      if (n.column < first) continue;
      const [x, y] = place(n);
      for (const parentId of n.parents) {
        const parent = this.nodes.get(parentId);
        if (!parent || parent.column < first) continue;
        const [px, py] = place(parent);
        const line = document.createElementNS(SVG, "line");
        line.setAttribute("x1", px); line.setAttribute("y1", py); line.setAttribute("x2", x); line.setAttribute("y2", y);
        lines.appendChild(line);
      }
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x); dot.setAttribute("cy", y); dot.setAttribute("r", "7");
      dot.setAttribute("data-id", n.id);
      dot.setAttribute("class", n.state);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${n.kind} by ${n.author}\n${n.id}\n${n.state}`;
      dot.appendChild(title);
      dot.addEventListener("click", () => this.onSelect(n.id));
      dots.appendChild(dot);
    }
    svg.appendChild(lines);
    svg.appendChild(dots);
  }
}

function stateOf(outcome) {
  switch (outcome) {
    case "FINAL": return "covered";
    case "REJECTED": return "covered rejected";
    case "HELD": return "covered held";
    default: return "pending";
  }
}
