/**
 * In-process delivery: nodes in one process find each other's publishers, subscriptions and
 * services here, and deliver by a function call, with no encoding and no copy.
 */

const EMPTY: ReadonlySet<never> = new Set<never>();

/** Process-wide registry, generic over what the node layer stores. */
export class InprocRegistry<P, S, V> {
  readonly #pubs = new Map<string, Set<P>>();
  readonly #subs = new Map<string, Set<S>>();
  readonly #services = new Map<string, V[]>();
  #rr = 0;

  addPublisher(topic: string, p: P): void {
    let set = this.#pubs.get(topic);
    if (set === undefined) this.#pubs.set(topic, (set = new Set()));
    set.add(p);
  }
  removePublisher(topic: string, p: P): void {
    const set = this.#pubs.get(topic);
    set?.delete(p);
    if (set?.size === 0) this.#pubs.delete(topic);
  }
  publishers(topic: string): Iterable<P> {
    return this.#pubs.get(topic) ?? [];
  }
  addSubscription(topic: string, s: S): void {
    let set = this.#subs.get(topic);
    if (set === undefined) this.#subs.set(topic, (set = new Set()));
    set.add(s);
  }
  removeSubscription(topic: string, s: S): void {
    const set = this.#subs.get(topic);
    set?.delete(s);
    if (set?.size === 0) this.#subs.delete(topic);
  }
  subscriptions(topic: string): ReadonlySet<S> {
    return this.#subs.get(topic) ?? EMPTY;
  }
  addService(name: string, v: V): void {
    const list = this.#services.get(name) ?? [];
    list.push(v);
    this.#services.set(name, list);
  }
  removeService(name: string, v: V): void {
    const list = (this.#services.get(name) ?? []).filter((x) => x !== v);
    if (list.length === 0) this.#services.delete(name);
    else this.#services.set(name, list);
  }
  /** One server of `name` in this process, round-robin; undefined if none. */
  service(name: string): V | undefined {
    const list = this.#services.get(name);
    if (list === undefined || list.length === 0) return undefined;
    return list[this.#rr++ % list.length];
  }
}
