import { useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useState } from "react";
import { api, get, nsPath, type ConnectorInfo } from "../api";
import { ago } from "../format";

const StepForm = lazy(() => import("../components/StepForm"));

interface Integration {
  name: string;
  namespace?: string;
  type: string;
  description?: string;
  settings?: Record<string, unknown>;
  /** names of the secret keys that have a value (never the values) */
  secretKeys?: string[];
  health?: { status?: string; message?: string; checkedAt?: string } | null;
}

export function IntegrationsPage({ namespace }: { namespace: string }) {
  const list = useQuery({
    queryKey: ["integrations", namespace],
    queryFn: () => get<{ items: Integration[] }>(`${nsPath(namespace)}/integrations`),
  });
  const [editing, setEditing] = useState<Integration | "new" | null>(null);
  const [tested, setTested] = useState<Record<string, string>>({});
  const qc = useQueryClient();
  const test = async (name: string) => {
    setTested((t) => ({ ...t, [name]: "testing…" }));
    try {
      const r = await api<{ ok?: boolean; status?: string; message?: string }>(
        `${nsPath(namespace)}/integrations/${encodeURIComponent(name)}/test`,
        { method: "POST" },
      );
      const ok = r.data.ok ?? r.data.status === "Healthy";
      setTested((t) => ({ ...t, [name]: `${ok ? "OK" : "Failed"}${r.data.message ? `: ${r.data.message}` : ""}` }));
    } catch (e) {
      setTested((t) => ({ ...t, [name]: `Failed: ${(e as Error).message}` }));
    }
    qc.invalidateQueries({ queryKey: ["integrations", namespace] });
  };
  return (
    <section className="pad">
      <div className="row between">
        <h1>Integrations</h1>
        <button className="primary" onClick={() => setEditing("new")}>
          New integration
        </button>
      </div>
      {list.isError && <p role="alert">{list.error.message}</p>}
      {list.data && list.data.items.length === 0 && <p>No integrations yet.</p>}
      {list.data && list.data.items.length > 0 && (
        <table className="table" aria-label="Integrations">
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              <th>Health</th>
              <th>Secrets set</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((i) => (
              <tr key={i.name}>
                <td>{i.name}</td>
                <td>{i.type}</td>
                <td title={i.health?.message ?? ""}>
                  <span className={`ready ready-${String(i.health?.status ?? "unknown").toLowerCase()}`}>{i.health?.status ?? "unknown"}</span>{" "}
                  <span className="muted small">{i.health?.checkedAt ? ago(i.health.checkedAt) : ""}</span>
                  {tested[i.name] && (
                    <div className="small" role="status">
                      {tested[i.name]}
                    </div>
                  )}
                </td>
                <td>{(i.secretKeys ?? []).join(", ") || "—"}</td>
                <td className="row">
                  <button onClick={() => test(i.name)}>Test now</button>
                  <button onClick={() => setEditing(i)}>Edit</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <IntegrationForm
          namespace={namespace}
          existing={editing === "new" ? null : editing}
          onDone={() => {
            setEditing(null);
            qc.invalidateQueries({ queryKey: ["integrations", namespace] });
          }}
        />
      )}
    </section>
  );
}

function IntegrationForm(props: { namespace: string; existing: Integration | null; onDone: () => void }) {
  const connectors = useQuery({ queryKey: ["connectors"], queryFn: () => get<ConnectorInfo[]>("/connectors"), staleTime: Infinity });
  const kinds = (connectors.data ?? []).filter((c) => c.integration);
  const [name, setName] = useState(props.existing?.name ?? "");
  const [type, setType] = useState(props.existing?.type ?? "");
  const [settings, setSettings] = useState<Record<string, unknown>>(props.existing?.settings ?? {});
  // write-only: the form never shows a stored secret, only what is typed now
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const kind = kinds.find((c) => c.type === type);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    const typed = Object.fromEntries(Object.entries(secrets).filter(([, v]) => v !== ""));
    const body = { name, type, settings, secrets: typed };
    try {
      if (props.existing) {
        await api(`${nsPath(props.namespace)}/integrations/${encodeURIComponent(props.existing.name)}`, { method: "PUT", body });
      } else {
        await api(`${nsPath(props.namespace)}/integrations`, { method: "POST", body });
      }
      props.onDone();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-label={props.existing ? `Edit ${props.existing.name}` : "New integration"}>
      <h2>{props.existing ? `Edit ${props.existing.name}` : "New integration"}</h2>
      <label>
        Name <input required value={name} disabled={!!props.existing} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Type{" "}
        <select required value={type} disabled={!!props.existing} onChange={(e) => setType(e.target.value)}>
          <option value="">choose…</option>
          {kinds.map((c) => (
            <option key={c.type} value={c.type}>
              {c.type}
            </option>
          ))}
        </select>
      </label>
      {kind?.integration?.settingsSchema && (
        <fieldset>
          <legend>Settings</legend>
          <Suspense fallback={<p>Loading form…</p>}>
            <StepForm schema={kind.integration.settingsSchema} value={settings} idPrefix="settings" onChange={setSettings} />
          </Suspense>
        </fieldset>
      )}
      {(kind?.integration?.secretKeys ?? []).length > 0 && (
        <fieldset>
          <legend>Secrets (write-only)</legend>
          {kind!.integration!.secretKeys!.map((k) => (
            <label key={k}>
              {k}{" "}
              <input
                type="password"
                autoComplete="new-password"
                placeholder={props.existing?.secretKeys?.includes(k) ? "set — type to replace" : ""}
                value={secrets[k] ?? ""}
                onChange={(e) => setSecrets({ ...secrets, [k]: e.target.value })}
              />
            </label>
          ))}
        </fieldset>
      )}
      {error && <p role="alert" className="error-text">{error}</p>}
      <div className="row">
        <button className="primary" type="submit">
          Save integration
        </button>
        <button type="button" onClick={props.onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
