/** An instant as the wall clock of `tz` shows it, with the zone's short name ("CEST"), in the
 * reader's locale unless one is given; the ISO text itself when the zone is unknown here. */
export function inZone(iso: string | null | undefined, tz: string | undefined, locale?: string): string {
  if (!iso) return "—";
  try {
    return new Date(iso).toLocaleString(locale, { timeZone: tz || "UTC", timeZoneName: "short" });
  } catch {
    return iso;
  }
}
