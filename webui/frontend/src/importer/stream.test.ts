import { describe, expect, it } from "vitest";
import { documentTexts, splitImport } from "./stream";

const STREAM = `# Imported from n8n (upload) by autoflow import n8n: 3 converted.
# Steps marked PLACEHOLDER stop the run until they are rewritten; see the report.
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: github-bugs-to-jira
spec:
  steps:
  - id: opened
    uses: core.condition
    with:
      value: \${ (inputs.body.action == 'opened') }
---
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata:
  name: jira-cloud
spec:
  type: jira
  secretRef:
    name: jira-cloud
  settings:
    site: CHANGE-ME
---
apiVersion: autoflow.dev/v1alpha1
kind: Schedule
metadata:
  name: nightly
spec:
  cron: "0 3 * * *"
  workflowRef: {name: github-bugs-to-jira}
`;

describe("splitImport", () => {
  it("keeps the Workflow's text with its header comments and splits out the rest", () => {
    const s = splitImport(STREAM);
    expect(s.errors).toEqual([]);
    expect(s.workflowName).toBe("github-bugs-to-jira");
    expect(s.workflow).toBe(STREAM.slice(0, STREAM.indexOf("---\n")));
    expect(s.integrations).toEqual([
      { name: "jira-cloud", spec: { type: "jira", secretRef: { name: "jira-cloud" }, settings: { site: "CHANGE-ME" } } },
    ]);
    expect(s.schedules).toHaveLength(1);
    expect(s.schedules[0]).toContain("cron: \"0 3 * * *\"");
  });

  it("says when there is no Workflow or a document is broken", () => {
    const s = splitImport("kind: Integration\nmetadata: {name: a}\nspec: {type: http}\n---\nkind: [\n");
    expect(s.workflow).toBeNull();
    expect(s.integrations.map((i) => i.name)).toEqual(["a"]);
    expect(s.errors.length).toBeGreaterThan(0);
  });
});

describe("documentTexts", () => {
  it("cuts only at document markers, not at a --- inside a block scalar", () => {
    const stream = "a: 1\n---\nb: |\n  ---\n  text\n--- \nc: 3";
    expect(documentTexts(stream)).toEqual(["a: 1\n", "b: |\n  ---\n  text\n", "c: 3"]);
  });
});
