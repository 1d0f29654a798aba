/**
 * Load for the dashboard benchmark: `node dist/bench/dashboard-load.js NODES TOPICS_PER_NODE PREFIX`
 * starts NODES nodes in this process, each publishing TOPICS_PER_NODE topics at 1 Hz and
 * subscribing to one topic of the next node, then prints `ready`. Stops on SIGTERM or when its
 * parent is gone.
 */
import { createNode, std_msgs, type Node, type Publisher } from "../src/index.js";

const [nodesArg, perArg, prefix] = process.argv.slice(2);
const nodes: Node[] = [];
const pubs: Publisher<{ data: string }>[] = [];
const n = Number(nodesArg);
const per = Number(perArg);
for (let i = 0; i < n; i++) {
  const node = await createNode({ name: `${prefix}_n${i}` });
  nodes.push(node);
  for (let k = 0; k < per; k++)
    pubs.push(await node.createPublisher(`/${prefix}/n${i}/t${k}`, std_msgs.String));
  await node.createSubscription(`/${prefix}/n${(i + 1) % n}/t0`, std_msgs.String, () => {});
}
const timer = setInterval(() => {
  for (const p of pubs) void p.publish({ data: "x" }).catch(() => undefined);
}, 1000);
const stop = async (): Promise<void> => {
  clearInterval(timer);
  await Promise.all(nodes.map((x) => x.close().catch(() => undefined)));
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("disconnect", () => void stop());
console.log("ready");
