import { yaml } from "@codemirror/lang-yaml";
import { EditorView, basicSetup } from "codemirror";
import { useEffect, useRef } from "react";

/** CodeMirror 6 over the Workflow text; changes from outside replace the document. */
export default function YamlEditor({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const change = useRef(onChange);
  change.current = onChange;
  useEffect(() => {
    const v = new EditorView({
      doc: value,
      parent: host.current!,
      extensions: [
        basicSetup,
        yaml(),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) change.current(u.state.doc.toString());
        }),
        EditorView.contentAttributes.of({ "aria-label": "Workflow YAML" }),
      ],
    });
    view.current = v;
    // the whole text for tests and tools (CodeMirror renders only the visible lines)
    (host.current as HTMLDivElement & { yamlText?: () => string }).yamlText = () => v.state.doc.toString();
    return () => v.destroy();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);
  return <div className="yaml-editor" ref={host} data-testid="yaml-editor" />;
}
