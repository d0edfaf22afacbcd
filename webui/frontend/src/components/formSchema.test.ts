import { describe, expect, it } from "vitest";
import { formSchema } from "./StepForm";

describe("form schema", () => {
  it("shows nullable and duration fields as text, untyped values as text, no patterns", () => {
    const out = formSchema({
      type: "object",
      required: ["duration"],
      properties: {
        baseUrl: { anyOf: [{ type: "string" }, { type: "null" }], default: null, title: "Baseurl" },
        duration: {
          anyOf: [{ type: "string", pattern: "^[0-9]+s$" }, { type: "integer", minimum: 0 }],
          description: "How long",
        },
        message: { title: "Message" },
        level: { enum: ["info", "error"], default: "info" },
        port: { type: "integer", default: 5432 },
      },
    }) as { properties: Record<string, Record<string, unknown>>; required: string[] };
    expect(out.properties.baseUrl).toEqual({ type: "string", title: "Baseurl", description: undefined });
    expect(out.properties.duration).toEqual({ type: "string", title: undefined, description: "How long" });
    expect(out.properties.message).toEqual({ type: "string", title: "Message" });
    expect(out.properties.level).toEqual({ enum: ["info", "error"], default: "info" });
    expect(out.properties.port).toEqual({ type: "integer", default: 5432 });
    expect(out.required).toEqual(["duration"]);
  });
});
