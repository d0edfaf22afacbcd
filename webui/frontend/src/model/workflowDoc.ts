// The Workflow YAML as the one source of truth: the canvas reads a graph out of the YAML
// Document and every canvas edit is an edit of that Document (npm `yaml` Document API), so
// comments, key order, quoting and blank lines outside the edited step survive.
import { Document, isMap, isSeq, isScalar, parseDocument, YAMLMap, YAMLSeq } from "yaml";

export interface StepInfo {
  id: string;
  uses: string;
  name?: string;
  index: number;
  /** the steps it waits for: `needs` when written, else the step before it in the list */
  needs: string[];
  explicitNeeds: boolean;
  with: Record<string, unknown>;
  position: { x: number; y: number } | null;
  if?: unknown;
  foreach?: unknown;
  timeout?: unknown;
  retry?: unknown;
  continueOnError?: boolean;
  integration?: string;
}

export interface Graph {
  name: string;
  steps: StepInfo[];
  edges: { source: string; target: string }[];
  inputs: Record<string, { type?: string; default?: unknown; description?: string }>;
}

export type WorkflowDoc = Document.Parsed;

const TO_STRING = { lineWidth: 0, minContentWidth: 0, flowCollectionPadding: false } as const;

export function parse(text: string): WorkflowDoc {
  return parseDocument(text, { keepSourceTokens: false });
}

export function parseErrors(doc: WorkflowDoc): string[] {
  return doc.errors.map((e) => e.message);
}

export function print(doc: Document): string {
  return doc.toString(TO_STRING);
}

function stepsSeq(doc: Document, create = false): YAMLSeq | null {
  let seq = doc.getIn(["spec", "steps"], true);
  if (!isSeq(seq)) {
    if (!create) return null;
    if (!isMap(doc.contents)) doc.contents = doc.createNode({}) as never;
    if (!doc.hasIn(["spec"])) doc.setIn(["spec"], doc.createNode({}));
    doc.setIn(["spec", "steps"], new YAMLSeq());
    seq = doc.getIn(["spec", "steps"], true);
  }
  return seq as YAMLSeq;
}

function stepMaps(doc: Document): YAMLMap[] {
  const seq = stepsSeq(doc);
  if (!seq) return [];
  return seq.items.filter((i): i is YAMLMap => isMap(i));
}

/** During `edit`: each step an operation is about to change, with its rendering before. */
let touched: Map<YAMLMap, string> | null = null;

function stepMap(doc: Document, id: string): YAMLMap {
  const m = stepMaps(doc).find((s) => s.get("id") === id);
  if (!m) throw new Error(`no step ${id}`);
  if (touched && !touched.has(m)) touched.set(m, renderStep(m));
  return m;
}

function plain(node: unknown): unknown {
  if (node && typeof node === "object" && "toJSON" in node) {
    return (node as { toJSON(): unknown }).toJSON();
  }
  return node;
}

export function graphOf(doc: WorkflowDoc): Graph {
  const steps: StepInfo[] = [];
  const maps = stepMaps(doc);
  maps.forEach((m, index) => {
    const id = String(m.get("id") ?? `step${index + 1}`);
    const needsNode = m.get("needs", true);
    const explicitNeeds = m.has("needs");
    let needs: string[];
    if (explicitNeeds) {
      needs = isSeq(needsNode) ? needsNode.items.map((n) => String(isScalar(n) ? n.value : n)) : [];
    } else {
      needs = index > 0 ? [String(maps[index - 1].get("id"))] : [];
    }
    const ui = plain(m.get("ui", true)) as { x?: number; y?: number } | undefined;
    steps.push({
      id,
      uses: String(m.get("uses") ?? ""),
      name: m.has("name") ? String(m.get("name")) : undefined,
      index,
      needs,
      explicitNeeds,
      with: (plain(m.get("with", true)) as Record<string, unknown>) ?? {},
      position:
        ui && typeof ui.x === "number" && typeof ui.y === "number" ? { x: ui.x, y: ui.y } : null,
      if: plain(m.get("if", true)),
      foreach: plain(m.get("foreach", true)),
      timeout: plain(m.get("timeout", true)),
      retry: plain(m.get("retry", true)),
      continueOnError: m.get("continueOnError") === true,
      integration: m.has("integration") ? String(m.get("integration")) : undefined,
    });
  });
  const ids = new Set(steps.map((s) => s.id));
  const edges = steps.flatMap((s) =>
    s.needs.filter((n) => ids.has(n)).map((n) => ({ source: n, target: s.id })),
  );
  const inputs = (plain(doc.getIn(["spec", "inputs"], true)) ?? {}) as Graph["inputs"];
  return { name: String(doc.getIn(["metadata", "name"]) ?? ""), steps, edges, inputs };
}

/** A step id not yet used: the action's name, then name2, name3... */
export function freshId(doc: WorkflowDoc, uses: string): string {
  const taken = new Set(stepMaps(doc).map((m) => String(m.get("id"))));
  const base =
    (uses.split(".").pop() ?? "step").replace(/[^a-zA-Z0-9_-]/g, "").replace(/^[^a-zA-Z]+/, "") ||
    "step";
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}${i}`)) return `${base}${i}`;
}

/** Appends a step; `needs: []` unless given, so it does not silently depend on the last one. */
export function addStep(
  doc: WorkflowDoc,
  step: { id: string; uses: string; with?: Record<string, unknown>; needs?: string[]; position?: { x: number; y: number } },
): void {
  const seq = stepsSeq(doc, true)!;
  const value: Record<string, unknown> = { id: step.id, uses: step.uses };
  value.needs = step.needs ?? [];
  if (step.with && Object.keys(step.with).length) value.with = step.with;
  if (step.position) value.ui = roundPos(step.position);
  const node = doc.createNode(value) as YAMLMap;
  const needs = node.get("needs", true);
  if (isSeq(needs)) needs.flow = true;
  const ui = node.get("ui", true);
  if (isMap(ui)) ui.flow = true;
  seq.items.push(node);
}

/** Writes every step's implicit `needs` out, so that removing or moving a step keeps the DAG. */
function materialise(doc: WorkflowDoc, ids: string[]): void {
  const g = graphOf(doc);
  for (const s of g.steps) {
    if (ids.includes(s.id) && !s.explicitNeeds) setNeeds(doc, s.id, s.needs);
  }
}

function setNeeds(doc: WorkflowDoc, id: string, needs: string[]): void {
  const m = stepMap(doc, id);
  const existing = m.get("needs", true);
  if (isSeq(existing)) {
    // edit in place: keeps the sequence's style and comments
    const keep = existing.items.filter((n) => needs.includes(String(isScalar(n) ? n.value : n)));
    const have = keep.map((n) => String(isScalar(n) ? n.value : n));
    existing.items = [...keep, ...needs.filter((n) => !have.includes(n)).map((n) => doc.createNode(n))];
    return;
  }
  const seq = doc.createNode(needs) as YAMLSeq;
  seq.flow = true;
  if (m.has("needs")) {
    m.set("needs", seq);
  } else {
    // after `uses` (or id) so it reads naturally
    const at = m.items.findIndex((p) => isScalar(p.key) && p.key.value === "uses");
    const pair = doc.createPair("needs", seq);
    m.items.splice(at >= 0 ? at + 1 : m.items.length, 0, pair as never);
  }
}

export function connect(doc: WorkflowDoc, source: string, target: string): boolean {
  if (source === target) return false;
  const g = graphOf(doc);
  const t = g.steps.find((s) => s.id === target);
  if (!t || !g.steps.some((s) => s.id === source) || t.needs.includes(source)) return false;
  if (reaches(g, target, source)) return false; // would make a cycle
  setNeeds(doc, target, [...t.needs, source]);
  return true;
}

function reaches(g: Graph, from: string, to: string): boolean {
  const out = new Map<string, string[]>();
  for (const e of g.edges) out.set(e.source, [...(out.get(e.source) ?? []), e.target]);
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length) {
    const n = stack.pop()!;
    if (n === to) return true;
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...(out.get(n) ?? []));
  }
  return false;
}

export function disconnect(doc: WorkflowDoc, source: string, target: string): void {
  const t = graphOf(doc).steps.find((s) => s.id === target);
  if (!t) return;
  setNeeds(doc, target, t.needs.filter((n) => n !== source));
}

export function removeStep(doc: WorkflowDoc, id: string): void {
  const g = graphOf(doc);
  const idx = g.steps.findIndex((s) => s.id === id);
  if (idx < 0) return;
  // the step after it may have depended on it implicitly; keep the rest of the DAG as drawn
  const next = g.steps[idx + 1];
  if (next) materialise(doc, [next.id]);
  const seq = stepsSeq(doc)!;
  seq.items = seq.items.filter((i) => !(isMap(i) && i.get("id") === id));
  for (const s of graphOf(doc).steps) {
    if (s.explicitNeeds && s.needs.includes(id)) setNeeds(doc, s.id, s.needs.filter((n) => n !== id));
  }
}

function roundPos(p: { x: number; y: number }): { x: number; y: number } {
  return { x: Math.round(p.x), y: Math.round(p.y) };
}

export function setPosition(doc: WorkflowDoc, id: string, p: { x: number; y: number }): void {
  const m = stepMap(doc, id);
  const r = roundPos(p);
  const ui = m.get("ui", true);
  if (isMap(ui)) {
    ui.set("x", r.x);
    ui.set("y", r.y);
  } else {
    const node = doc.createNode(r) as YAMLMap;
    node.flow = true;
    m.set("ui", node);
  }
}

/** Sets one field of a step (`with`, `if`, `foreach`, `timeout`, ...); undefined/"" removes it. */
export function setStepField(doc: WorkflowDoc, id: string, key: string, value: unknown): void {
  const m = stepMap(doc, id);
  if (value === undefined || value === "" || value === null) {
    m.delete(key);
    return;
  }
  if (key === "with" && typeof value === "object") {
    setWith(doc, m, value as Record<string, unknown>);
    return;
  }
  const current = m.get(key, true);
  if (isScalar(current) && typeof value !== "object") {
    current.value = value;
    return;
  }
  m.set(key, doc.createNode(value));
}

/** Updates `with` key by key so that untouched parameters keep their formatting and comments. */
function setWith(doc: WorkflowDoc, m: YAMLMap, value: Record<string, unknown>): void {
  const current = m.get("with", true);
  if (!isMap(current)) {
    if (Object.keys(value).length) m.set("with", doc.createNode(value));
    return;
  }
  for (const pair of [...current.items]) {
    const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    if (!(k in value) || value[k] === undefined) current.delete(k);
  }
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const old = current.get(k, true);
    if (JSON.stringify(plain(old)) === JSON.stringify(v)) continue;
    if (isScalar(old) && (v === null || typeof v !== "object")) old.value = v;
    else current.set(k, doc.createNode(v));
  }
}

export function renameStep(doc: WorkflowDoc, id: string, newId: string): void {
  if (id === newId) return;
  const g = graphOf(doc);
  if (g.steps.some((s) => s.id === newId)) throw new Error(`a step ${newId} exists already`);
  const idx = g.steps.findIndex((s) => s.id === id);
  const next = g.steps[idx + 1];
  if (next && !next.explicitNeeds) materialise(doc, [next.id]);
  for (const s of graphOf(doc).steps) {
    if (s.explicitNeeds && s.needs.includes(id)) setNeeds(doc, s.id, s.needs.map((n) => (n === id ? newId : n)));
  }
  const m = stepMap(doc, id);
  const node = m.get("id", true);
  if (isScalar(node)) node.value = newId;
  else m.set("id", newId);
}

export const BLANK = (name: string): string => `apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: ${name}
spec:
  description: ""
  steps: []
`;

function renderStep(node: YAMLMap): string {
  const copy = node.clone() as YAMLMap;
  copy.commentBefore = undefined;
  copy.spaceBefore = false;
  return new Document(copy).toString(TO_STRING);
}

function lineStart(text: string, at: number): number {
  return text.lastIndexOf("\n", at - 1) + 1;
}

function indentRest(block: string, col: number): string {
  const pad = " ".repeat(col);
  return block
    .split("\n")
    .map((line, i) => (i === 0 || line === "" ? line : pad + line))
    .join("\n");
}

/** The text with only the changed steps rewritten, or null when the change is not step-local. */
function splice(
  text: string,
  doc: WorkflowDoc,
  originals: YAMLMap[],
  changed: Map<YAMLMap, string>,
  outside: string,
): string | null {
  const seq = stepsSeq(doc);
  if (!seq || seq.flow || originals.length === 0) return null;
  if (outsideSteps(doc) !== outside) return null;
  const now = seq.items.filter((i): i is YAMLMap => isMap(i));
  const before = new Set(originals);
  const keptSet = new Set(now.filter((n) => before.has(n)));
  const kept = [...keptSet];
  // original steps must keep their order and new ones come after them
  const order = originals.filter((n) => keptSet.has(n));
  if (order.some((n, i) => kept[i] !== n)) return null;
  const firstNew = now.findIndex((n) => !before.has(n));
  if (firstNew >= 0 && now.slice(firstNew).some((n) => before.has(n))) return null;
  for (const n of originals) if (!n.range) return null;
  const edits: { from: number; to: number; text: string }[] = [];
  for (const n of originals) {
    const [start, , end] = n.range!;
    const col = start - lineStart(text, start);
    if (!keptSet.has(n)) {
      edits.push({ from: lineStart(text, start), to: end, text: "" });
      continue;
    }
    if (!changed.has(n)) continue;
    const rendered = renderStep(n);
    if (rendered === changed.get(n)) continue;
    let out = indentRest(rendered, col);
    if (!text.slice(start, end).endsWith("\n")) out = out.replace(/\n$/, "");
    edits.push({ from: start, to: end, text: out });
  }
  const added = firstNew >= 0 ? now.slice(firstNew) : [];
  if (added.length) {
    const last = originals[originals.length - 1];
    const [start, , end] = last.range!;
    const col = start - lineStart(text, start);
    const dash = " ".repeat(Math.max(0, col - 2));
    let at = end;
    let prefix = "";
    if (!text.slice(start, end).endsWith("\n")) prefix = "\n";
    const block = added.map((n) => `${dash}- ${indentRest(renderStep(n), col)}`).join("");
    if (at > text.length) at = text.length;
    edits.push({ from: at, to: at, text: prefix + block });
  }
  edits.sort((a, b) => b.from - a.from);
  let out = text;
  for (const e of edits) out = out.slice(0, e.from) + e.text + out.slice(e.to);
  return out;
}

/** The document printed without its steps (swapped out for the print, then back). */
function outsideSteps(doc: WorkflowDoc): string {
  const spec = doc.getIn(["spec"], true);
  const pair = isMap(spec) ? spec.items.find((p) => isScalar(p.key) && p.key.value === "steps") : undefined;
  if (!pair) return doc.toString(TO_STRING);
  const value = pair.value;
  pair.value = new YAMLSeq();
  try {
    return doc.toString(TO_STRING);
  } finally {
    pair.value = value;
  }
}

/**
 * Applies one edit to the text. When the edit only touches steps, only the changed steps are
 * rewritten: every byte outside them (comments, spacing, quoting) stays as it was.
 */
export function edit(text: string, change: (doc: WorkflowDoc) => void): string {
  const doc = parse(text);
  if (doc.errors.length) throw new Error(doc.errors[0].message);
  const originals = stepMaps(doc);
  const outside = outsideSteps(doc);
  const changed = new Map<YAMLMap, string>();
  touched = changed;
  try {
    change(doc);
  } finally {
    touched = null;
  }
  const spliced = splice(text, doc, originals, changed, outside);
  if (spliced !== null) return spliced;
  // `steps: []` becomes a block sequence once it has an item
  const seq = stepsSeq(doc);
  if (seq && seq.flow && seq.items.length) seq.flow = false;
  return print(doc);
}
