import { useState } from "react";
import { api, ApiError, type Problem } from "../api";

interface Draft {
  yaml: string;
  diff: string;
  rounds?: number;
  problems?: Problem[];
  missingIntegrations?: string[];
}

/** A sentence → a proposed Workflow shown as a diff; applying puts it into the editor, unsaved. */
export function AssistantPanel(props: { namespace: string; yaml: string; onApply: (y: string) => void; onClose: () => void }) {
  const [prompt, setPrompt] = useState("");
  const [draft, setDraft] = useState<Draft | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const ask = async () => {
    setBusy(true);
    setError(null);
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
      {error && <p role="alert" className="error-text">{error}</p>}
      {draft && (
        <>
          <h3>Proposed change</h3>
          <pre className="diff" aria-label="Proposed diff">
            {(draft.diff || draft.yaml).split("\n").map((l, i) => (
              <span key={i} className={l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : ""}>
                {l + "\n"}
              </span>
            ))}
          </pre>
          {draft.problems && draft.problems.length > 0 && (
            <ul className="problems">
              {draft.problems.map((p, i) => (
                <li key={i}>{p.message}</li>
              ))}
            </ul>
          )}
          {draft.missingIntegrations && draft.missingIntegrations.length > 0 && (
            <p>Needs integrations that do not exist yet: {draft.missingIntegrations.join(", ")}</p>
          )}
          <div className="row">
            <button className="primary" onClick={() => props.onApply(draft.yaml)}>
              Apply to editor
            </button>
            <button onClick={() => setDraft(null)}>Reject</button>
          </div>
          <p className="muted small">Applying changes the editor only; nothing is saved until you press Save.</p>
        </>
      )}
    </div>
  );
}
