import { describe, expect, it } from "vitest";
import { diffLines } from "./diffLines";

describe("diffLines", () => {
  it("tells file headers and hunks from changed lines", () => {
    const diff = "--- a/workflow.yaml\n+++ b/workflow.yaml\n@@ -1,2 +1,2 @@\n kind: Workflow\n-  message: hi\n+  message: hello\n";
    expect(diffLines(diff, "").map((l) => l.kind)).toEqual(["hunk", "hunk", "hunk", "context", "del", "add"]);
  });

  it("keeps a removed line that starts like a header as a change after the file header", () => {
    const diff = "--- a/w.yaml\n+++ b/w.yaml\n@@ -1 +1 @@\n--- \n+++ \n";
    expect(diffLines(diff, "").map((l) => l.kind)).toEqual(["hunk", "hunk", "hunk", "del", "add"]);
  });

  it("shows the whole text as context when there is no diff", () => {
    expect(diffLines("", "a\nb")).toEqual([
      { kind: "context", text: "a" },
      { kind: "context", text: "b" },
    ]);
  });
});
