import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { api, get, nsPath, type RunDetail, type RunEvent, type WorkflowDetail } from "../api";
import { Canvas } from "../components/Canvas";
import { StatusStore } from "../components/status";
import { duration, Phase } from "../format";
import * as wd from "../model/workflowDoc";
import { href, navigate } from "../router";

const ENDED = new Set(["Succeeded", "Failed", "Cancelled", "Skipped"]);

export function RunPage({ namespace, runId }: { namespace: string; runId: string }) {
  const qc = useQueryClient();
  const base = `${nsPath(namespace)}/runs/${encodeURIComponent(runId)}`;
  const run = useQuery({ queryKey: ["run", namespace, runId], queryFn: () => get<RunDetail>(base) });
  const workflow = run.data?.workflow;
  const wf = useQuery({
    queryKey: ["workflow", namespace, workflow],
    queryFn: () => get<WorkflowDetail>(`${nsPath(namespace)}/workflows/${encodeURIComponent(workflow!)}`),
    enabled: !!workflow,
  });
  const graph = useMemo(() => (wf.data ? wd.graphOf(wd.parse(wf.data.yaml)) : null), [wf.data]);
  const status = useMemo(() => new StatusStore(), []);
  const [runPhase, setRunPhase] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  // recorded phases first, then the live ones
  useEffect(() => {
    for (const s of run.data?.steps ?? []) status.set(s.step, s.phase);
  }, [run.data, status]);

  useEffect(() => {
    const es = new EventSource(`/api${base}/events`, { withCredentials: true });
    const onEvent = (m: MessageEvent) => {
      let e: RunEvent;
      try {
        e = JSON.parse(m.data);
      } catch {
        return;
      }
      if (e.kind === "step" && e.step) status.set(e.step, e.phase);
      if (e.kind === "run" || e.kind === "end") setRunPhase(e.phase);
      if (e.kind === "end" || (e.kind === "step" && ENDED.has(e.phase))) {
        qc.invalidateQueries({ queryKey: ["run", namespace, runId] });
      }
      if (e.kind === "end") es.close();
    };
    es.onmessage = onEvent;
    for (const k of ["run", "step", "end"]) es.addEventListener(k, onEvent as EventListener);
    return () => es.close();
  }, [base, namespace, runId, qc, status]);

  if (run.isPending) return <p className="pad">Loading…</p>;
  if (run.isError) return <p className="pad" role="alert">{run.error.message}</p>;
  const r = run.data;
  const phase = runPhase && !ENDED.has(r.phase) ? runPhase : r.phase;
  const act = async (what: "cancel" | "rerun" | "retry") => {
    setMessage(null);
    try {
      const res = await api<{ runId?: string }>(`${base}/${what}`, { method: "POST" });
      if (res.data?.runId && res.data.runId !== runId) navigate("runs", namespace, res.data.runId);
      else qc.invalidateQueries({ queryKey: ["run", namespace, runId] });
    } catch (e) {
      setMessage((e as Error).message);
    }
  };
  const focus = r.steps.find((s) => s.step === selected) ?? r.steps.find((s) => s.error) ?? null;
  return (
    <section className="run-page">
      <div className="toolbar row">
        <h1>
          Run <code>{r.runId}</code>
        </h1>
        <a href={href("workflows", namespace, r.workflow)}>{r.workflow}</a>
        <span data-testid="run-phase">
          <Phase phase={phase} />
        </span>
        <span className="muted">{duration(r.durationMs)}</span>
        <span className="spacer" />
        <button onClick={() => act("cancel")} disabled={ENDED.has(phase)}>
          Cancel
        </button>
        <button onClick={() => act("rerun")}>Rerun</button>
        <button onClick={() => act("retry")} disabled={phase !== "Failed"}>
          Retry from failed step
        </button>
      </div>
      {message && <div className="banner error" role="alert">{message}</div>}
      {r.error && (
        <div className="banner error" role="alert">
          {r.error}
        </div>
      )}
      <div className="run-body">
        <div className="stage">{graph && <Canvas graph={graph} editable={false} status={status} selected={selected} onSelect={setSelected} />}</div>
        <aside className="panel" aria-label="Steps">
          <table className="table small" aria-label="Step results">
            <thead>
              <tr>
                <th>Step</th>
                <th>Phase</th>
                <th>Attempts</th>
                <th>Duration</th>
              </tr>
            </thead>
            <tbody>
              {r.steps.map((s) => (
                <tr key={s.step} onClick={() => setSelected(s.step)} className={s.step === focus?.step ? "current" : ""}>
                  <td>
                    <button className="link" onClick={() => setSelected(s.step)}>
                      {s.step}
                    </button>
                  </td>
                  <td>
                    <Phase phase={s.phase} />
                  </td>
                  <td>{s.attempts ?? ""}</td>
                  <td>{duration(s.durationMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {focus && (
            <div className="step-detail" data-testid="step-detail">
              <h2>{focus.step}</h2>
              {focus.error && (
                <p className="error-text" data-testid="step-error">
                  {focus.error}
                </p>
              )}
              {focus.message && <p>{focus.message}</p>}
              <h3>Output</h3>
              <pre className="code">{JSON.stringify(focus.output ?? null, null, 2)}</pre>
            </div>
          )}
          <h3>Inputs</h3>
          <pre className="code">{JSON.stringify(r.inputs ?? {}, null, 2)}</pre>
          {r.outputs && (
            <>
              <h3>Outputs</h3>
              <pre className="code">{JSON.stringify(r.outputs, null, 2)}</pre>
            </>
          )}
        </aside>
      </div>
    </section>
  );
}
