import { describe, expect, it } from "vitest";
import { inZone } from "./scheduleTime";

describe("inZone", () => {
  it("shows the schedule's own wall clock, summer and winter", () => {
    // 01:00 UTC on the spring-forward night is 03:00 CEST in Berlin; in January 02:30 CET.
    // (ICU builds differ on a leading zero of the hour.)
    expect(inZone("2027-03-28T01:00:00Z", "Europe/Berlin", "en-GB")).toMatch(/^28\/03\/2027, 0?3:00:00 CEST$/);
    expect(inZone("2027-01-10T01:30:00Z", "Europe/Berlin", "en-GB")).toMatch(/^10\/01\/2027, 0?2:30:00 CET$/);
    expect(inZone("2027-01-10T01:30:00Z", undefined, "en-GB")).toMatch(/^10\/01\/2027, 0?1:30:00 UTC$/);
  });
  it("keeps the instant readable when the zone is not known", () => {
    expect(inZone("2027-01-10T01:30:00Z", "Mars/Olympus", "en-GB")).toBe("2027-01-10T01:30:00Z");
    expect(inZone(null, "UTC")).toBe("—");
  });
});
