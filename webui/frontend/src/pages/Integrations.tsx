import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, get, nsPath } from "../api";
import { ago } from "../format";
import { IntegrationForm, type Health, type Integration } from "../integrations/IntegrationForm";
import { oauthOutcome, oauthState } from "../integrations/oauth";
import { useHash } from "../router";

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
