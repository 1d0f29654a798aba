/**
 * The hub's graph: every node record it knows, each with its origin (this hub's own nodes, or the
 * hub of another host that shares them), versioned, with the changes since the last delta kept
 * so that a change costs the size of the change, not of the graph.
 *
 * Two journals run side by side: the site journal (every change, sent to this host's nodes as
 * graph deltas) and the local journal (changes of this hub's own records only, sent to peer
 * hubs). A type index per topic and service answers "does this declaration conflict?" without a
 * scan of the graph. Pure state, no I/O.
 */
import type { NodeRecord, Refusal } from "../node/control-protocol.js";
import { describeNode } from "./node-names.js";

/** The origin of this hub's own records. */
export const LOCAL_ORIGIN = "";

/** Changes accumulated since the last `take()`, numbered by versions. */
export class ChangeJournal {
  #version = 0;
  readonly #upserts = new Map<string, NodeRecord>();
  readonly #removed = new Set<string>();

  /** The version of the last change taken. */
  get version(): number {
    return this.#version;
  }

  /** True when changes wait to be taken. */
  get pending(): boolean {
    return this.#upserts.size > 0 || this.#removed.size > 0;
  }

  /** Records that `record` was added or replaced. */
  upsert(record: NodeRecord): void {
    this.#removed.delete(record.id);
    this.#upserts.set(record.id, record);
  }

  /** Records that node `id` was removed. */
  remove(id: string): void {
    this.#upserts.delete(id);
    this.#removed.add(id);
  }

  /** The changes since the last call, as one step `from` → `version`; undefined when none. */
  take(): { from: number; version: number; upserts: NodeRecord[]; removed: string[] } | undefined {
    if (!this.pending) return undefined;
    const from = this.#version++;
    const out = {
      from,
      version: this.#version,
      upserts: [...this.#upserts.values()],
      removed: [...this.#removed],
    };
    this.#upserts.clear();
    this.#removed.clear();
    return out;
  }
}

interface Held {
  record: NodeRecord;
  origin: string;
}

/** Which nodes declare a name with which type, for conflict checks: name → type → node id → node name. */
class TypeIndex {
  readonly #byName = new Map<string, Map<string, Map<string, string>>>();

  add(name: string, type: string, id: string, nodeName: string): void {
    let types = this.#byName.get(name);
    if (types === undefined) this.#byName.set(name, (types = new Map()));
    let ids = types.get(type);
    if (ids === undefined) types.set(type, (ids = new Map()));
    ids.set(id, nodeName);
  }

  delete(name: string, type: string, id: string): void {
    const types = this.#byName.get(name);
    const ids = types?.get(type);
    if (types === undefined || ids === undefined) return;
    ids.delete(id);
    if (ids.size === 0) types.delete(type);
    if (types.size === 0) this.#byName.delete(name);
  }

  /** A type of `name` other than `type` declared by a node other than `id`, with that node's name. */
  other(name: string, type: string, id: string): { type: string; by: string } | undefined {
    const types = this.#byName.get(name);
    if (types === undefined) return undefined;
    for (const [t, ids] of types) {
      if (t === type) continue;
      for (const [other, by] of ids) if (other !== id) return { type: t, by };
    }
    return undefined;
  }
}

/** The graph a hub holds; see the file comment. */
export class GraphRegistry {
  readonly #held = new Map<string, Held>();
  readonly #byOrigin = new Map<string, Set<string>>();
  readonly #topics = new TypeIndex();
  readonly #services = new TypeIndex();
  /** Every change, for this host's nodes. */
  readonly site = new ChangeJournal();
  /** Changes of this hub's own records, for peer hubs. */
  readonly local = new ChangeJournal();

  /** Number of records. */
  get size(): number {
    return this.#held.size;
  }

  /** The record of node `id`, if held. */
  get(id: string): NodeRecord | undefined {
    return this.#held.get(id)?.record;
  }

  /** The origin of node `id` (LOCAL_ORIGIN or a peer hub's id), if held. */
  origin(id: string): string | undefined {
    return this.#held.get(id)?.origin;
  }

  /** Every record, in insertion order. */
  nodes(): NodeRecord[] {
    const out: NodeRecord[] = [];
    for (const h of this.#held.values()) out.push(h.record);
    return out;
  }

  /** The records of one origin. */
  nodesOf(origin: string): NodeRecord[] {
    const ids = this.#byOrigin.get(origin);
    if (ids === undefined) return [];
    const out: NodeRecord[] = [];
    for (const id of ids) out.push(this.#held.get(id)!.record);
    return out;
  }

  /** The ids of one origin's records. */
  idsOf(origin: string): string[] {
    return [...(this.#byOrigin.get(origin) ?? [])];
  }

  /**
   * Adds or replaces a record of `origin`. A record held under another origin is not touched (no
   * hub writes another's records): returns false then.
   */
  set(record: NodeRecord, origin: string): boolean {
    const old = this.#held.get(record.id);
    if (old !== undefined) {
      if (old.origin !== origin) return false;
      this.#unindex(old.record);
    }
    this.#held.set(record.id, { record, origin });
    let ids = this.#byOrigin.get(origin);
    if (ids === undefined) this.#byOrigin.set(origin, (ids = new Set()));
    ids.add(record.id);
    this.#index(record);
    this.site.upsert(record);
    if (origin === LOCAL_ORIGIN) this.local.upsert(record);
    return true;
  }

  /** Removes node `id` if `origin` holds it; returns the record removed. */
  delete(id: string, origin: string): NodeRecord | undefined {
    const old = this.#held.get(id);
    if (old === undefined || old.origin !== origin) return undefined;
    this.#held.delete(id);
    this.#unindex(old.record);
    const ids = this.#byOrigin.get(origin);
    ids?.delete(id);
    if (ids?.size === 0) this.#byOrigin.delete(origin);
    this.site.remove(id);
    if (origin === LOCAL_ORIGIN) this.local.remove(id);
    return old.record;
  }

  /**
   * Removes from `node` the declarations whose type conflicts with another node's, and returns
   * them as refusals. Costs the size of `node`, not of the graph.
   */
  conflicts(node: NodeRecord): Refusal[] {
    const refused: Refusal[] = [];
    const keep =
      <T extends { type: string }>(kind: Refusal["kind"], name: (d: T) => string, index: TypeIndex) =>
      (d: T): boolean => {
        const have = index.other(name(d), d.type, node.id);
        if (have === undefined) return true;
        refused.push({
          kind,
          name: name(d),
          code: "ERR_TYPE_MISMATCH",
          message: `${kind === "service" ? "service" : "topic"} ${name(d)} has type ${have.type} (from ${describeNode(have.by)}); ${describeNode(node.name)} used ${d.type}`,
        });
        return false;
      };
    node.pubs = node.pubs.filter(keep("pub", (d) => d.topic, this.#topics));
    node.subs = node.subs.filter(keep("sub", (d) => d.topic, this.#topics));
    node.services = node.services.filter(keep("service", (d) => d.service, this.#services));
    return refused;
  }

  #index(r: NodeRecord): void {
    for (const d of r.pubs) this.#topics.add(d.topic, d.type, r.id, r.name);
    for (const d of r.subs) this.#topics.add(d.topic, d.type, r.id, r.name);
    for (const s of r.services) this.#services.add(s.service, s.type, r.id, r.name);
  }

  #unindex(r: NodeRecord): void {
    for (const d of r.pubs) this.#topics.delete(d.topic, d.type, r.id);
    for (const d of r.subs) this.#topics.delete(d.topic, d.type, r.id);
    for (const s of r.services) this.#services.delete(s.service, s.type, r.id);
  }
}
