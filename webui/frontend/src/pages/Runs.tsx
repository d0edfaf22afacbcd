import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { get, nsPath, type RunSummary } from "../api";
import { ago, duration, Phase } from "../format";
import { href } from "../router";

const PHASES = ["", "Pending", "Running", "Succeeded", "Failed", "Cancelled"];

export function RunsPage({ namespace }: { namespace: string }) {
  const [workflow, setWorkflow] = useState("");
  const [phase, setPhase] = useState("");
  const [q, setQ] = useState("");
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1] ?? "";
  const params = new URLSearchParams();
  if (workflow) params.set("workflow", workflow);
  if (phase) params.set("phase", phase);
  if (q) params.set("q", q);
  params.set("limit", "50");
  if (cursor) params.set("cursor", cursor);
  const runs = useQuery({
    queryKey: ["runs", namespace, params.toString()],
    queryFn: () => get<{ items: RunSummary[]; next?: string | null }>(`${nsPath(namespace)}/runs?${params}`),
    refetchInterval: 3000,
  });
  const reset = () => setCursors([]);
  return (
    <section className="pad">
      <h1>Runs</h1>
      <div className="row filters">
        <label>
          Workflow <input value={workflow} onChange={(e) => (setWorkflow(e.target.value), reset())} />
        </label>
        <label>
          Phase{" "}
          <select value={phase} onChange={(e) => (setPhase(e.target.value), reset())}>
            {PHASES.map((p) => (
              <option key={p} value={p}>
                {p || "any"}
              </option>
            ))}
          </select>
        </label>
        <label>
          Search <input value={q} onChange={(e) => (setQ(e.target.value), reset())} />
        </label>
      </div>
      {runs.isError && <p role="alert">{runs.error.message}</p>}
      {runs.data && (
        <table className="table" aria-label="Runs">
          <thead>
            <tr>
              <th>Run</th>
              <th>Workflow</th>
              <th>Phase</th>
              <th>Trigger</th>
              <th>Started</th>
              <th>Duration</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {runs.data.items.map((r) => (
              <tr key={r.runId}>
                <td>
                  <a href={href("runs", r.namespace ?? namespace, r.runId)}>{r.runId}</a>
                </td>
                <td>{r.workflow}</td>
                <td>
                  <Phase phase={r.phase} />
                </td>
                <td>{r.trigger ?? "—"}</td>
                <td>{ago(r.startedAt)}</td>
                <td>{duration(r.durationMs)}</td>
                <td className="error-text small">{r.error ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="row">
        <button disabled={!cursors.length} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button disabled={!runs.data?.next} onClick={() => setCursors([...cursors, runs.data!.next!])}>
          Older
        </button>
      </div>
    </section>
  );
}
