// The web API client: JSON under /api, problem details (RFC 9457) as ApiError, the CSRF token
// from /api/session on every unsafe request.

export interface Problem {
  path?: string;
  line?: number | null;
  message: string;
  resource?: string | null;
  step?: string | null;
  field?: string | null;
}

export class ApiError extends Error {
  status: number;
  title: string;
  detail: string;
  problems: Problem[];
  constructor(status: number, body: Record<string, unknown> | null, fallback: string) {
    const title = (body?.title as string) || fallback;
    const detail = (body?.detail as string) || "";
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problems = Array.isArray(body?.problems) ? (body!.problems as Problem[]) : [];
  }
}

export interface Session {
  user: string;
  mode: "cluster" | "workspace";
  namespaces: string[];
  csrfToken: string;
}

let csrf = "";

export function setCsrf(token: string): void {
  csrf = token;
}

export async function api<T>(
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ data: T; headers: Headers }> {
  const method = init.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json", ...(init.headers ?? {}) };
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrf) headers["X-CSRF-Token"] = csrf;
  const res = await fetch(`/api${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { title: text.slice(0, 200) };
    }
  }
  if (!res.ok) throw new ApiError(res.status, body as Record<string, unknown>, res.statusText || `HTTP ${res.status}`);
  return { data: body as T, headers: res.headers };
}

export const get = async <T,>(path: string): Promise<T> => (await api<T>(path)).data;

export async function loadSession(): Promise<Session> {
  // The workspace prints a URL with ?token=: hand it to the API once (it sets a cookie), then
  // drop it from the address bar.
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  const s = await get<Session>(token ? `/session?token=${encodeURIComponent(token)}` : "/session");
  if (token) {
    params.delete("token");
    const q = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (q ? `?${q}` : "") + window.location.hash);
  }
  setCsrf(s.csrfToken);
  return s;
}

// Shapes of the web API (interfaces.md, "The web API").
export interface Ready {
  status?: string;
  reason?: string;
  message?: string;
}
export interface WorkflowSummary {
  name: string;
  namespace: string;
  description?: string;
  ready?: Ready;
  lastRun?: { runId: string; phase: string; startedAt: number | string } | null;
  successRatio?: number | null;
  runs24h?: number;
  triggers?: unknown[];
  resourceVersion?: string;
}
export interface WorkflowDetail {
  name: string;
  namespace: string;
  yaml: string;
  resourceVersion: string;
  ready?: Ready;
  spec?: Record<string, unknown>;
}
export interface RunSummary {
  runId: string;
  workflow: string;
  namespace: string;
  phase: string;
  trigger?: string;
  startedBy?: string;
  startedAt?: number | string | null;
  finishedAt?: number | string | null;
  durationMs?: number | null;
  error?: string | null;
}
export interface StepRecord {
  step: string;
  phase: string;
  attempts?: number;
  startedAt?: number | string | null;
  finishedAt?: number | string | null;
  durationMs?: number | null;
  output?: unknown;
  error?: string | null;
  message?: string | null;
}
export interface RunDetail extends RunSummary {
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  steps: StepRecord[];
}
export interface ActionInfo {
  name: string;
  description?: string;
  inputSchema?: Record<string, unknown>;
  outputSchema?: Record<string, unknown>;
}
export interface ConnectorInfo {
  type: string;
  description?: string;
  actions: ActionInfo[];
  /** secretKeys: key → what it is; auth: the scheme every Integration of the type uses
   * ("oauth2": it takes spec.oauth2), null when its settings choose or it has none */
  integration?: { settingsSchema?: Record<string, unknown>; secretKeys?: Record<string, string>; auth?: string | null } | null;
}
export interface RunEvent {
  id: number;
  runId: string;
  namespace: string;
  workflow: string;
  kind: "run" | "step" | "end";
  step?: string;
  phase: string;
  at: number | string;
}

export const nsPath = (ns: string): string => `/namespaces/${encodeURIComponent(ns)}`;

/** A ready-made Workflow of the gallery (GET /api/templates). */
export interface Template {
  name: string;
  title: string;
  description: string;
  category?: string | null;
  /** connector types it uses */
  integrations: string[];
  trigger?: string | null;
  /** the name of its (first) Workflow */
  workflow: string;
  /** the whole file: the Workflow, its Schedules and Integration stubs */
  yaml: string;
}
