import { describe, expect, it } from "vitest";
import { oauthOutcome, oauthState } from "./oauth";

describe("oauthState", () => {
  it("offers a connection for the authorization-code grant only", () => {
    expect(oauthState({ spec: {} })).toBe("none");
    expect(oauthState({ spec: { oauth2: { grantType: "client_credentials" } } })).toBe("none");
    expect(oauthState({ spec: { oauth2: { grantType: "authorization_code" } }, secretKeys: ["clientSecret"] })).toBe("not connected");
    expect(oauthState({ spec: { oauth2: { grantType: "authorization_code" } }, secretKeys: ["clientSecret", "accessToken"] })).toBe(
      "connected",
    );
  });
});

describe("oauthOutcome", () => {
  it("reads what the callback sent back", () => {
    expect(oauthOutcome("#/integrations")).toBeNull();
    expect(oauthOutcome("#/integrations?connected=crm")).toEqual({ kind: "connected", name: "crm" });
    expect(oauthOutcome("#/integrations?oauthError=access_denied&integration=crm")).toEqual({
      kind: "refused",
      name: "crm",
      error: "access_denied",
    });
  });
});
