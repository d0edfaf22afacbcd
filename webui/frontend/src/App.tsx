import { useQuery } from "@tanstack/react-query";
import { lazy, Suspense } from "react";
import { ApiError, loadSession, type Session } from "./api";
import { href, useRoute } from "./router";
import { WorkflowsPage } from "./pages/Workflows";
import { RunsPage } from "./pages/Runs";
import { RunPage } from "./pages/Run";
import { IntegrationsPage } from "./pages/Integrations";
import { DashboardPage } from "./pages/Dashboard";
import { SchedulesPage } from "./pages/Schedules";

const BuilderPage = lazy(() => import("./pages/Builder"));
const ImportPage = lazy(() => import("./pages/Import"));

const NAV: [string, string][] = [
  ["workflows", "Workflows"],
  ["runs", "Runs"],
  ["integrations", "Integrations"],
  ["schedules", "Schedules"],
  ["dashboard", "Dashboard"],
  ["import", "Import n8n"],
];

export function App() {
  const session = useQuery({ queryKey: ["session"], queryFn: loadSession, staleTime: Infinity });
  const route = useRoute();
  if (session.isPending) return <p className="pad">Loading…</p>;
  if (session.isError)
    return (
      <main className="pad" role="alert">
        <h1>Autoflow</h1>
        <p>Cannot reach the web API: {String(session.error.message)}</p>
        {session.error instanceof ApiError && session.error.status === 401 ? (
          <p>
            In a workspace, open the link with the access token that <code>autoflow serve</code> printed. In the
            cluster, <a href="api/auth/login">sign in</a>.
          </p>
        ) : null}
      </main>
    );
  const s: Session = session.data;
  const ns = s.namespaces[0] ?? "default";
  const page = route[0] ?? "workflows";
  return (
    <div className="app">
      <header className="top">
        <a className="brand" href={href("workflows")}>
          Autoflow
        </a>
        <nav aria-label="Main">
          {NAV.map(([key, label]) => (
            <a key={key} href={href(key)} aria-current={page === key ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span className="who">
          {s.user} · {s.mode} · {ns}
        </span>
      </header>
      <main className="content">
        <Suspense fallback={<p className="pad">Loading…</p>}>
          {page === "workflows" && route.length >= 3 ? (
            <BuilderPage key={route.join("/")} namespace={route[1]} name={route[2]} />
          ) : page === "new" ? (
            <BuilderPage key={route.join("/")} namespace={ns} name={null} template={route[1] ?? null} />
          ) : page === "runs" && route.length >= 3 ? (
            <RunPage namespace={route[1]} runId={route[2]} />
          ) : page === "runs" ? (
            <RunsPage namespace={ns} />
          ) : page === "integrations" ? (
            <IntegrationsPage namespace={ns} />
          ) : page === "schedules" ? (
            <SchedulesPage namespace={ns} />
          ) : page === "dashboard" ? (
            <DashboardPage namespace={ns} />
          ) : page === "import" ? (
            <ImportPage namespace={ns} />
          ) : (
            <WorkflowsPage namespace={ns} />
          )}
        </Suspense>
      </main>
    </div>
  );
}
