// The OAuth2 connect flow as the Integrations page sees it: which Integrations a person
// connects (authorization-code grant), whether one is connected (a stored access token: the
// API lists the stored secret keys, never their values), and the outcome the API's callback
// sends back in the page's address (#/integrations?connected=NAME or ?oauthError=…).

export interface OAuthView {
  spec: { oauth2?: { grantType?: string } | null; [k: string]: unknown };
  secretKeys?: string[];
}

export type OAuthState = "none" | "connected" | "not connected";

export function oauthState(i: OAuthView): OAuthState {
  if (i.spec.oauth2?.grantType !== "authorization_code") return "none";
  return (i.secretKeys ?? []).includes("accessToken") ? "connected" : "not connected";
}

export type OAuthOutcome = { kind: "connected"; name: string } | { kind: "refused"; name: string; error: string } | null;

/** The outcome in a location hash such as `#/integrations?connected=crm`. */
export function oauthOutcome(hash: string): OAuthOutcome {
  const q = new URLSearchParams(hash.split("?")[1] ?? "");
  const connected = q.get("connected");
  if (connected) return { kind: "connected", name: connected };
  const error = q.get("oauthError");
  if (error) return { kind: "refused", name: q.get("integration") ?? "", error };
  return null;
}
