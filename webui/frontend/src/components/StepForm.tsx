import Form from "@rjsf/core";
import type { RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";

type Schema = Record<string, unknown>;

/**
 * The schema as a form shows it: a value may always be an expression (`${ ... }`), so
 * "string or null" and "duration string or integer" become a plain text field, untyped
 * values a text field too, and patterns are left to the server's validation.
 */
export function formSchema(schema: Schema): Schema {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (!node || typeof node !== "object") return node;
    const s = { ...(node as Schema) };
    for (const k of ["properties", "$defs", "definitions"]) {
      if (s[k] && typeof s[k] === "object") {
        s[k] = Object.fromEntries(Object.entries(s[k] as Schema).map(([n, v]) => [n, walk(v)]));
      }
    }
    if (s.items) s.items = walk(s.items);
    if (typeof s.additionalProperties === "object") s.additionalProperties = walk(s.additionalProperties);
    const union = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
    if (Array.isArray(union)) {
      const nonNull = union.filter((u) => u.type !== "null");
      const pick = nonNull.length === 1 ? nonNull[0] : nonNull.find((u) => u.type === "string");
      if (pick) {
        delete s.anyOf;
        delete s.oneOf;
        Object.assign(s, walk(pick), { title: s.title ?? pick.title, description: s.description ?? pick.description });
        if (s.default === null) delete s.default;
      }
    }
    delete s.pattern;
    if (!s.type && !s.anyOf && !s.oneOf && !s.allOf && !s.enum && !s.$ref && !("const" in s) && !s.properties) s.type = "string";
    return s;
  };
  return walk(schema) as Schema;
}

/** The action's parameters as a form from its JSON Schema (rjsf). */
export default function StepForm({
  schema,
  value,
  onChange,
  idPrefix,
}: {
  schema: Record<string, unknown>;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  idPrefix: string;
}) {
  const s = formSchema(schema) as RJSFSchema;
  delete (s as Record<string, unknown>).title;
  return (
    <Form
      schema={s}
      formData={value}
      validator={validator}
      idPrefix={idPrefix}
      noHtml5Validate
      showErrorList={false}
      uiSchema={{ "ui:submitButtonOptions": { norender: true } }}
      experimental_defaultFormStateBehavior={{ emptyObjectFields: "skipDefaults" }}
      onChange={(e) => onChange((e.formData ?? {}) as Record<string, unknown>)}
    />
  );
}
