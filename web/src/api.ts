/** The hub's JSON actions (POST /api/<op>); errors come back with the code and message the CLI gives. */

/** An action the hub refused: `code` is one of Myelin's error codes (docs/errors.md). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Runs action `op` with `body`; resolves to its result. */
export async function post<T = unknown>(op: string, body: Record<string, unknown>): Promise<T> {
  const res = await fetch(`api/${op}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const json = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  if (!res.ok || json.error !== undefined) {
    throw new ApiError(json.error?.code ?? `HTTP ${res.status}`, json.error?.message ?? res.statusText);
  }
  return json as T;
}

/** GET /api/<op>. */
export async function get<T = unknown>(op: string): Promise<T> {
  const res = await fetch(`api/${op}`, { credentials: "same-origin" });
  if (!res.ok) throw new ApiError(`HTTP ${res.status}`, res.statusText);
  return (await res.json()) as T;
}
