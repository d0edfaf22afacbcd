import { useState } from "react";
import { api, ApiError, type Problem } from "../api";
import { diffLines } from "./diffLines";

export interface Draft {
  yaml: string;
  diff: string;
  valid: boolean;
  rounds?: number;
  problems?: Problem[];
  missingIntegrations?: { name: string; type: string; steps: string[] }[];
}

/** A sentence → a proposed Workflow shown as a diff against the current one. Accept hands it
 * to the builder, which saves it; Reject drops it. Nothing is saved without Accept. */
export function AssistantPanel(props: {
  namespace: string;
  yaml: string;
  onAccept: (yaml: string) => void;
  onClose: () => void;
}) {
  const [prompt, setPrompt] = useState("");
  const [draft, setDraft] = useState<Draft | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const ask = async () => {
    setBusy(true);
    setError(null);
    setNote(null);
    setDraft(null);
    try {
      const r = await api<Draft>("/assistant/draft", { method: "POST", body: { prompt, yaml: props.yaml, namespace: props.namespace } });
      setDraft(r.data);
    } catch (e) {
      setError(e instanceof ApiError && e.status === 404 ? "The assistant is not available on this server." : (e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const reject = () => {
    setDraft(null);
    setNote("Proposal rejected: the Workflow is unchanged.");
  };
  return (
    <div className="assistant">
      <h2>Assistant</h2>
      <label>
        Describe the automation
        <textarea rows={3} value={prompt} onChange={(e) => setPrompt(e.target.value)} placeholder="When an order over 100 comes in, post it to #sales" />
      </label>
      <div className="row">
        <button className="primary" onClick={ask} disabled={busy || !prompt.trim()}>
          {busy ? "Drafting…" : "Draft"}
        </button>
        <button onClick={props.onClose}>Close</button>
      </div>
      {error && (
        <p role="alert" className="error-text">
          {error}
        </p>
      )}
      {note && <p className="muted">{note}</p>}
      {draft && (
        <>
          <h3>Proposed change</h3>
          <pre className="diff" aria-label="Proposed diff">
            {diffLines(draft.diff, draft.yaml).map((l, i) => (
              <span key={i} className={l.kind}>
                {l.text + "\n"}
              </span>
            ))}
          </pre>
          {!draft.valid && <p className="error-text">The assistant could not make this Workflow valid; these problems remain:</p>}
          {draft.problems && draft.problems.length > 0 && (
            <ul className="problems" aria-label="Proposal problems">
              {draft.problems.map((p, i) => (
                <li key={i}>{p.message}</li>
              ))}
            </ul>
          )}
          {draft.missingIntegrations && draft.missingIntegrations.length > 0 && (
            <p>
              Needs Integrations that do not exist yet:{" "}
              {draft.missingIntegrations.map((m) => `${m.name} (${m.type})`).join(", ")}
            </p>
          )}
          <div className="row">
            <button className="primary" onClick={() => props.onAccept(draft.yaml)} disabled={!draft.valid}>
              Accept and save
            </button>
            <button onClick={reject}>Reject</button>
          </div>
          <p className="muted small">Nothing is saved until you accept.</p>
        </>
      )}
    </div>
  );
}
