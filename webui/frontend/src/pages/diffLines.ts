// A unified diff (as the assistant answers it) as lines to colour: added, removed, a hunk
// header, or context. The file header lines (`--- a/…`, `+++ b/…`) are headers, not changes.

export type DiffKind = "add" | "del" | "hunk" | "context";
export interface DiffLine {
  kind: DiffKind;
  text: string;
}

export function diffLines(diff: string, whole: string): DiffLine[] {
  if (!diff.trim()) return whole.split("\n").map((text) => ({ kind: "context", text }));
  const lines = diff.replace(/\n$/, "").split("\n");
  return lines.map((text, i) => {
    const header = i < 2 && (text.startsWith("--- ") || text.startsWith("+++ "));
    if (header || text.startsWith("@@")) return { kind: "hunk", text };
    if (text.startsWith("+")) return { kind: "add", text };
    if (text.startsWith("-")) return { kind: "del", text };
    return { kind: "context", text };
  });
}
