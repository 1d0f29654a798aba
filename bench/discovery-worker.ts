/**
 * One process of the discovery benchmark (discovery.ts): creates its share of the nodes, each
 * publishing its topics, says when they are registered, and when every one of its nodes sees the
 * whole graph (all nodes, all publications). Driven over the fork IPC channel.
 */
import { createNode, std_msgs, type GraphSnapshot, type Node } from "../src/index.js";

/** What the parent sends to start. */
export interface DiscoveryJob {
  names: string[];
  /** Topics of node i: `/t/<firstTopic + i*topicsPerNode + k>`. */
  firstTopic: number;
  topicsPerNode: number;
  /** The whole graph: this many (non-hidden) nodes with this many publications in all. */
  expectNodes: number;
  expectPubs: number;
}

/** What the worker reports. */
export type DiscoveryReport =
  { t: "registered"; at: number } | { t: "whole"; at: number } | { t: "error"; message: string };

function whole(g: GraphSnapshot, job: DiscoveryJob): boolean {
  let nodes = 0;
  let pubs = 0;
  for (const n of g.nodes) {
    if (n.name.startsWith("_")) continue;
    nodes++;
    pubs += n.pubs.length;
  }
  return nodes === job.expectNodes && pubs === job.expectPubs;
}

const nodes: Node[] = [];
// The benchmark process died: do not outlive it.
process.on("disconnect", () => process.exit(1));
process.on("message", (m: { t: "start"; job: DiscoveryJob } | { t: "stop" }) => {
  if (m.t === "stop") {
    void Promise.all(nodes.map((n) => n.close())).then(() => process.exit(0));
    return;
  }
  const job = m.job;
  void (async () => {
    try {
      let i = 0;
      for (const name of job.names) {
        const node = await createNode({ name, registerTimeoutMs: 10000 });
        nodes.push(node);
        for (let k = 0; k < job.topicsPerNode; k++)
          await node.createPublisher(`/t/${job.firstTopic + i * job.topicsPerNode + k}`, std_msgs.UInt32);
        i++;
      }
      process.send!({ t: "registered", at: Date.now() } satisfies DiscoveryReport);
      await Promise.all(nodes.map((n) => n.waitForGraph((g) => whole(g, job), 120000)));
      process.send!({ t: "whole", at: Date.now() } satisfies DiscoveryReport);
    } catch (err) {
      process.send!({ t: "error", message: (err as Error).message } satisfies DiscoveryReport);
    }
  })();
});
