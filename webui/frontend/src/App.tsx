import { useQuery } from "@tanstack/react-query";
import { lazy, Suspense, useState } from "react";
import { ApiError, api, loadSession, type Session } from "./api";
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
    return session.error instanceof ApiError && session.error.status === 401 ? (
      <SignIn />
    ) : (
      <main className="pad" role="alert">
        <h1>Autoflow</h1>
        <p>Cannot reach the web API: {String(session.error.message)}</p>
      </main>
    );
  return <Signedin s={session.data} route={route} />;
}

/** Not signed in: the cluster's OIDC sign-in, or the workspace's token link. */
function SignIn() {
  // Back to where the person was after the provider: a path of this site (the API checks).
  const next = encodeURIComponent(window.location.pathname + window.location.hash);
  return (
    <main className="pad signin">
      <h1>Sign in to Autoflow</h1>
      <p>
        <a className="button primary" href={`api/auth/login?next=${next}`}>
          Sign in
        </a>{" "}
        with your organisation's account (in the cluster).
      </p>
      <p>
        In a workspace, open the link with the access token that <code>autoflow serve</code> printed.
      </p>
    </main>
  );
}

const NS_KEY = "autoflow.namespace";

/** The namespace the pages show: the one chosen last (if still allowed), else the first. */
function useNamespace(allowed: string[]): [string, (ns: string) => void] {
  const [chosen, setChosen] = useState<string | null>(() => window.localStorage.getItem(NS_KEY));
  const ns = chosen && allowed.includes(chosen) ? chosen : (allowed[0] ?? "default");
  const choose = (next: string) => {
    window.localStorage.setItem(NS_KEY, next);
    setChosen(next);
  };
  return [ns, choose];
}

async function signOut(): Promise<void> {
  await api("/auth/logout", { method: "POST" });
  window.location.assign(window.location.pathname);
}

function Signedin({ s, route }: { s: Session; route: string[] }) {
  const [ns, setNs] = useNamespace(s.namespaces);
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
          {s.user} · {s.mode} ·{" "}
          {s.namespaces.length > 1 ? (
            <select aria-label="Namespace" value={ns} onChange={(e) => setNs(e.target.value)}>
              {s.namespaces.map((n) => (
                <option key={n}>{n}</option>
              ))}
            </select>
          ) : (
            ns
          )}
          {s.mode === "cluster" && (
            <>
              {" "}
              <button className="link light" onClick={() => void signOut()}>
                Sign out
              </button>
            </>
          )}
        </span>
      </header>
      <main className="content">
        {s.namespaces.length === 0 && (
          <p className="pad" role="alert">
            {s.user} may not list Workflows in any namespace here: ask an administrator for a role binding (for
            example <code>autoflow-viewer</code>).
          </p>
        )}
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
