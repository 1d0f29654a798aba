/**
 * The dashboard's access token: made at start (or given), checked on every request in constant
 * time. The browser gets it once in the URL the hub prints (`/?token=…`), which sets an HttpOnly,
 * SameSite=Strict cookie; scripts send `Authorization: Bearer <token>`.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** The name of the cookie holding the token. */
export const TOKEN_COOKIE = "myelin_dashboard";

/** A new random token: 32 bytes, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** True if `given` equals `token`, compared in constant time. */
export function tokenMatches(token: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(token);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The token a request carries: `Authorization: Bearer`, then the cookie, then `?token=`. */
export function requestToken(req: IncomingMessage, url: URL): string | undefined {
  const auth = req.headers.authorization;
  if (auth !== undefined && /^Bearer\s+/i.test(auth)) return auth.replace(/^Bearer\s+/i, "").trim();
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === TOKEN_COOKIE)
      return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return url.searchParams.get("token") ?? undefined;
}

/** The Set-Cookie header value that stores `token` in the browser (for this server's paths only). */
export function tokenCookie(token: string, secure: boolean): string {
  return `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}
