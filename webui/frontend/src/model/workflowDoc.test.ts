import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as wd from "./workflowDoc";

const TRIAGE = readFileSync(new URL("./order-triage.fixture.yaml", import.meta.url), "utf8");

const COMMENTED = `# Notify the team about new orders.
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: notify   # the name kubectl shows
spec:
  steps:
    # fetch first
    - id: fetch
      uses: http.request
      with:
        url: "https://shop.example/orders"   # keep quoted
        method: GET

    - id: post
      uses: slack.postMessage
      with:
        channel: '#orders'
        text: >-
          New orders: \${ len(steps.fetch.output.body) }
`;

/** the lines of \`after\` that are not in \`before\` and the reverse, as sets */
function changedLines(before: string, after: string): { added: string[]; removed: string[] } {
  const b = before.split("\n");
  const a = after.split("\n");
  return { added: a.filter((l) => !b.includes(l)), removed: b.filter((l) => !a.includes(l)) };
}

describe("workflow document", () => {
  it("an edit that changes nothing keeps the text byte for byte", () => {
    expect(wd.edit(TRIAGE, () => {})).toBe(TRIAGE);
    expect(wd.edit(COMMENTED, () => {})).toBe(COMMENTED);
  });

  it("reads steps and needs, implicit needs being the step before", () => {
    const g = wd.graphOf(wd.parse(TRIAGE));
    expect(g.name).toBe("order-triage");
    expect(g.steps.map((s) => s.id)).toEqual(["summary", "big", "announce", "route", "escalate"]);
    expect(g.edges).toEqual([
      { source: "big", target: "announce" },
      { source: "summary", target: "route" },
      { source: "big", target: "route" },
      { source: "route", target: "escalate" },
    ]);
    expect(g.steps[4].explicitNeeds).toBe(false);
  });

  it("keeps every comment and every other byte when a step's parameter changes on the canvas", () => {
    const out = wd.edit(COMMENTED, (d) => wd.setStepField(d, "post", "with", { channel: "#orders", text: "changed" }));
    // everything before the changed step, comments and odd spacing included, is the same bytes
    const cut = COMMENTED.indexOf("    - id: post");
    expect(out.slice(0, cut)).toBe(COMMENTED.slice(0, cut));
    expect(out.slice(cut)).toBe("    - id: post\n      uses: slack.postMessage\n      with:\n        channel: '#orders'\n        text: >-\n          changed\n");
  });

  it("writes a position into the step's ui and nothing else", () => {
    const out = wd.edit(TRIAGE, (d) => wd.setPosition(d, "big", { x: 120.4, y: 80.6 }));
    expect(changedLines(TRIAGE, out)).toEqual({ added: ["      ui: {x: 120, y: 81}"], removed: [] });
    expect(wd.graphOf(wd.parse(out)).steps[1].position).toEqual({ x: 120, y: 81 });
  });

  it("connects two steps by adding to needs, refusing cycles", () => {
    let out = wd.edit(COMMENTED, (d) => wd.addStep(d, { id: "log", uses: "core.log", position: { x: 0, y: 200 } }));
    expect(out.startsWith(COMMENTED.trimEnd())).toBe(true);
    out = wd.edit(out, (d) => expect(wd.connect(d, "post", "log")).toBe(true));
    expect(out).toContain("    - id: log\n      uses: core.log\n      needs: [post]\n");
    out = wd.edit(out, (d) => expect(wd.connect(d, "log", "fetch")).toBe(false));
    expect(wd.graphOf(wd.parse(out)).edges).toEqual([
      { source: "fetch", target: "post" },
      { source: "post", target: "log" },
    ]);
    expect(out).toContain("# fetch first");
    expect(out).toContain("# keep quoted");
  });

  it("disconnecting an implicit edge writes needs out", () => {
    const out = wd.edit(COMMENTED, (d) => wd.disconnect(d, "fetch", "post"));
    expect(wd.graphOf(wd.parse(out)).edges).toEqual([]);
    expect(changedLines(COMMENTED, out).added).toEqual(["      needs: []"]);
  });

  it("removing a step keeps the rest of the DAG and drops it from needs", () => {
    const out = wd.edit(TRIAGE, (d) => wd.removeStep(d, "route"));
    const g = wd.graphOf(wd.parse(out));
    expect(g.steps.map((s) => s.id)).toEqual(["summary", "big", "announce", "escalate"]);
    // escalate needed route implicitly: now it needs nothing that is gone
    expect(g.steps[3].needs).toEqual([]);
    expect(out).toContain("# Triage a batch of orders");
  });

  it("adds the first step to a blank workflow as a block list", () => {
    const out = wd.edit(wd.BLANK("hello"), (d) => wd.addStep(d, { id: "say", uses: "core.log", with: { message: "hi" } }));
    expect(out).toContain("  steps:\n    - id: say\n      uses: core.log\n      needs: []\n      with:\n        message: hi\n");
  });

  it("renames a step and the needs that name it", () => {
    const out = wd.edit(TRIAGE, (d) => wd.renameStep(d, "big", "large"));
    const g = wd.graphOf(wd.parse(out));
    expect(g.edges).toContainEqual({ source: "large", target: "route" });
    expect(g.edges).toContainEqual({ source: "large", target: "announce" });
  });

  it("gives fresh ids", () => {
    const d = wd.parse(TRIAGE);
    expect(wd.freshId(d, "core.log")).toBe("log");
    wd.addStep(d, { id: "log", uses: "core.log" });
    expect(wd.freshId(d, "core.log")).toBe("log2");
  });
});
