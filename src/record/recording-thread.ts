/**
 * The recorder's recording thread: runs a {@link RecordingSink} on the requests the receiving thread
 * posts (raw message batches, topics, counters, close) and posts its replies back. The receiving
 * thread then only copies each message's bytes into a batch.
 */
import { parentPort, workerData } from "node:worker_threads";
import { RecordingSink, type SinkOptions, type SinkReply, type SinkRequest } from "./recording-sink.js";

async function main(): Promise<void> {
  const port = parentPort!;
  const reply = (r: SinkReply, transfer?: ArrayBuffer[]): void => port.postMessage(r, transfer);
  let sink: RecordingSink;
  // Requests that arrive while the first file opens wait for it.
  const early: SinkRequest[] = [];
  let ready = false;
  port.on("message", (m: SinkRequest) => {
    if (ready) sink.post(m);
    else early.push(m);
  });
  try {
    sink = await RecordingSink.start(workerData as SinkOptions, reply);
  } catch (err) {
    reply({ op: "error", message: (err as Error).message });
    port.close();
    return;
  }
  ready = true;
  reply({ op: "opened" });
  for (const m of early) sink.post(m);
}

void main();
