import { useQuery } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError, get, nsPath, type ConnectorInfo, type Problem } from "../api";
import { OAuth2Fields } from "./OAuth2Fields";
import { blockOf, CLIENT_SECRET, draftOf, oauth2Fields, placeProblems, usesOAuth2 } from "./oauthForm";

const StepForm = lazy(() => import("../components/StepForm"));

export interface Health {
  ready: boolean;
  reason?: string;
  message?: string;
  checkedAt?: number | null;
}
export interface Integration {
  name: string;
  namespace?: string;
  type?: string | null;
  /** the Integration's spec: type, description, settings, rateLimit, ... */
  spec: {
    type?: string;
    description?: string;
    settings?: Record<string, unknown>;
    oauth2?: Record<string, unknown> | null;
    [k: string]: unknown;
  };
  /** names of the stored secret keys (never their values) */
  secretKeys?: string[];
  health?: Health | null;
}

const errorId = (key: string) => `integration-${key.replace(/\W/g, "-")}-error`;

/** A problem's message under the control it is about, which names it in aria-describedby. */
function FieldError({ at, errors }: { at: string; errors: Record<string, string[]> }) {
  return errors[at] ? (
    <div id={errorId(at)} className="error-text small">
      {errors[at].join("; ")}
    </div>
  ) : null;
}

/** Create or edit an Integration: name, type, description, the connector's settings (a form
 * from their schema), its secrets (write-only), and the OAuth2 client when it takes one. */
export function IntegrationForm(props: { namespace: string; existing: Integration | null; onDone: () => void }) {
  const connectors = useQuery({ queryKey: ["connectors"], queryFn: () => get<ConnectorInfo[]>("/connectors"), staleTime: Infinity });
  const schemas = useQuery({
    queryKey: ["schemas"],
    queryFn: () => get<Record<string, Record<string, unknown>>>("/schemas"),
    staleTime: Infinity,
  });
  const kinds = (connectors.data ?? []).filter((c) => c.integration);
  const existingOAuth2 = props.existing?.spec.oauth2 ?? null;
  const [name, setName] = useState(props.existing?.name ?? "");
  const [type, setType] = useState(props.existing?.spec.type ?? props.existing?.type ?? "");
  const [description, setDescription] = useState(props.existing?.spec.description ?? "");
  const [settings, setSettings] = useState<Record<string, unknown>>(props.existing?.spec.settings ?? {});
  const [oauth2, setOAuth2] = useState<Record<string, string>>(() => draftOf(existingOAuth2));
  // write-only: the form never shows a stored secret, only what is typed now
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [unplaced, setUnplaced] = useState<Problem[]>([]);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string[]>>({});
  const [refusals, setRefusals] = useState(0);
  const form = useRef<HTMLFormElement>(null);
  const kind = kinds.find((c) => c.type === type);
  const fields = useMemo(() => oauth2Fields(schemas.data?.Integration), [schemas.data]);
  const withOAuth2 = usesOAuth2(kind?.integration, settings, existingOAuth2);
  const secretKeys = Object.entries(kind?.integration?.secretKeys ?? {}).filter(([k]) => !(withOAuth2 && k === CLIENT_SECRET));
  const stored = (k: string) => props.existing?.secretKeys?.includes(k) ?? false;

  // After a refused save, to the first control a problem is about.
  useEffect(() => {
    if (refusals) form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [refusals]);

  const edited = (key: string) =>
    setFieldErrors((e) => {
      if (!(key in e)) return e;
      const rest = { ...e };
      delete rest[key];
      return rest;
    });
  const invalid = (key: string) => ({
    "aria-invalid": key in fieldErrors || undefined,
    "aria-describedby": key in fieldErrors ? errorId(key) : undefined,
  });

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    setUnplaced([]);
    setFieldErrors({});
    const typed = Object.fromEntries(Object.entries(secrets).filter(([k, v]) => v !== "" && (k !== CLIENT_SECRET || withOAuth2)));
    const spec: Record<string, unknown> = { ...(props.existing?.spec ?? {}), type, settings };
    if (description) spec.description = description;
    else delete spec.description;
    if (withOAuth2) spec.oauth2 = blockOf(fields, oauth2, existingOAuth2);
    else delete spec.oauth2;
    const body = { name, spec, secrets: typed };
    try {
      if (props.existing) {
        await api(`${nsPath(props.namespace)}/integrations/${encodeURIComponent(props.existing.name)}`, { method: "PUT", body });
      } else {
        await api(`${nsPath(props.namespace)}/integrations`, { method: "POST", body });
      }
      props.onDone();
    } catch (err) {
      setError((err as Error).message);
      if (err instanceof ApiError) {
        const keys = ["name", "type", "description", "settings", "oauth2", ...fields.map((f) => `oauth2.${f.key}`)];
        keys.push(...Object.keys(secrets).map((k) => `secrets.${k}`), ...secretKeys.map(([k]) => `secrets.${k}`));
        const placed = placeProblems(err.problems, keys);
        setUnplaced(placed.rest);
        setFieldErrors(placed.byKey);
        setRefusals((n) => n + 1);
      }
    }
  };
  return (
    <form ref={form} className="card" onSubmit={submit} aria-label={props.existing ? `Edit ${props.existing.name}` : "New integration"}>
      <h2>{props.existing ? `Edit ${props.existing.name}` : "New integration"}</h2>
      <label>
        Name{" "}
        <input
          required
          value={name}
          disabled={!!props.existing}
          {...invalid("name")}
          onChange={(e) => {
            setName(e.target.value);
            edited("name");
          }}
        />
      </label>
      <FieldError at="name" errors={fieldErrors} />
      <label>
        Type{" "}
        <select required value={type} disabled={!!props.existing} {...invalid("type")} onChange={(e) => setType(e.target.value)}>
          <option value="">choose…</option>
          {kinds.map((c) => (
            <option key={c.type} value={c.type}>
              {c.type}
            </option>
          ))}
        </select>
      </label>
      <FieldError at="type" errors={fieldErrors} />
      <label>
        Description{" "}
        <input
          value={description}
          {...invalid("description")}
          onChange={(e) => {
            setDescription(e.target.value);
            edited("description");
          }}
        />
      </label>
      <FieldError at="description" errors={fieldErrors} />
      {kind?.integration?.settingsSchema && (
        <fieldset aria-describedby={fieldErrors.settings ? errorId("settings") : undefined}>
          <legend>Settings</legend>
          <FieldError at="settings" errors={fieldErrors} />
          <Suspense fallback={<p>Loading form…</p>}>
            <StepForm schema={kind.integration.settingsSchema} value={settings} idPrefix="settings" onChange={setSettings} />
          </Suspense>
        </fieldset>
      )}
      {withOAuth2 && schemas.isError && (
        <p role="alert" className="error-text">
          Cannot load the Integration schema for the OAuth2 fields: {schemas.error.message}
        </p>
      )}
      {withOAuth2 && fields.length > 0 && (
        <OAuth2Fields
          fields={fields}
          draft={oauth2}
          onChange={(key, value) => {
            setOAuth2((d) => ({ ...d, [key]: value }));
            edited(`oauth2.${key}`);
          }}
          secret={secrets[CLIENT_SECRET] ?? ""}
          secretStored={stored(CLIENT_SECRET)}
          onSecret={(value) => {
            setSecrets((s) => ({ ...s, [CLIENT_SECRET]: value }));
            edited(`secrets.${CLIENT_SECRET}`);
          }}
          errors={fieldErrors}
        />
      )}
      {!withOAuth2 && existingOAuth2 && (
        <p className="muted small" role="note">
          Saving removes this Integration's OAuth2 client settings: its auth is no longer oauth2.
        </p>
      )}
      {secretKeys.length > 0 && (
        <fieldset>
          <legend>Secrets (write-only)</legend>
          {secretKeys.map(([k, help]) => (
            <div key={k}>
              <label>
                {k} <span className="muted small">{help}</span>{" "}
                <input
                  type="password"
                  aria-label={`Secret ${k}`}
                  title={help}
                  autoComplete="new-password"
                  placeholder={stored(k) ? "set — type to replace" : ""}
                  value={secrets[k] ?? ""}
                  {...invalid(`secrets.${k}`)}
                  onChange={(e) => {
                    setSecrets({ ...secrets, [k]: e.target.value });
                    edited(`secrets.${k}`);
                  }}
                />
              </label>
              <FieldError at={`secrets.${k}`} errors={fieldErrors} />
            </div>
          ))}
        </fieldset>
      )}
      {error && (
        <div role="alert" className="error-text">
          <p>{error}</p>
          {unplaced.length > 0 && (
            <ul className="problems">
              {unplaced.map((p, i) => (
                <li key={i}>
                  {p.field ? `${p.field}: ` : ""}
                  {p.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div className="row">
        <button className="primary" type="submit">
          Save integration
        </button>
        <button type="button" onClick={props.onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
