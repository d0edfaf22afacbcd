import { useState } from "react";
import { api, nsPath } from "../api";
import type { Graph } from "../model/workflowDoc";
import { navigate } from "../router";

function coerce(type: string | undefined, raw: string): unknown {
  if (type === "string" || type === undefined) return raw;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

export function RunDialog(props: { namespace: string; workflow: string; inputs: Graph["inputs"]; onClose: () => void }) {
  const names = Object.keys(props.inputs ?? {});
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      names.map((n) => {
        const d = props.inputs[n]?.default;
        return [n, d === undefined ? "" : typeof d === "string" ? d : JSON.stringify(d)];
      }),
    ),
  );
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      const inputs: Record<string, unknown> = {};
      for (const n of names) if (values[n] !== "") inputs[n] = coerce(props.inputs[n]?.type, values[n]);
      const r = await api<{ runId: string }>(`${nsPath(props.namespace)}/workflows/${encodeURIComponent(props.workflow)}/runs`, {
        method: "POST",
        body: { inputs },
      });
      navigate("runs", props.namespace, r.data.runId);
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };
  return (
    <div className="modal-backdrop">
      <div className="modal" role="dialog" aria-modal="true" aria-label={`Run ${props.workflow}`}>
        <h2>Run {props.workflow}</h2>
        {names.length === 0 && <p className="muted">This Workflow takes no inputs.</p>}
        {names.map((n) => (
          <label key={n}>
            {n} <span className="muted small">{props.inputs[n]?.type ?? ""}</span>
            <input value={values[n]} onChange={(e) => setValues({ ...values, [n]: e.target.value })} />
            {props.inputs[n]?.description && <span className="muted small">{props.inputs[n].description}</span>}
          </label>
        ))}
        {error && <p role="alert" className="error-text">{error}</p>}
        <div className="row">
          <button className="primary" onClick={start} disabled={busy}>
            Start run
          </button>
          <button onClick={props.onClose}>Cancel</button>
        </div>
      </div>
    </div>
  );
}
