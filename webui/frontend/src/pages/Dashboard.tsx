import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { get, nsPath } from "../api";
import { duration, percent } from "../format";
import { href } from "../router";

interface Figures {
  count: number;
  succeeded: number;
  failed: number;
  successRatio: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
}
interface WorkflowStats extends Figures {
  workflow: string;
  steps?: Record<string, Figures>;
  buckets?: { start: number; runs: number }[];
}
interface Stats {
  window: string;
  since: number;
  until: number;
  runs: number;
  succeeded: number;
  failed: number;
  successRatio: number | null;
  workflows: WorkflowStats[];
}

export function DashboardPage({ namespace }: { namespace: string }) {
  const [window, setWindow] = useState("24h");
  const stats = useQuery({
    queryKey: ["stats", namespace, window],
    queryFn: () => get<Stats>(`${nsPath(namespace)}/stats?window=${window}`),
    refetchInterval: 10000,
  });
  const s = stats.data;
  // runs per bucket over all workflows
  const perBucket = new Map<number, number>();
  for (const w of s?.workflows ?? []) for (const b of w.buckets ?? []) perBucket.set(b.start, (perBucket.get(b.start) ?? 0) + b.runs);
  const buckets = [...perBucket.entries()].sort((a, b) => a[0] - b[0]);
  const max = Math.max(1, ...buckets.map(([, n]) => n));
  const p95 = Math.max(-1, ...(s?.workflows ?? []).map((w) => w.p95Ms ?? -1));
  const failing = (s?.workflows ?? []).filter((w) => w.failed > 0).sort((a, b) => b.failed - a.failed);
  return (
    <section className="pad">
      <div className="row between">
        <h1>Dashboard</h1>
        <label>
          Window{" "}
          <select value={window} onChange={(e) => setWindow(e.target.value)}>
            <option value="24h">24 hours</option>
            <option value="7d">7 days</option>
            <option value="30d">30 days</option>
          </select>
        </label>
      </div>
      {stats.isError && <p role="alert">{stats.error.message}</p>}
      {s && (
        <>
          <div className="tiles">
            <div className="tile">
              <div className="tile-value" data-testid="stat-total">{s.runs}</div>
              <div className="muted">finished runs</div>
            </div>
            <div className="tile">
              <div className="tile-value" data-testid="stat-success">{percent(s.successRatio)}</div>
              <div className="muted">succeeded</div>
            </div>
            <div className="tile">
              <div className="tile-value" data-testid="stat-p95">{p95 < 0 ? "—" : duration(p95)}</div>
              <div className="muted">p95 duration (slowest workflow)</div>
            </div>
          </div>
          <h2>Runs per {window === "24h" ? "hour" : "day"}</h2>
          <div className="bars" role="img" aria-label={`Runs per ${window === "24h" ? "hour" : "day"}`}>
            {buckets.map(([start, n]) => (
              <div key={start} className="bar" title={`${new Date(start * 1000).toLocaleString()}: ${n} runs`}>
                <div className="bar-ok" style={{ height: `${(n / max) * 100}%` }} />
              </div>
            ))}
          </div>
          <h2>Workflows</h2>
          <table className="table" aria-label="Workflow figures">
            <thead>
              <tr>
                <th>Workflow</th>
                <th>Runs</th>
                <th>Failed</th>
                <th>Success</th>
                <th>p50</th>
                <th>p95</th>
              </tr>
            </thead>
            <tbody>
              {[...failing, ...s.workflows.filter((w) => w.failed === 0)].map((w) => (
                <tr key={w.workflow}>
                  <td>
                    <a href={href("workflows", namespace, w.workflow)}>{w.workflow}</a>
                  </td>
                  <td>{w.count}</td>
                  <td className={w.failed ? "error-text" : ""}>{w.failed}</td>
                  <td>{percent(w.successRatio)}</td>
                  <td>{duration(w.p50Ms)}</td>
                  <td>{duration(w.p95Ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
