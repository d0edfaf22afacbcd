// A hash router: #/workflows, #/workflows/<ns>/<name>, #/new, #/runs, #/runs/<ns>/<id>, ...
import { useSyncExternalStore } from "react";

function subscribe(cb: () => void): () => void {
  window.addEventListener("hashchange", cb);
  return () => window.removeEventListener("hashchange", cb);
}

/** The whole hash, query included (`#/integrations?connected=crm`). */
export function useHash(): string {
  return useSyncExternalStore(subscribe, () => window.location.hash);
}

export function useRoute(): string[] {
  const hash = useHash();
  const path = hash.replace(/^#\/?/, "").split("?")[0];
  return path ? path.split("/").map(decodeURIComponent) : [];
}

export function navigate(...parts: string[]): void {
  window.location.hash = "/" + parts.map(encodeURIComponent).join("/");
}

export const href = (...parts: string[]): string => "#/" + parts.map(encodeURIComponent).join("/");
