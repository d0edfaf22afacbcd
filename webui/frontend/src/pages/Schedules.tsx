import { useQuery } from "@tanstack/react-query";
import { get, nsPath } from "../api";
import { ago } from "../format";
import { href } from "../router";

interface Schedule {
  name: string;
  namespace: string;
  spec: { cron: string; timezone?: string; workflowRef: { name: string }; suspend?: boolean; concurrencyPolicy?: string };
  status?: { lastScheduleTime?: string | null; nextScheduleTime?: string | null; active?: string[] } | null;
}

/** When, in the schedule's own time zone. */
function inZone(iso: string | null | undefined, tz: string | undefined): string {
  if (!iso) return "—";
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: tz || "UTC", timeZoneName: "short" });
  } catch {
    return iso;
  }
}

export function SchedulesPage({ namespace }: { namespace: string }) {
  const q = useQuery({
    queryKey: ["schedules", namespace],
    queryFn: () => get<{ items: Schedule[] }>(`${nsPath(namespace)}/schedules`),
    refetchInterval: 10000,
  });
  return (
    <section className="pad">
      <h1>Schedules</h1>
      {q.isError && <p role="alert">{q.error.message}</p>}
      {q.data && q.data.items.length === 0 && <p>No schedules.</p>}
      {q.data && q.data.items.length > 0 && (
        <table className="table" aria-label="Schedules">
          <thead>
            <tr>
              <th>Name</th>
              <th>Workflow</th>
              <th>Cron</th>
              <th>Time zone</th>
              <th>Next run</th>
              <th>Last run</th>
              <th>State</th>
            </tr>
          </thead>
          <tbody>
            {q.data.items.map((s) => (
              <tr key={s.name}>
                <td>{s.name}</td>
                <td>
                  <a href={href("workflows", s.namespace ?? namespace, s.spec.workflowRef?.name ?? "")}>{s.spec.workflowRef?.name}</a>
                </td>
                <td>
                  <code>{s.spec.cron}</code>
                </td>
                <td>{s.spec.timezone ?? "UTC"}</td>
                <td>{inZone(s.status?.nextScheduleTime, s.spec.timezone)}</td>
                <td>{s.status?.lastScheduleTime ? ago(s.status.lastScheduleTime) : "—"}</td>
                <td>{s.spec.suspend ? "suspended" : "active"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
