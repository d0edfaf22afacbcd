import { api, get, nsPath } from "../api";
import type { ImportedIntegration } from "../importer/stream";

/** Creates those of `wanted` (a template's or an import's Integrations) that do not exist yet
 * in the namespace, without secrets; says which were made and which were there already. */
export async function createMissingIntegrations(
  namespace: string,
  wanted: ImportedIntegration[],
): Promise<{ made: string[]; kept: string[] }> {
  if (!wanted.length) return { made: [], kept: [] };
  const existing = new Set(
    (await get<{ items: { name: string }[] }>(`${nsPath(namespace)}/integrations`)).items.map((i) => i.name),
  );
  const made: string[] = [];
  for (const i of wanted.filter((i) => !existing.has(i.name))) {
    await api(`${nsPath(namespace)}/integrations`, { method: "POST", body: { name: i.name, spec: i.spec } });
    made.push(i.name);
  }
  return { made, kept: wanted.map((i) => i.name).filter((n) => existing.has(n)) };
}
