/** A time as the API gives it: epoch seconds (or an ISO string). */
export function toMillis(at?: number | string | null): number | null {
  if (at === null || at === undefined || at === "") return null;
  if (typeof at === "number") return at * 1000;
  const t = Date.parse(at);
  return Number.isNaN(t) ? null : t;
}

export function ago(at?: number | string | null): string {
  const t = toMillis(at);
  if (t === null) return "—";
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleString();
}

export function duration(ms?: number | null): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function percent(r?: number | null): string {
  return r === null || r === undefined ? "—" : `${Math.round(r * 100)} %`;
}

export function Phase({ phase }: { phase?: string | null }) {
  const p = phase ?? "—";
  return <span className={`phase phase-${p.toLowerCase()}`}>{p}</span>;
}
