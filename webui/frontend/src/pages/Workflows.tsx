import { useQuery } from "@tanstack/react-query";
import { get, nsPath, type WorkflowSummary } from "../api";
import { ago, percent, Phase } from "../format";
import { href } from "../router";

export function WorkflowsPage({ namespace }: { namespace: string }) {
  const q = useQuery({
    queryKey: ["workflows", namespace],
    queryFn: () => get<{ items: WorkflowSummary[] }>(`${nsPath(namespace)}/workflows`),
    refetchInterval: 5000,
  });
  return (
    <section className="pad">
      <div className="row between">
        <h1>Workflows</h1>
        <a className="button primary" href={href("new")}>
          New workflow
        </a>
      </div>
      {q.isError && <p role="alert">{q.error.message}</p>}
      {q.data && q.data.items.length === 0 && <p>No workflows yet. Start with “New workflow”.</p>}
      {q.data && q.data.items.length > 0 && (
        <table className="table" aria-label="Workflows">
          <thead>
            <tr>
              <th>Name</th>
              <th>Status</th>
              <th>Last run</th>
              <th>Success</th>
              <th>Runs (24 h)</th>
            </tr>
          </thead>
          <tbody>
            {q.data.items.map((w) => (
              <tr key={w.name}>
                <td>
                  <a href={href("workflows", w.namespace ?? namespace, w.name)}>{w.name}</a>
                  {w.description && <div className="muted small">{w.description}</div>}
                </td>
                <td title={w.ready?.message ?? ""}>
                  <span className={`ready ready-${String(w.ready?.status ?? "unknown").toLowerCase()}`}>
                    {w.ready?.status === "True" ? "Ready" : w.ready?.reason || w.ready?.status || "—"}
                  </span>
                </td>
                <td>
                  {w.lastRun ? (
                    <a href={href("runs", w.namespace ?? namespace, w.lastRun.runId)}>
                      <Phase phase={w.lastRun.phase} /> {ago(w.lastRun.startedAt)}
                    </a>
                  ) : (
                    "never"
                  )}
                </td>
                <td>{percent(w.successRatio)}</td>
                <td>{w.runs24h ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
