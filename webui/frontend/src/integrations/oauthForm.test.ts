import { describe, expect, it } from "vitest";
import { blockOf, draftOf, formKey, isRequired, oauth2Fields, placeProblems, redirectUri, usesOAuth2 } from "./oauthForm";

// The shape pydantic gives the Integration kind (GET /api/schemas): references into $defs,
// optional values as "X or null", titles and descriptions on the fields.
const INTEGRATION = {
  type: "object",
  properties: { spec: { $ref: "#/$defs/IntegrationSpec" } },
  $defs: {
    IntegrationSpec: {
      type: "object",
      properties: {
        type: { type: "string" },
        oauth2: { anyOf: [{ $ref: "#/$defs/OAuth2" }, { type: "null" }], default: null },
      },
    },
    OAuth2: {
      type: "object",
      required: ["grantType", "tokenUrl", "clientId"],
      properties: {
        grantType: { enum: ["client_credentials", "authorization_code"], title: "Grant type", type: "string", description: "Which grant." },
        tokenUrl: { type: "string", maxLength: 2048, title: "Token URL", description: "The token endpoint." },
        authorizeUrl: { anyOf: [{ type: "string", maxLength: 2048 }, { type: "null" }], default: null, title: "Authorization URL" },
        clientId: { type: "string", title: "Client ID" },
        scopes: { type: "array", items: { type: "string", maxLength: 256 }, title: "Scopes" },
        clientAuthMethod: { enum: ["client_secret_basic", "client_secret_post"], default: "client_secret_basic", type: "string" },
      },
    },
  },
};

describe("oauth2Fields", () => {
  it("reads labels, help, required marks and choices from the Integration schema", () => {
    const fields = oauth2Fields(INTEGRATION);
    expect(fields.map((f) => f.key)).toEqual(["grantType", "tokenUrl", "authorizeUrl", "clientId", "scopes", "clientAuthMethod"]);
    expect(fields[0]).toEqual({
      key: "grantType",
      label: "Grant type",
      help: "Which grant.",
      required: true,
      kind: "choice",
      options: ["client_credentials", "authorization_code"],
    });
    expect(fields[1]).toMatchObject({ label: "Token URL", help: "The token endpoint.", required: true, kind: "text", maxLength: 2048 });
    expect(fields[2]).toMatchObject({ label: "Authorization URL", required: false, kind: "text", maxLength: 2048 });
    expect(fields[4]).toMatchObject({ kind: "list", required: false });
    expect(fields[5]).toMatchObject({ label: "clientAuthMethod", kind: "choice", default: "client_secret_basic" });
    expect(oauth2Fields(undefined)).toEqual([]);
  });

  it("asks for the authorization URL when a person connects (authorization_code)", () => {
    const authorize = oauth2Fields(INTEGRATION)[2];
    expect(isRequired(authorize, { grantType: "client_credentials" })).toBe(false);
    expect(isRequired(authorize, { grantType: "authorization_code" })).toBe(true);
  });
});

describe("usesOAuth2", () => {
  const http = { auth: null, settingsSchema: { properties: { auth: { enum: ["none", "oauth2"] } } } };
  it("follows the connector's scheme, else the settings' auth, else what the Integration has", () => {
    expect(usesOAuth2({ auth: "oauth2", settingsSchema: {} }, {}, null)).toBe(true);
    expect(usesOAuth2(http, { auth: "oauth2" }, null)).toBe(true);
    expect(usesOAuth2(http, { auth: "bearer" }, { grantType: "authorization_code" })).toBe(false);
    expect(usesOAuth2({ auth: "bearer", settingsSchema: {} }, {}, null)).toBe(false);
    expect(usesOAuth2(undefined, {}, { grantType: "client_credentials" })).toBe(true);
  });
});

describe("the block as text and back", () => {
  const fields = oauth2Fields(INTEGRATION);
  it("shows lists as words and stores words as a list", () => {
    const stored = { grantType: "authorization_code", tokenUrl: "https://p/token", clientId: "app", scopes: ["api", "refresh_token"] };
    expect(draftOf(stored)).toEqual({ grantType: "authorization_code", tokenUrl: "https://p/token", clientId: "app", scopes: "api refresh_token" });
    expect(blockOf(fields, draftOf(stored), stored)).toEqual(stored);
    expect(draftOf(null)).toEqual({});
  });

  it("trims what was typed, leaves empty fields out and keeps what the form has no field for", () => {
    const previous = { tokenSecretName: "crm-tokens", authorizeUrl: "https://p/old", scopes: ["x"] };
    const draft = { grantType: "client_credentials", tokenUrl: " https://p/token ", clientId: "app", authorizeUrl: "", scopes: "  " };
    expect(blockOf(fields, draft, previous)).toEqual({
      tokenSecretName: "crm-tokens",
      grantType: "client_credentials",
      tokenUrl: "https://p/token",
      clientId: "app",
    });
  });
});

describe("placeProblems", () => {
  const keys = ["name", "description", "settings", "oauth2", "oauth2.tokenUrl", "oauth2.scopes", "secrets.clientSecret"];
  it("puts each problem at the control its field path names", () => {
    const at = (field: string | null, message = "bad") => ({ message, field, path: "", resource: "Integration/crm", step: null });
    const placed = placeProblems(
      [
        at("spec.oauth2.scopes[0]", "String should have at most 256 characters"),
        at("spec.oauth2.tokenUrl", "required field is missing"),
        at("spec.oauth2", "Input should be an object"),
        at("spec.settings.auth"),
        at("name"),
        at("spec.rateLimit.requests"),
        at(null, "no field"),
      ],
      keys,
    );
    expect(placed.byKey).toEqual({
      "oauth2.scopes": ["String should have at most 256 characters"],
      "oauth2.tokenUrl": ["required field is missing"],
      oauth2: ["Input should be an object"],
      settings: ["bad"],
      name: ["bad"],
    });
    expect(placed.rest.map((p) => p.field)).toEqual(["spec.rateLimit.requests", null]);
  });

  it("reads a field path in the form's words", () => {
    expect(formKey("spec.oauth2.scopes[12]")).toBe("oauth2.scopes");
    expect(formKey("secrets.clientSecret")).toBe("secrets.clientSecret");
  });
});

describe("redirectUri", () => {
  it("is the API's callback on the page's origin", () => {
    expect(redirectUri("http://127.0.0.1:8080/#/integrations")).toBe("http://127.0.0.1:8080/api/oauth/callback");
  });
});
