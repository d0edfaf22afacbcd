import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { get, nsPath } from "../api";
import { duration, percent } from "../format";
import { href } from "../router";

interface Bucket {
  at?: string;
  start?: string;
  total?: number;
  runs?: number;
  succeeded?: number;
  failed?: number;
}
interface Stats {
  window?: string;
  buckets?: Bucket[];
  total?: number;
  succeeded?: number;
  failed?: number;
  successRatio?: number | null;
  p95Ms?: number | null;
  p95DurationMs?: number | null;
  failingWorkflows?: { workflow?: string; name?: string; failed?: number; failures?: number }[];
}

export function DashboardPage({ namespace }: { namespace: string }) {
  const [window, setWindow] = useState("24h");
  const stats = useQuery({
    queryKey: ["stats", namespace, window],
    queryFn: () => get<Stats>(`${nsPath(namespace)}/stats?window=${window}`),
    refetchInterval: 10000,
  });
  const s = stats.data;
  const buckets = s?.buckets ?? [];
  const max = Math.max(1, ...buckets.map((b) => b.total ?? b.runs ?? 0));
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
              <div className="tile-value" data-testid="stat-total">{s.total ?? buckets.reduce((a, b) => a + (b.total ?? b.runs ?? 0), 0)}</div>
              <div className="muted">runs</div>
            </div>
            <div className="tile">
              <div className="tile-value" data-testid="stat-success">{percent(s.successRatio)}</div>
              <div className="muted">succeeded</div>
            </div>
            <div className="tile">
              <div className="tile-value" data-testid="stat-p95">{duration(s.p95Ms ?? s.p95DurationMs)}</div>
              <div className="muted">p95 duration</div>
            </div>
          </div>
          <h2>Runs per bucket</h2>
          <div className="bars" role="img" aria-label="Runs per bucket">
            {buckets.map((b, i) => {
              const total = b.total ?? b.runs ?? 0;
              const failed = b.failed ?? 0;
              return (
                <div key={i} className="bar" title={`${b.at ?? b.start ?? ""}: ${total} runs, ${failed} failed`}>
                  <div className="bar-ok" style={{ height: `${((total - failed) / max) * 100}%` }} />
                  <div className="bar-failed" style={{ height: `${(failed / max) * 100}%` }} />
                </div>
              );
            })}
          </div>
          {(s.failingWorkflows ?? []).length > 0 && (
            <>
              <h2>Failing workflows</h2>
              <ul>
                {s.failingWorkflows!.map((w, i) => {
                  const n = w.workflow ?? w.name ?? "";
                  return (
                    <li key={i}>
                      <a href={href("workflows", namespace, n)}>{n}</a>: {w.failed ?? w.failures} failed
                    </li>
                  );
                })}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  );
}
