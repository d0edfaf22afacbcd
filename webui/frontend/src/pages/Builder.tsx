import { useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useCallback, useMemo, useRef, useState } from "react";
import { api, ApiError, get, nsPath, type ConnectorInfo, type Problem, type WorkflowDetail } from "../api";
import { Canvas } from "../components/Canvas";
import { elkLayout } from "../components/layout";
import * as wd from "../model/workflowDoc";
import { splitImport, type ImportedIntegration } from "../importer/stream";
import { createMissingIntegrations } from "../integrations/missing";
import { navigate } from "../router";
import { loadTemplates, TemplateGallery } from "../templates/Gallery";
import { AssistantPanel } from "./Assistant";
import { RunDialog } from "./RunDialog";

const EMPTY: wd.Graph = { name: "", steps: [], edges: [], inputs: {} };
const YamlEditor = lazy(() => import("../components/YamlEditor"));
const StepForm = lazy(() => import("../components/StepForm"));

/** Which step a problem names: `steps[2]`, `/spec/steps/2`, or `step "id"` in the message. */
export function problemStep(p: Problem, g: wd.Graph): string | null {
  if (p.step && g.steps.some((s) => s.id === p.step)) return p.step;
  const path = p.path ?? "";
  const m = /steps(?:\[|\/|\.)(\d+)/.exec(path);
  if (m && g.steps[Number(m[1])]) return g.steps[Number(m[1])].id;
  for (const s of g.steps) {
    if (path.includes(`steps.${s.id}`) || new RegExp(`step ['"“]?${s.id}\\b`).test(p.message)) return s.id;
  }
  return null;
}

/** What a template brings besides its Workflow: created (Integrations) or shown (the rest)
 * when the new Workflow is saved. */
interface FromTemplate {
  title: string;
  integrations: ImportedIntegration[];
  schedules: string[];
  otherWorkflows: string[];
}

export default function BuilderPage(props: { namespace: string; name: string | null; template?: string | null }) {
  const { namespace, name } = props;
  const template = props.template ?? null;
  const templates = useQuery({ queryKey: ["templates"], queryFn: loadTemplates, staleTime: Infinity, enabled: template !== null });
  const loaded = useQuery({
    queryKey: ["workflow", namespace, name],
    queryFn: async () => {
      const r = await api<WorkflowDetail>(`${nsPath(namespace)}/workflows/${encodeURIComponent(name!)}`);
      return { ...r.data, etag: r.headers.get("ETag") };
    },
    enabled: name !== null,
    staleTime: Infinity,
  });
  if ((name !== null && loaded.isPending) || (template !== null && templates.isPending)) return <p className="pad">Loading…</p>;
  if (loaded.isError) return <p className="pad" role="alert">{loaded.error.message}</p>;
  if (templates.isError) return <p className="pad" role="alert">{templates.error.message}</p>;
  let initialText = loaded.data?.yaml ?? wd.BLANK("my-workflow");
  let from: FromTemplate | null = null;
  if (template !== null) {
    const t = templates.data?.find((x) => x.name === template);
    const parts = t ? splitImport(t.yaml) : null;
    if (!t || !parts?.workflow)
      return (
        <p className="pad" role="alert">
          No template {template}.
        </p>
      );
    initialText = parts.workflow;
    from = { title: t.title, integrations: parts.integrations, schedules: parts.schedules, otherWorkflows: parts.otherWorkflows };
  }
  return (
    <Builder
      namespace={namespace}
      name={name}
      initialText={initialText}
      initialVersion={loaded.data?.etag ?? loaded.data?.resourceVersion ?? null}
      from={from}
    />
  );
}

function Builder(props: {
  namespace: string;
  name: string | null;
  initialText: string;
  initialVersion: string | null;
  from: FromTemplate | null;
}) {
  const { namespace, name } = props;
  const qc = useQueryClient();
  const [text, setText] = useState(props.initialText);
  const [version, setVersion] = useState(props.initialVersion);
  const [tab, setTab] = useState<"canvas" | "yaml">("canvas");
  const [selected, setSelected] = useState<string | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [message, setMessage] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const [saving, setSaving] = useState(false);
  const [running, setRunning] = useState(false);
  const [assistant, setAssistant] = useState(false);
  const [dirty, setDirty] = useState(false);

  const connectors = useQuery({ queryKey: ["connectors"], queryFn: () => get<ConnectorInfo[]>("/connectors"), staleTime: Infinity });

  // The last text that parsed: the canvas keeps showing it while the YAML has a syntax error.
  const parsed = useMemo(() => {
    const doc = wd.parse(text);
    const errors = wd.parseErrors(doc);
    return errors.length ? { errors, graph: null } : { errors, graph: wd.graphOf(doc) };
  }, [text]);
  const lastGood = useRef<wd.Graph>(EMPTY);
  if (parsed.graph) lastGood.current = parsed.graph;
  const graph = parsed.graph ?? lastGood.current;

  const problemsByStep = useMemo(() => {
    const m = new Map<string, number>();
    for (const p of problems) {
      const s = problemStep(p, graph);
      if (s) m.set(s, (m.get(s) ?? 0) + 1);
    }
    return m;
  }, [problems, graph]);

  const change = useCallback((f: (d: wd.WorkflowDoc) => void) => {
    setText((t) => {
      try {
        return wd.edit(t, f);
      } catch (e) {
        setMessage({ kind: "error", text: (e as Error).message });
        return t;
      }
    });
    setDirty(true);
  }, []);

  const actions = useMemo(() => {
    const m = new Map<string, { connector: ConnectorInfo; action: ConnectorInfo["actions"][number] }>();
    for (const c of connectors.data ?? []) for (const a of c.actions) m.set(`${c.type}.${a.name}`, { connector: c, action: a });
    return m;
  }, [connectors.data]);

  const addAction = useCallback(
    (uses: string, position?: { x: number; y: number }) => {
      let id = "";
      change((d) => {
        id = wd.freshId(d, uses);
        const g = wd.graphOf(d);
        const pos = position ?? { x: 40 + (g.steps.length % 4) * 260, y: 40 + Math.floor(g.steps.length / 4) * 120 };
        wd.addStep(d, { id, uses, position: pos });
      });
      setTimeout(() => setSelected(id), 0);
    },
    [change],
  );

  // `body` is what to save: the editor's text, or a proposal the assistant's Accept hands over
  // (saved at once, before the state holding it has re-rendered).
  const save = async (body: string = text) => {
    setSaving(true);
    setMessage(null);
    try {
      if (name === null) {
        if (props.from) await createMissingIntegrations(namespace, props.from.integrations);
        const r = await api<WorkflowDetail>(`${nsPath(namespace)}/workflows`, { method: "POST", body: { yaml: body } });
        setProblems([]);
        setDirty(false);
        await qc.invalidateQueries({ queryKey: ["workflows"] });
        navigate("workflows", namespace, r.data.name ?? graph.name);
        return;
      }
      const headers: Record<string, string> = {};
      if (version) headers["If-Match"] = version;
      const r = await api<WorkflowDetail>(`${nsPath(namespace)}/workflows/${encodeURIComponent(name)}`, {
        method: "PUT",
        body: { yaml: body },
        headers,
      });
      setVersion(r.headers.get("ETag") ?? r.data?.resourceVersion ?? version);
      setProblems([]);
      setDirty(false);
      setMessage({ kind: "ok", text: "Saved." });
      qc.invalidateQueries({ queryKey: ["workflows"] });
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        setProblems(e.problems.length ? e.problems : [{ message: e.detail || e.title }]);
        setMessage({ kind: "error", text: "Not saved: the Workflow has problems." });
      } else if (e instanceof ApiError && e.status === 409) {
        setMessage({
          kind: "error",
          text: "Not saved: someone changed this Workflow since you opened it. Copy your YAML, reload the page and apply your change again.",
        });
      } else {
        setMessage({ kind: "error", text: (e as Error).message });
      }
    } finally {
      setSaving(false);
    }
  };

  const autoLayout = async () => {
    const pos = await elkLayout(graph);
    change((d) => {
      for (const [id, p] of pos) wd.setPosition(d, id, p);
    });
  };

  const step = graph.steps.find((s) => s.id === selected) ?? null;
  const stepProblems = step ? problems.filter((p) => problemStep(p, graph) === step.id) : [];
  const unplaced = problems.filter((p) => !problemStep(p, graph));

  return (
    <div className="builder">
      <div className="toolbar row">
        <label>
          Name{" "}
          <input
            aria-label="Workflow name"
            value={graph.name}
            disabled={name !== null}
            onChange={(e) => {
              const v = e.target.value;
              setText((t) => {
                try {
                  const d = wd.parse(t);
                  d.setIn(["metadata", "name"], v);
                  return wd.print(d);
                } catch {
                  return t;
                }
              });
            }}
          />
        </label>
        <div role="tablist" aria-label="View" className="tabs">
          <button role="tab" aria-selected={tab === "canvas"} onClick={() => setTab("canvas")}>
            Canvas
          </button>
          <button role="tab" aria-selected={tab === "yaml"} onClick={() => setTab("yaml")}>
            YAML
          </button>
        </div>
        <button onClick={autoLayout} disabled={!graph.steps.length}>
          Auto layout
        </button>
        <button onClick={() => setAssistant((a) => !a)} aria-expanded={assistant}>
          Assistant
        </button>
        <span className="spacer" />
        {dirty && <span className="muted">unsaved changes</span>}
        <button className="primary" onClick={() => save()} disabled={saving || parsed.errors.length > 0}>
          {saving ? "Saving…" : "Save"}
        </button>
        <button onClick={() => setRunning(true)} disabled={name === null || dirty}>
          Run
        </button>
      </div>
      {name === null && !props.from && <TemplateGallery />}
      {props.from && <TemplateNote from={props.from} />}
      {message && (
        <div className={`banner ${message.kind}`} role={message.kind === "error" ? "alert" : "status"}>
          {message.text}
        </div>
      )}
      {parsed.errors.length > 0 && (
        <div className="banner error" role="alert">
          YAML: {parsed.errors[0]}
        </div>
      )}
      {unplaced.length > 0 && (
        <ul className="problems" aria-label="Problems">
          {unplaced.map((p, i) => (
            <li key={i}>
              {p.path && <code>{p.path}</code>} {p.line ? `(line ${p.line})` : ""} {p.message}
            </li>
          ))}
        </ul>
      )}
      <div className="builder-body">
        <aside className="palette" aria-label="Connectors">
          <Palette connectors={connectors.data ?? []} onAdd={addAction} />
        </aside>
        <section className="stage">
          {tab === "canvas" ? (
            <Canvas
              graph={graph}
              editable
              problems={problemsByStep}
              selected={selected}
              onSelect={setSelected}
              onConnect={(s, t) => change((d) => void wd.connect(d, s, t))}
              onDisconnect={(s, t) => change((d) => wd.disconnect(d, s, t))}
              onDelete={(ids) => {
                change((d) => ids.forEach((id) => wd.removeStep(d, id)));
                setSelected(null);
              }}
              onMove={(id, p) => change((d) => wd.setPosition(d, id, p))}
              onDropAction={(uses, p) => addAction(uses, p)}
            />
          ) : (
            <Suspense fallback={<p className="pad">Loading editor…</p>}>
              <YamlEditor
                value={text}
                onChange={(v) => {
                  setText(v);
                  setDirty(true);
                }}
              />
            </Suspense>
          )}
        </section>
        {tab === "canvas" && step && (
          <aside className="panel" aria-label={`Step ${step.id}`}>
            <StepPanel
              key={step.id}
              step={step}
              graph={graph}
              info={actions.get(step.uses)}
              problems={stepProblems}
              change={change}
              onRenamed={setSelected}
            />
          </aside>
        )}
        {assistant && (
          <aside className="panel wide" aria-label="Assistant">
            <AssistantPanel
              namespace={namespace}
              yaml={text}
              onAccept={(y) => {
                setText(y);
                setDirty(true);
                setAssistant(false);
                void save(y);
              }}
              onClose={() => setAssistant(false)}
            />
          </aside>
        )}
      </div>
      {running && name !== null && (
        <RunDialog namespace={namespace} workflow={name} inputs={graph.inputs} onClose={() => setRunning(false)} />
      )}
    </div>
  );
}

function TemplateNote({ from }: { from: FromTemplate }) {
  return (
    <div className="banner info" aria-label="Template">
      From the template <strong>{from.title}</strong>.
      {from.integrations.length > 0 && (
        <>
          {" "}
          Saving also creates its Integrations {from.integrations.map((i) => `${i.name} (${String(i.spec.type)})`).join(", ")} where
          they do not exist, without secrets: set their settings and secrets on the Integrations page.
        </>
      )}
      {from.schedules.length + from.otherWorkflows.length > 0 && (
        <details>
          <summary>Also in the template, to add by hand ({from.schedules.length + from.otherWorkflows.length})</summary>
          <pre className="code">{[...from.otherWorkflows, ...from.schedules].join("---\n")}</pre>
        </details>
      )}
    </div>
  );
}

function Palette({ connectors, onAdd }: { connectors: ConnectorInfo[]; onAdd: (uses: string) => void }) {
  const [q, setQ] = useState("");
  const needle = q.trim().toLowerCase();
  return (
    <>
      <input type="search" placeholder="Search actions" aria-label="Search actions" value={q} onChange={(e) => setQ(e.target.value)} />
      {connectors.map((c) => {
        const acts = c.actions.filter(
          (a) => !needle || `${c.type}.${a.name} ${a.description ?? ""}`.toLowerCase().includes(needle),
        );
        if (!acts.length) return null;
        return (
          <div key={c.type} className="palette-group">
            <h3>{c.type}</h3>
            {acts.map((a) => {
              const uses = `${c.type}.${a.name}`;
              return (
                <button
                  key={uses}
                  className="palette-item"
                  draggable
                  title={a.description ?? uses}
                  aria-label={`Add ${uses}`}
                  onDragStart={(e) => e.dataTransfer.setData("application/x-autoflow-action", uses)}
                  onClick={() => onAdd(uses)}
                >
                  {uses}
                </button>
              );
            })}
          </div>
        );
      })}
    </>
  );
}

function StepPanel(props: {
  step: wd.StepInfo;
  graph: wd.Graph;
  info?: { connector: ConnectorInfo; action: ConnectorInfo["actions"][number] };
  problems: Problem[];
  change: (f: (d: wd.WorkflowDoc) => void) => void;
  onRenamed: (id: string) => void;
}) {
  const { step, info, change } = props;
  const [id, setId] = useState(step.id);
  const field = (key: string, v: unknown) => change((d) => wd.setStepField(d, step.id, key, v));
  const refs = [
    ...Object.keys(props.graph.inputs).map((k) => `inputs.${k}`),
    ...props.graph.steps.filter((s) => s.id !== step.id).map((s) => `steps.${s.id}.output`),
  ];
  return (
    <div className="step-panel">
      <h2>
        Step <code>{step.id}</code>
      </h2>
      <p className="muted">{step.uses}</p>
      {info?.action.description && <p className="small">{info.action.description}</p>}
      {props.problems.length > 0 && (
        <ul className="problems" aria-label="Step problems">
          {props.problems.map((p, i) => (
            <li key={i}>
              {p.path && <code>{p.path}</code>} {p.message}
            </li>
          ))}
        </ul>
      )}
      <label>
        Id{" "}
        <input
          value={id}
          onChange={(e) => setId(e.target.value)}
          onBlur={() => {
            if (id && id !== step.id) {
              change((d) => wd.renameStep(d, step.id, id));
              props.onRenamed(id);
            }
          }}
        />
      </label>
      <h3>Parameters</h3>
      {info?.action.inputSchema ? (
        <Suspense fallback={<p>Loading form…</p>}>
          <StepForm
            schema={info.action.inputSchema}
            value={step.with}
            idPrefix={`with-${step.id}`}
            onChange={(v) => field("with", v)}
          />
        </Suspense>
      ) : (
        <p className="muted">No schema for {step.uses}: edit its parameters in the YAML tab.</p>
      )}
      <datalist id="expr-refs">
        {refs.map((r) => (
          <option key={r} value={`\${ ${r} }`} />
        ))}
      </datalist>
      <h3>Control</h3>
      <label>
        Run only if{" "}
        <input list="expr-refs" defaultValue={typeof step.if === "string" ? step.if : step.if === undefined ? "" : String(step.if)} onBlur={(e) => field("if", e.target.value)} placeholder="expression" />
      </label>
      <label>
        For each{" "}
        <input list="expr-refs" defaultValue={typeof step.foreach === "string" ? step.foreach : ""} onBlur={(e) => field("foreach", e.target.value)} placeholder="steps.x.output" />
      </label>
      <label>
        Timeout{" "}
        <input defaultValue={typeof step.timeout === "string" ? step.timeout : ""} onBlur={(e) => field("timeout", e.target.value)} placeholder="30s" />
      </label>
      <label>
        Retry attempts{" "}
        <input
          type="number"
          min={1}
          max={100}
          defaultValue={(step.retry as { maxAttempts?: number } | undefined)?.maxAttempts ?? ""}
          onBlur={(e) => {
            const n = Number(e.target.value);
            const rest = (step.retry ?? {}) as Record<string, unknown>;
            field("retry", e.target.value && n >= 1 ? { ...rest, maxAttempts: n } : undefined);
          }}
          placeholder="no retries"
        />
      </label>
      <label className="check">
        <input type="checkbox" checked={!!step.continueOnError} onChange={(e) => field("continueOnError", e.target.checked || undefined)} /> Continue on error
      </label>
      <p>
        Needs: {step.needs.length ? step.needs.join(", ") : "nothing"} {step.explicitNeeds ? "" : "(the step before)"}
      </p>
      <button className="danger" onClick={() => change((d) => wd.removeStep(d, step.id))}>
        Delete step
      </button>
    </div>
  );
}
