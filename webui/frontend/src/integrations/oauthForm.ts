// The OAuth2 part of the Integration form, as plain data. Its fields come from the Integration
// JSON Schema the API serves (GET /schemas: spec.oauth2, made from crds/integration.py), so
// labels, help, required marks and choices are the model's. An Integration takes the block
// when its connector always authenticates with oauth2 (the catalogue's `integration.auth`) or
// its settings choose oauth2 (the http connector's `settings.auth`). The person types text;
// `blockOf` turns it into `spec.oauth2` (scopes are words separated by spaces, as in RFC 6749
// 3.3). A refused save (422 problem+json) names fields such as `spec.oauth2.scopes[0]`;
// `placeProblems` says which control of the form each problem belongs to.

import type { Problem } from "../api";

type Schema = Record<string, unknown>;

export interface OAuth2Field {
  /** its key in spec.oauth2 */
  key: string;
  label: string;
  help: string;
  required: boolean;
  /** choice: one of `options`; list: words separated by spaces; text: one line */
  kind: "choice" | "list" | "text";
  options: string[];
  default?: string;
  maxLength?: number;
}

/** The secret the OAuth2 client authenticates with, stored with the Integration's secrets. */
export const CLIENT_SECRET = "clientSecret";

const props = (s: Schema | undefined): Record<string, Schema> => (s?.properties as Record<string, Schema> | undefined) ?? {};

function lookup(root: Schema, ref: string): Schema {
  // local references only ("#/$defs/OAuth2"), as pydantic writes them
  let node: unknown = root;
  for (const part of ref.replace(/^#\/?/, "").split("/").filter(Boolean)) {
    node = node && typeof node === "object" ? (node as Schema)[part] : undefined;
  }
  return node && typeof node === "object" ? (node as Schema) : {};
}

/** The schema of a value: references followed, "X or null" read as X; what the outer node
 * says (title, description, default) wins over the referenced definition's. */
function resolve(root: Schema, node: Schema | undefined): Schema {
  let n: Schema = node ?? {};
  for (let depth = 0; depth < 16; depth++) {
    const union = (n.anyOf ?? n.oneOf) as Schema[] | undefined;
    const outer = { ...n };
    if (typeof n.$ref === "string") {
      delete outer.$ref;
      n = { ...lookup(root, n.$ref), ...outer };
    } else if (Array.isArray(union)) {
      const nonNull = union.filter((u) => u.type !== "null");
      if (nonNull.length !== 1) return n;
      delete outer.anyOf;
      delete outer.oneOf;
      n = { ...nonNull[0], ...outer };
    } else {
      return n;
    }
  }
  return n;
}

/** The fields of `spec.oauth2`, in the schema's order, from the Integration kind's JSON Schema. */
export function oauth2Fields(integrationSchema: Schema | undefined): OAuth2Field[] {
  if (!integrationSchema) return [];
  const root = integrationSchema;
  const spec = resolve(root, props(root).spec);
  const block = resolve(root, props(spec).oauth2);
  const required = new Set((block.required as string[] | undefined) ?? []);
  return Object.entries(props(block)).map(([key, raw]) => {
    const s = resolve(root, raw);
    const options = Array.isArray(s.enum) ? s.enum.map(String) : [];
    return {
      key,
      label: typeof s.title === "string" ? s.title : key,
      help: typeof s.description === "string" ? s.description : "",
      required: required.has(key),
      kind: options.length ? "choice" : s.type === "array" ? "list" : "text",
      options,
      ...(typeof s.default === "string" ? { default: s.default } : {}),
      ...(typeof s.maxLength === "number" ? { maxLength: s.maxLength } : {}),
    };
  });
}

/** Required now: by the schema, or, for the authorization URL, by the grant a person connects
 * with (the schema cannot say so: a refresh token stored by hand needs none). */
export function isRequired(field: OAuth2Field, draft: Record<string, string>): boolean {
  return field.required || (field.key === "authorizeUrl" && draft.grantType === "authorization_code");
}

export interface ConnectorIntegration {
  auth?: string | null;
  settingsSchema?: Schema;
}

/** Whether an Integration takes an oauth2 block: its connector always authenticates with
 * oauth2, or its settings choose it; when neither decides, whether it has one already. */
export function usesOAuth2(connector: ConnectorIntegration | null | undefined, settings: Record<string, unknown>, existing: unknown): boolean {
  if (connector?.auth === "oauth2") return true;
  if ("auth" in props(connector?.settingsSchema)) return settings.auth === "oauth2";
  return existing != null;
}

/** A stored block as the form's text: lists as words separated by spaces. */
export function draftOf(block: Record<string, unknown> | null | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(block ?? {})
      .filter(([, v]) => v != null)
      .map(([k, v]) => [k, Array.isArray(v) ? v.join(" ") : String(v)]),
  );
}

/** `spec.oauth2` from the form's text; what the form has no field for is kept from `previous`,
 * an empty field is left out (the model's default applies). */
export function blockOf(fields: OAuth2Field[], draft: Record<string, string>, previous?: Record<string, unknown> | null): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(previous ?? {}) };
  for (const f of fields) {
    const text = (draft[f.key] ?? "").trim();
    const value = f.kind === "list" ? text.split(/\s+/).filter(Boolean) : text;
    if (value.length) out[f.key] = value;
    else delete out[f.key];
  }
  return out;
}

/** Where the provider sends the person back: the redirect URI to register for the client. */
export function redirectUri(pageUrl: string): string {
  return new URL("/api/oauth/callback", pageUrl).href;
}

/** The form's name for what a problem is about: `spec.oauth2.scopes[0]` is `oauth2.scopes`. */
export function formKey(field: string): string {
  return field.replace(/\[\d+\]/g, "").replace(/^spec\./, "");
}

/** Each problem at the control it names (the longest of `keys` its field is, or is under);
 * the rest, which no control shows, for the form's own message. */
export function placeProblems(problems: Problem[], keys: string[]): { byKey: Record<string, string[]>; rest: Problem[] } {
  const byKey: Record<string, string[]> = {};
  const rest: Problem[] = [];
  for (const p of problems) {
    const at = p.field ? formKey(p.field) : "";
    const key = keys.filter((k) => at === k || at.startsWith(`${k}.`)).sort((a, b) => b.length - a.length)[0];
    if (key) (byKey[key] ??= []).push(p.message);
    else rest.push(p);
  }
  return { byKey, rest };
}
