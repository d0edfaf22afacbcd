import { CLIENT_SECRET, isRequired, redirectUri, type OAuth2Field } from "./oauthForm";

/** The schema's descriptions mark names as code, as in `autoflow integrations authorize`. */
const withCode = (text: string) => text.split("`").map((part, i) => (i % 2 ? <code key={i}>{part}</code> : part));

/** One control's label, required mark, help and problems; the control gets `id` and the
 * ids of its help and problems to describe it. */
export function FieldRow(props: {
  id: string;
  label: string;
  required: boolean;
  help?: string;
  errors?: string[];
  control: (describedBy: string | undefined, invalid: boolean) => React.ReactNode;
}) {
  const { id, errors = [] } = props;
  const describedBy = [props.help ? `${id}-help` : "", errors.length ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>
        {props.label}
        {props.required && (
          <span className="error-text" aria-hidden="true">
            {" "}
            *
          </span>
        )}
      </label>
      {props.control(describedBy, errors.length > 0)}
      {props.help && (
        <div id={`${id}-help`} className="muted small">
          {withCode(props.help)}
        </div>
      )}
      {errors.length > 0 && (
        <div id={`${id}-error`} className="error-text small">
          {errors.join("; ")}
        </div>
      )}
    </div>
  );
}

/** The Integration's `spec.oauth2`, its fields from the schema, and the client secret
 * (write-only: never shown back; left empty on an edit, the stored one stays). */
export function OAuth2Fields(props: {
  fields: OAuth2Field[];
  draft: Record<string, string>;
  onChange: (key: string, value: string) => void;
  secret: string;
  secretStored: boolean;
  onSecret: (value: string) => void;
  /** problems by form key: `oauth2`, `oauth2.<field>`, `secrets.clientSecret` */
  errors: Record<string, string[]>;
}) {
  const { fields, draft, errors } = props;
  const control = (f: OAuth2Field) => {
    const id = `oauth2-${f.key}`;
    const required = isRequired(f, draft);
    return (
      <FieldRow
        key={f.key}
        id={id}
        label={f.label}
        required={required}
        help={f.kind === "list" ? `${f.help} Separate them with spaces.`.trim() : f.help}
        errors={errors[`oauth2.${f.key}`]}
        control={(describedBy, invalid) =>
          f.kind === "choice" ? (
            <select
              id={id}
              required={required}
              value={draft[f.key] ?? ""}
              aria-describedby={describedBy}
              aria-invalid={invalid || undefined}
              onChange={(e) => props.onChange(f.key, e.target.value)}
            >
              <option value="">{f.default ? `default (${f.default})` : "choose…"}</option>
              {f.options.map((o) => (
                <option key={o} value={o}>
                  {o}
                </option>
              ))}
            </select>
          ) : (
            <input
              id={id}
              size={48}
              required={required}
              maxLength={f.maxLength}
              value={draft[f.key] ?? ""}
              aria-describedby={describedBy}
              aria-invalid={invalid || undefined}
              spellCheck={false}
              autoComplete="off"
              onChange={(e) => props.onChange(f.key, e.target.value)}
            />
          )
        }
      />
    );
  };
  const secretRow = (
    <FieldRow
      key={CLIENT_SECRET}
      id="oauth2-clientSecret"
      label="Client secret"
      required={!props.secretStored}
      help={`The client's secret from the provider, stored as ${CLIENT_SECRET} with the Integration's secrets; write-only.`}
      errors={errors[`secrets.${CLIENT_SECRET}`]}
      control={(describedBy, invalid) => (
        <input
          id="oauth2-clientSecret"
          type="password"
          size={48}
          autoComplete="new-password"
          required={!props.secretStored}
          placeholder={props.secretStored ? "set — type to replace" : ""}
          value={props.secret}
          aria-describedby={describedBy}
          aria-invalid={invalid || undefined}
          onChange={(e) => props.onSecret(e.target.value)}
        />
      )}
    />
  );
  // the secret beside the client it belongs to
  const at = fields.findIndex((f) => f.key === "clientId");
  const rows = fields.map(control);
  rows.splice(at < 0 ? rows.length : at + 1, 0, secretRow);
  return (
    <fieldset aria-describedby={errors.oauth2 ? "oauth2-error" : undefined}>
      <legend>OAuth2</legend>
      {errors.oauth2 && (
        <p id="oauth2-error" className="error-text small">
          {errors.oauth2.join("; ")}
        </p>
      )}
      {rows}
      {draft.grantType === "authorization_code" && (
        <p className="muted small">
          Register this redirect URI for the client at the provider: <code>{redirectUri(window.location.href)}</code>. After saving, Connect
          signs in there and stores the tokens.
        </p>
      )}
    </fieldset>
  );
}
