import { useQuery } from "@tanstack/react-query";
import { get, type Template } from "../api";
import { href } from "../router";

export const loadTemplates = (): Promise<Template[]> => get<{ items: Template[] }>("/templates").then((r) => r.items);

/** The template gallery of the New workflow page: each card opens the builder with it. */
export function TemplateGallery() {
  const list = useQuery({ queryKey: ["templates"], queryFn: loadTemplates, staleTime: Infinity });
  return (
    <details className="gallery">
      <summary>Start from a template{list.data ? ` (${list.data.length})` : ""}</summary>
      {list.isError && <p role="alert">{list.error.message}</p>}
      <ul className="gallery-cards" aria-label="Templates">
        {(list.data ?? []).map((t) => (
          <li key={t.name} className="gallery-card">
            <h3>{t.title}</h3>
            {t.category && <span className="badge">{t.category}</span>}
            <p className="small">{t.description}</p>
            <p className="small">
              {t.integrations.map((i) => (
                <span key={i} className="badge muted">
                  {i}
                </span>
              ))}
            </p>
            <a className="button primary" href={href("new", t.name)} aria-label={`Use template ${t.title}`}>
              Use
            </a>
          </li>
        ))}
      </ul>
    </details>
  );
}
