/**
 * Analytics (a module of the demo's launch spec): reads the durable topic `/alerts` as the durable
 * consumer `analytics` — every alert once, acknowledged after it is counted, none lost while this
 * node is down — and publishes a summary on `/analytics/summary` (std_msgs/String) every 5 s.
 */
import { std_msgs, type LaunchContext, type Node } from "myelin";

/** Starts the analytics node; returns its stop function. */
export async function runAnalytics(node: Node, ctx: LaunchContext): Promise<() => Promise<void>> {
  const summary = await node.createPublisher("/analytics/summary", std_msgs.String, {
    qos: { durability: "transient-local", depth: 1 },
  });
  const consumer = node.createDurableConsumer("/alerts", std_msgs.String, {
    name: "analytics",
    startAt: "first",
  });
  const counts = new Map<string, number>();
  let total = 0;
  void (async () => {
    for await (const m of consumer) {
      try {
        const a = JSON.parse(m.msg.data) as { camera?: string; class?: string };
        const key = `${a.camera ?? "?"}/${a.class ?? "?"}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      } catch {
        counts.set("unreadable", (counts.get("unreadable") ?? 0) + 1);
      }
      total++;
      await m.ack();
      if (ctx.signal.aborted) break;
    }
  })().catch((err: unknown) => console.error(`analytics stopped reading /alerts: ${(err as Error).message}`));
  const timer = setInterval(() => {
    const text = `alerts: ${total} (${[...counts].map(([k, v]) => `${k} ${v}`).join(", ") || "none yet"})`;
    console.log(text);
    void summary.publish({ data: text });
  }, 5000);
  return () => {
    clearInterval(timer);
    return consumer.close();
  };
}
