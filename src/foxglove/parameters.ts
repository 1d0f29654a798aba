/**
 * Node parameters as Foxglove parameters. Parameter `fps` of node `camera` is `/camera/fps`; the
 * values are read and set through the node's parameter protocol (`/<node>/list_parameters` and
 * `/<node>/set_parameter`, as `myelin param` does), so every node with parameters is reachable. A `double`
 * parameter is marked `float64` (and `double[]` `float64_array`) so a viewer keeps 15.0 a float.
 * Watching is done by reading the watched nodes again every `pollMs` and reporting what changed.
 */
import type { Parameter } from "@foxglove/ws-protocol";
import {
  graphServes,
  parameterClient,
  parameterProtocol,
  type GraphSnapshot,
  type Node,
  type ParameterClient,
} from "../node/index.js";

/** Values read, and what could not be read or set (one line each, naming the parameter or node). */
export interface ParameterResult {
  parameters: Parameter[];
  errors: string[];
}

/** Splits `/camera/fps` into node and parameter; undefined when it is not of that form. */
export function splitParameterName(name: string): { node: string; param: string } | undefined {
  const m = /^\/?([A-Za-z_][A-Za-z0-9_.-]*)\/(.+)$/.exec(name);
  return m === null ? undefined : { node: m[1]!, param: m[2]! };
}

function toFoxglove(node: string, name: string, kind: string, valueJson: string): Parameter {
  const value = JSON.parse(valueJson) as Parameter["value"];
  const p: Parameter = { name: `/${node}/${name}`, value };
  if (kind === "double") p.type = "float64";
  if (kind === "double[]") p.type = "float64_array";
  return p;
}

/** Reads and sets node parameters through their services. */
export class ParameterAccess {
  readonly #node: Node;
  readonly #timeoutMs: number;
  readonly #clients = new Map<string, ParameterClient>();

  constructor(node: Node, timeoutMs: number) {
    this.#node = node;
    this.#timeoutMs = timeoutMs;
  }

  /** Names of the nodes of `g` that serve their parameters (hidden nodes left out). */
  static nodesWithParameters(g: GraphSnapshot | undefined): string[] {
    const out = new Set<string>();
    for (const n of g?.nodes ?? []) {
      if (n.name.startsWith("_")) continue;
      if (graphServes(g, parameterProtocol(n.name).list)) out.add(n.name);
    }
    return [...out].sort();
  }

  /** The parameter client of node `name` (made once). */
  #client(name: string): ParameterClient {
    let c = this.#clients.get(name);
    if (c === undefined) {
      c = parameterClient(this.#node, name, { timeoutMs: this.#timeoutMs, breaker: false });
      this.#clients.set(name, c);
    }
    return c;
  }

  /** Every parameter of `node`. @throws when the node does not answer */
  async #read(node: string): Promise<Parameter[]> {
    const r = await this.#client(node).list({});
    return r.names.map((n, i) => toFoxglove(node, n, r.kinds[i] ?? "", r.values_json[i] ?? "null"));
  }

  /**
   * The values of `names` (`/node/param`), or of every parameter of the nodes in `g` when `names`
   * is empty. A name that matches nothing is an error line, not a failure of the whole request.
   */
  async get(names: readonly string[], g: GraphSnapshot | undefined): Promise<ParameterResult> {
    const errors: string[] = [];
    const nodes = new Set<string>();
    if (names.length === 0) {
      for (const n of ParameterAccess.nodesWithParameters(g)) nodes.add(n);
    } else {
      for (const name of names) {
        const s = splitParameterName(name);
        if (s === undefined)
          errors.push(`${name}: not a parameter name; they read /<node>/<parameter>, e.g. /camera/fps`);
        else nodes.add(s.node);
      }
    }
    const serving = new Set(ParameterAccess.nodesWithParameters(g));
    const all: Parameter[] = [];
    await Promise.all(
      [...nodes].map(async (n) => {
        if (!serving.has(n)) {
          errors.push(`node ${n} has no parameters (or does not run)`);
          return;
        }
        try {
          all.push(...(await this.#read(n)));
        } catch (err) {
          errors.push(`cannot read the parameters of node ${n}: ${(err as Error).message}`);
        }
      }),
    );
    if (names.length === 0) return { parameters: all.sort((a, b) => a.name.localeCompare(b.name)), errors };
    const byName = new Map(all.map((p) => [p.name, p]));
    const parameters: Parameter[] = [];
    for (const name of names) {
      const s = splitParameterName(name);
      if (s === undefined || !serving.has(s.node)) continue;
      const p = byName.get(`/${s.node}/${s.param}`);
      if (p !== undefined) parameters.push(p);
      else if (all.some((x) => x.name.startsWith(`/${s.node}/`)))
        errors.push(`${name}: node ${s.node} has no parameter ${s.param}`);
    }
    return { parameters, errors };
  }

  /**
   * Sets each parameter in turn; returns the values after setting (those that were set) and one
   * error line per refusal (with the node's reason).
   */
  async set(params: readonly Parameter[]): Promise<ParameterResult> {
    const errors: string[] = [];
    const parameters: Parameter[] = [];
    for (const p of params) {
      const s = splitParameterName(p.name);
      if (s === undefined) {
        errors.push(`${p.name}: not a parameter name; they read /<node>/<parameter>, e.g. /camera/fps`);
        continue;
      }
      if (p.value === undefined) {
        errors.push(`${p.name}: a node's parameters cannot be unset; give a value`);
        continue;
      }
      if (p.type === "byte_array") {
        errors.push(
          `${p.name}: byte_array values are not supported; node parameters are bool, int, double, string or arrays of them`,
        );
        continue;
      }
      try {
        const r = await this.#client(s.node).set({ name: s.param, value_json: JSON.stringify(p.value) });
        if (!r.success) {
          errors.push(`${p.name}: refused by node ${s.node}: ${r.reason}`);
          continue;
        }
        const out: Parameter = {
          name: `/${s.node}/${s.param}`,
          value: JSON.parse(r.value_json) as Parameter["value"],
        };
        if (p.type !== undefined) out.type = p.type;
        parameters.push(out);
      } catch (err) {
        errors.push(`${p.name}: cannot set it on node ${s.node}: ${(err as Error).message}`);
      }
    }
    return { parameters, errors };
  }

  /** Closes the clients of nodes no longer in `g`. */
  prune(g: GraphSnapshot): void {
    const live = new Set(g.nodes.map((n) => n.name));
    for (const [n, c] of this.#clients) {
      if (live.has(n)) continue;
      c.close();
      this.#clients.delete(n);
    }
  }

  /** Closes every service client. */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
