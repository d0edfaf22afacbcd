import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, ApiError, nsPath, type Problem } from "../api";
import { splitImport } from "../importer/stream";
import { createMissingIntegrations } from "../integrations/missing";
import { href } from "../router";

interface NodeReport {
  node: string;
  type: string;
  status: "converted" | "approximated" | "not converted" | string;
  step?: string | null;
  notes?: string[];
  todo?: string;
}
interface Report {
  workflow?: string;
  valid: boolean;
  counts?: Record<string, number>;
  nodes?: NodeReport[];
  notes?: string[];
  integrations?: string[];
  schedules?: string[];
  problems?: (Problem | string)[];
}
interface Converted {
  yaml: string;
  valid: boolean;
  report: Report;
}
interface Saved {
  name: string;
  integrations: string[];
  kept: string[];
  schedules: string[];
}

/** Paste or upload an n8n export, read the report, save the Workflow (and the Integration stubs
 * it names) into the namespace. */
export default function ImportPage({ namespace }: { namespace: string }) {
  const qc = useQueryClient();
  const [json, setJson] = useState("");
  const [result, setResult] = useState<Converted | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [saved, setSaved] = useState<Saved | null>(null);
  const [busy, setBusy] = useState(false);

  const upload = async (file: File | undefined) => {
    if (!file) return;
    setJson(await file.text());
    setResult(null);
    setSaved(null);
  };
  const convert = async () => {
    setError(null);
    setResult(null);
    setSaved(null);
    setProblems([]);
    setBusy(true);
    try {
      // the text as it is: the API says what is wrong with something that is not an export
      const r = await api<Converted>("/import/n8n", { method: "POST", body: { json } });
      setResult(r.data);
    } catch (e) {
      setError(e instanceof ApiError && e.status === 404 ? "Import is not available on this server." : (e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const save = async () => {
    if (!result) return;
    setError(null);
    setProblems([]);
    const parts = splitImport(result.yaml);
    if (parts.otherWorkflows.length) parts.errors.push("it holds several Workflows: import one n8n workflow at a time");
    if (!parts.workflow || parts.errors.length) {
      setError(`Cannot save this import: ${parts.errors.join("; ") || "it holds no Workflow"}`);
      return;
    }
    setBusy(true);
    try {
      const { made, kept } = await createMissingIntegrations(namespace, parts.integrations);
      const r = await api<{ name: string }>(`${nsPath(namespace)}/workflows`, { method: "POST", body: { yaml: parts.workflow } });
      setSaved({
        name: r.data.name ?? parts.workflowName ?? "",
        integrations: made,
        kept,
        schedules: parts.schedules,
      });
      await qc.invalidateQueries({ queryKey: ["workflows"] });
      await qc.invalidateQueries({ queryKey: ["integrations", namespace] });
    } catch (e) {
      if (e instanceof ApiError && e.problems.length) setProblems(e.problems);
      setError(`Not saved: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  const report = result?.report;
  return (
    <section className="pad import">
      <h1>Import an n8n workflow</h1>
      <p className="muted">
        Export it in n8n with <em>Download</em> (or <code>n8n export:workflow</code>), then upload the file or paste its
        JSON. Nothing is saved until you press Save.
      </p>
      <label>
        Upload an n8n export <input type="file" accept=".json,application/json" onChange={(e) => void upload(e.target.files?.[0])} />
      </label>
      <label>
        n8n workflow JSON
        <textarea rows={10} value={json} onChange={(e) => setJson(e.target.value)} />
      </label>
      <button className="primary" onClick={convert} disabled={busy || !json.trim()}>
        Convert
      </button>
      {error && (
        <p role="alert" className="error-text">
          {error}
        </p>
      )}
      {problems.length > 0 && (
        <ul className="problems" aria-label="Problems">
          {problems.map((p, i) => (
            <li key={i}>
              {p.path && <code>{p.path}</code>} {p.message}
            </li>
          ))}
        </ul>
      )}
      {result && report && (
        <>
          <h2>Report</h2>
          <p data-testid="import-summary">
            {report.workflow && (
              <>
                <strong>{report.workflow}</strong>:{" "}
              </>
            )}
            {Object.entries(report.counts ?? {})
              .map(([k, v]) => `${v} ${k}`)
              .join(", ")}
            {" · "}
            {report.valid ? "the result validates" : "the result does not validate yet"}
          </p>
          <table className="table" aria-label="Import report">
            <thead>
              <tr>
                <th>n8n node</th>
                <th>Type</th>
                <th>Result</th>
                <th>Step</th>
                <th>Notes</th>
              </tr>
            </thead>
            <tbody>
              {(report.nodes ?? []).map((n, i) => (
                <tr key={i} data-status={n.status}>
                  <td>{n.node}</td>
                  <td>
                    <code className="small">{n.type}</code>
                  </td>
                  <td>{n.status}</td>
                  <td>{n.step ? <code>{n.step}</code> : "—"}</td>
                  <td className="small">
                    {(n.notes ?? []).map((t, j) => (
                      <div key={j}>{t}</div>
                    ))}
                    {n.todo && <div>To do: {n.todo}</div>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {(report.notes ?? []).length > 0 && (
            <ul>
              {report.notes!.map((t, i) => (
                <li key={i}>{t}</li>
              ))}
            </ul>
          )}
          {(report.integrations ?? []).length > 0 && (
            <p>
              Integration stubs (no secrets; fill in their settings and secrets on the Integrations page):{" "}
              {report.integrations!.join(", ")}
            </p>
          )}
          {(report.problems ?? []).length > 0 && (
            <ul className="problems" aria-label="Import problems">
              {report.problems!.map((p, i) => (
                <li key={i}>{typeof p === "string" ? p : p.message}</li>
              ))}
            </ul>
          )}
          <h2>YAML</h2>
          <pre className="code" aria-label="Imported YAML">
            {result.yaml}
          </pre>
          <button className="primary" onClick={save} disabled={busy || saved !== null}>
            Save
          </button>
          {saved && (
            <div role="status">
              <p>
                Saved Workflow <a href={href("workflows", namespace, saved.name)}>{saved.name}</a>
                {saved.integrations.length > 0 && <> and the Integrations {saved.integrations.join(", ")}</>}.
                {saved.kept.length > 0 && <> Kept the existing Integrations {saved.kept.join(", ")}.</>}
              </p>
              {saved.schedules.length > 0 && (
                <>
                  <p>Schedules are not created here; add these to the workspace (or apply them in the cluster):</p>
                  <pre className="code">{saved.schedules.join("---\n")}</pre>
                </>
              )}
            </div>
          )}
        </>
      )}
    </section>
  );
}
