import { useState } from "react";
import { api, ApiError } from "../api";

export default function ImportPage({ namespace }: { namespace: string }) {
  const [json, setJson] = useState("");
  const [result, setResult] = useState<{ yaml: string; report: unknown } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const convert = async () => {
    setError(null);
    setResult(null);
    try {
      let body: unknown;
      try {
        body = JSON.parse(json);
      } catch {
        setError("That is not JSON: paste an n8n workflow export.");
        return;
      }
      const r = await api<{ yaml: string; report: unknown }>("/import/n8n", { method: "POST", body: { json: body } });
      setResult(r.data);
    } catch (e) {
      setError(e instanceof ApiError && e.status === 404 ? "Import is not available on this server." : (e as Error).message);
    }
  };
  const save = async () => {
    if (!result) return;
    try {
      const r = await api<{ name: string }>(`/namespaces/${encodeURIComponent(namespace)}/workflows`, { method: "POST", body: { yaml: result.yaml } });
      setSaved(r.data.name);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <section className="pad">
      <h1>Import an n8n workflow</h1>
      <label>
        n8n workflow JSON
        <textarea rows={10} value={json} onChange={(e) => setJson(e.target.value)} />
      </label>
      <button className="primary" onClick={convert} disabled={!json.trim()}>
        Convert
      </button>
      {error && <p role="alert" className="error-text">{error}</p>}
      {result && (
        <>
          <h2>Workflow</h2>
          <pre className="code">{result.yaml}</pre>
          <h2>Report</h2>
          <pre className="code">{JSON.stringify(result.report, null, 2)}</pre>
          <button onClick={save}>Save as a Workflow</button>
          {saved && (
            <p role="status">
              Saved: <a href={`#/workflows/${namespace}/${saved}`}>{saved}</a>
            </p>
          )}
        </>
      )}
    </section>
  );
}
