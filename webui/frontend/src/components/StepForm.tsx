import Form from "@rjsf/core";
import type { RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";

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
  const s = { ...schema } as RJSFSchema;
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
