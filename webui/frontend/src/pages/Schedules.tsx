import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, get, nsPath } from "../api";
import { ago } from "../format";
import { href } from "../router";
import { inZone } from "./scheduleTime";

interface Schedule {
  name: string;
  namespace: string;
  spec: { cron: string; timezone?: string; workflowRef: { name: string }; suspend?: boolean; concurrencyPolicy?: string };
  status?: { lastScheduleTime?: string | null; nextScheduleTime?: string | null; active?: string[] } | null;
  /** The next fires (UTC instants) by the cron in its time zone, computed by the API; none while suspended. */
  nextFires?: string[];
}

export function SchedulesPage({ namespace }: { namespace: string }) {
  const qc = useQueryClient();
  const key = ["schedules", namespace];
  const q = useQuery({
    queryKey: key,
    queryFn: () => get<{ items: Schedule[] }>(`${nsPath(namespace)}/schedules`),
    refetchInterval: 10000,
  });
  // Suspend or resume: one field of the Schedule (spec.suspend), written as the signed-in person.
  const toggle = useMutation({
    mutationFn: async ({ name, suspend }: { name: string; suspend: boolean }) =>
      (await api<Schedule>(`${nsPath(namespace)}/schedules/${encodeURIComponent(name)}/${suspend ? "suspend" : "resume"}`, { method: "POST" })).data,
    onSuccess: (changed) => {
      qc.setQueryData<{ items: Schedule[] }>(key, (old) => old && { items: old.items.map((s) => (s.name === changed.name ? changed : s)) });
      qc.invalidateQueries({ queryKey: key });
    },
  });
  return (
    <section className="pad">
      <h1>Schedules</h1>
      {q.isError && <p role="alert">{q.error.message}</p>}
      {toggle.isError && (
        <p role="alert">
          Cannot {toggle.variables?.suspend ? "suspend" : "resume"} {toggle.variables?.name}: {toggle.error.message}
        </p>
      )}
      {q.data && q.data.items.length === 0 && <p>No schedules.</p>}
      {q.data && q.data.items.length > 0 && (
        <table className="table" aria-label="Schedules">
          <thead>
            <tr>
              <th>Name</th>
              <th>Workflow</th>
              <th>Cron</th>
              <th>Time zone</th>
              <th>Next runs</th>
              <th>Last run</th>
              <th>State</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {q.data.items.map((s) => {
              const next = s.nextFires?.length ? s.nextFires : s.status?.nextScheduleTime ? [s.status.nextScheduleTime] : [];
              const busy = toggle.isPending && toggle.variables?.name === s.name;
              return (
                <tr key={s.name}>
                  <td>{s.name}</td>
                  <td>
                    <a href={href("workflows", s.namespace ?? namespace, s.spec.workflowRef?.name ?? "")}>{s.spec.workflowRef?.name}</a>
                  </td>
                  <td>
                    <code>{s.spec.cron}</code>
                  </td>
                  <td>{s.spec.timezone ?? "UTC"}</td>
                  <td>
                    {s.spec.suspend || next.length === 0 ? (
                      "—"
                    ) : (
                      <ol className="plain" aria-label={`Next runs of ${s.name}`}>
                        {next.map((t) => (
                          <li key={t}>
                            <time dateTime={t}>{inZone(t, s.spec.timezone)}</time>
                          </li>
                        ))}
                      </ol>
                    )}
                  </td>
                  <td>{s.status?.lastScheduleTime ? ago(s.status.lastScheduleTime) : "—"}</td>
                  <td>{s.spec.suspend ? "suspended" : "active"}</td>
                  <td>
                    <button
                      disabled={busy}
                      aria-label={`${s.spec.suspend ? "Resume" : "Suspend"} ${s.name}`}
                      onClick={() => toggle.mutate({ name: s.name, suspend: !s.spec.suspend })}
                    >
                      {s.spec.suspend ? "Resume" : "Suspend"}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
