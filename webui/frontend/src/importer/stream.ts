// What the n8n importer answers is one YAML stream: the Workflow, an Integration stub per n8n
// credential, a Schedule per schedule rule. The web API saves one Workflow per text and
// Integrations through their own route, so the stream is split here: the Workflow's document
// as written (the importer's header comments kept), the Integrations as name + spec, the
// Schedules as text for the person to add by hand (the API does not create Schedules).
import { parseDocument } from "yaml";

export interface ImportedIntegration {
  name: string;
  spec: Record<string, unknown>;
}

export interface SplitImport {
  workflow: string | null;
  workflowName: string | null;
  integrations: ImportedIntegration[];
  schedules: string[];
  /** further Workflows of the stream (a template may hold two), as written */
  otherWorkflows: string[];
  errors: string[];
}

/** The stream's documents as they are written: cut at the `---` lines (at column 0, which no
 * block scalar's content can be), so each part keeps its bytes and comments. */
export function documentTexts(stream: string): string[] {
  return stream
    .split(/^---[ \t]*(?:\r?\n|$)/m)
    .filter((part) => part.trim() !== "");
}

export function splitImport(stream: string): SplitImport {
  const out: SplitImport = { workflow: null, workflowName: null, integrations: [], schedules: [], otherWorkflows: [], errors: [] };
  for (const text of documentTexts(stream)) {
    const doc = parseDocument(text);
    if (doc.errors.length) {
      out.errors.push(...doc.errors.map((e) => e.message));
      continue;
    }
    const data = doc.toJS() as { kind?: unknown; metadata?: { name?: unknown }; spec?: unknown } | null;
    if (!data || typeof data !== "object") continue;
    const name = typeof data.metadata?.name === "string" ? data.metadata.name : null;
    if (data.kind === "Workflow" && out.workflow === null) {
      out.workflow = text;
      out.workflowName = name;
    } else if (data.kind === "Workflow") {
      out.otherWorkflows.push(text);
    } else if (data.kind === "Integration" && name && data.spec && typeof data.spec === "object") {
      out.integrations.push({ name, spec: data.spec as Record<string, unknown> });
    } else if (data.kind === "Schedule") {
      out.schedules.push(text);
    } else {
      out.errors.push(`an unexpected document${name ? ` (${name})` : ""} of kind ${String(data.kind)}`);
    }
  }
  return out;
}
