import type { Graph } from "../model/workflowDoc";

export const NODE_W = 200;
export const NODE_H = 64;

/** Positions for steps without `ui`: layers by longest path from the roots, left to right. */
export function quickLayout(g: Graph): Map<string, { x: number; y: number }> {
  const rank = new Map<string, number>();
  const needs = new Map(g.steps.map((s) => [s.id, s.needs]));
  const visit = (id: string, depth = 0): number => {
    if (rank.has(id)) return rank.get(id)!;
    if (depth > g.steps.length) return 0;
    const r = Math.max(-1, ...(needs.get(id) ?? []).filter((n) => needs.has(n)).map((n) => visit(n, depth + 1))) + 1;
    rank.set(id, r);
    return r;
  };
  const rows = new Map<number, number>();
  const out = new Map<string, { x: number; y: number }>();
  for (const s of g.steps) {
    const r = visit(s.id);
    const row = rows.get(r) ?? 0;
    rows.set(r, row + 1);
    out.set(s.id, { x: r * (NODE_W + 60), y: row * (NODE_H + 40) });
  }
  return out;
}

/** The elk "layered" layout of the whole graph (elkjs loaded on first use). */
export async function elkLayout(g: Graph): Promise<Map<string, { x: number; y: number }>> {
  const { default: ELK } = await import("elkjs/lib/elk.bundled.js");
  const elk = new ELK();
  const res = await elk.layout({
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.spacing.nodeNode": "40",
      "elk.layered.spacing.nodeNodeBetweenLayers": "60",
    },
    children: g.steps.map((s) => ({ id: s.id, width: NODE_W, height: NODE_H })),
    edges: g.edges.map((e, i) => ({ id: `e${i}`, sources: [e.source], targets: [e.target] })),
  });
  return new Map((res.children ?? []).map((c) => [c.id, { x: c.x ?? 0, y: c.y ?? 0 }]));
}
