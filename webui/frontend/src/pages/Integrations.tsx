import { useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useState } from "react";
import { api, get, nsPath, type ConnectorInfo } from "../api";
import { ago } from "../format";
import { oauthOutcome, oauthState } from "../integrations/oauth";
import { useHash } from "../router";

const StepForm = lazy(() => import("../components/StepForm"));

interface Health {
  ready: boolean;
  reason?: string;
  message?: string;
  checkedAt?: number | null;
}
interface Integration {
  name: string;
  namespace?: string;
  type?: string | null;
  /** the Integration's spec: type, description, settings, rateLimit, ... */
  spec: {
    type?: string;
    description?: string;
    settings?: Record<string, unknown>;
    oauth2?: { grantType?: string } | null;
    [k: string]: unknown;
  };
  /** names of the stored secret keys (never their values) */
  secretKeys?: string[];
  health?: Health | null;
}

const healthText = (h?: Health | null): string => (!h ? "not checked" : h.ready ? "Healthy" : h.reason || "Unhealthy");

export function IntegrationsPage({ namespace }: { namespace: string }) {
  const list = useQuery({
    queryKey: ["integrations", namespace],
    queryFn: () => get<{ items: Integration[] }>(`${nsPath(namespace)}/integrations`),
  });
  const [editing, setEditing] = useState<Integration | "new" | null>(null);
  const [tested, setTested] = useState<Record<string, string>>({});
  const qc = useQueryClient();
  const outcome = oauthOutcome(useHash());
  const [connectError, setConnectError] = useState<string | null>(null);
  // The provider's consent page, then the API's callback, which sends the browser back here.
  const connect = async (name: string) => {
    setConnectError(null);
    try {
      const r = await get<{ authorizationUrl: string }>(`${nsPath(namespace)}/integrations/${encodeURIComponent(name)}/oauth/start`);
      window.location.assign(r.authorizationUrl);
    } catch (e) {
      setConnectError(`Cannot connect ${name}: ${(e as Error).message}`);
    }
  };
  const test = async (name: string) => {
    setTested((t) => ({ ...t, [name]: "testing…" }));
    try {
      const r = await api<Health>(`${nsPath(namespace)}/integrations/${encodeURIComponent(name)}/test`, { method: "POST" });
      setTested((t) => ({ ...t, [name]: `${r.data.ready ? "OK" : "Failed"}${r.data.message ? `: ${r.data.message}` : ""}` }));
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
      {outcome?.kind === "connected" && (
        <div className="banner ok" role="status">
          Connected {outcome.name}: its OAuth2 tokens are stored.
        </div>
      )}
      {outcome?.kind === "refused" && (
        <div className="banner error" role="alert">
          Not connected{outcome.name ? ` ${outcome.name}` : ""}: the provider answered {outcome.error}.
        </div>
      )}
      {connectError && (
        <div className="banner error" role="alert">
          {connectError}
        </div>
      )}
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
              <th>OAuth2</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((i) => (
              <tr key={i.name}>
                <td>{i.name}</td>
                <td>{i.type ?? i.spec.type}</td>
                <td title={i.health?.message ?? ""}>
                  <span className={`ready ready-${i.health ? (i.health.ready ? "true" : "false") : "unknown"}`} data-testid={`health-${i.name}`}>
                    {healthText(i.health)}
                  </span>{" "}
                  <span className="muted small">{i.health?.checkedAt ? ago(i.health.checkedAt) : ""}</span>
                  {tested[i.name] && (
                    <div className="small" role="status">
                      {tested[i.name]}
                    </div>
                  )}
                </td>
                <td>{(i.secretKeys ?? []).join(", ") || "—"}</td>
                <td>
                  {oauthState(i) === "none" ? (
                    "—"
                  ) : (
                    <span className="row">
                      <span data-testid={`oauth-${i.name}`}>{oauthState(i) === "connected" ? "Connected" : "Not connected"}</span>
                      <button onClick={() => void connect(i.name)} aria-label={`Connect ${i.name}`}>
                        {oauthState(i) === "connected" ? "Reconnect" : "Connect"}
                      </button>
                    </span>
                  )}
                </td>
                <td className="row">
                  <button onClick={() => test(i.name)} aria-label={`Test ${i.name} now`}>
                    Test now
                  </button>
                  <button onClick={() => setEditing(i)} aria-label={`Edit ${i.name}`}>
                    Edit
                  </button>
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
  const [type, setType] = useState(props.existing?.spec.type ?? props.existing?.type ?? "");
  const [description, setDescription] = useState(props.existing?.spec.description ?? "");
  const [settings, setSettings] = useState<Record<string, unknown>>(props.existing?.spec.settings ?? {});
  // write-only: the form never shows a stored secret, only what is typed now
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const kind = kinds.find((c) => c.type === type);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    const typed = Object.fromEntries(Object.entries(secrets).filter(([, v]) => v !== ""));
    const spec: Record<string, unknown> = { ...(props.existing?.spec ?? {}), type, settings };
    if (description) spec.description = description;
    else delete spec.description;
    const body = { name, spec, secrets: typed };
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
      <label>
        Description <input value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      {kind?.integration?.settingsSchema && (
        <fieldset>
          <legend>Settings</legend>
          <Suspense fallback={<p>Loading form…</p>}>
            <StepForm schema={kind.integration.settingsSchema} value={settings} idPrefix="settings" onChange={setSettings} />
          </Suspense>
        </fieldset>
      )}
      {Object.keys(kind?.integration?.secretKeys ?? {}).length > 0 && (
        <fieldset>
          <legend>Secrets (write-only)</legend>
          {Object.entries(kind!.integration!.secretKeys!).map(([k, help]) => (
            <label key={k}>
              {k} <span className="muted small">{help}</span>{" "}
              <input
                type="password"
                aria-label={`Secret ${k}`}
                title={help}
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
