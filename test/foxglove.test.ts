/**
 * The hub's Foxglove WebSocket server, end to end: `myelin hub --foxglove-config` in its own
 * process, nodes of this process publishing (the demo camera among them), and
 * `@foxglove/ws-protocol`'s client speaking both subprotocols.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCamera } from "../examples/camera.js";
import { channelEncodingForSchema } from "../src/record/channel-encoding.js";
import { FOXGLOVE_PROTOCOL, fetchFoxgloveStatus, type FoxgloveStatus } from "../src/foxglove/index.js";
import {
  createNode,
  example_interfaces,
  geometry_msgs,
  sensor_msgs,
  std_msgs,
  type MessageOf,
  type Node,
} from "../src/index.js";
import { graphServes } from "../src/node/index.js";
import { runCli, startCliHub, world, type World } from "./cli-world.js";
import { RawClient, refusal, TestClient } from "./foxglove-client.js";

const TOKEN = "test-token-0123456789abcdef";
const WIDTH = 320;
const HEIGHT = 240;
const FRAME_BYTES = WIDTH * HEIGHT * 3;

interface Setup {
  w: World;
  port: number;
  url: string;
  nodes: Node[];
  status(): Promise<FoxgloveStatus>;
}

async function setup(t: TestContext): Promise<Setup> {
  const w = await world(t, "myelin-foxglove-");
  const config = join(w.dir, "foxglove.yaml");
  await writeFile(
    config,
    [
      'topics: ["/camera/**", "/chatter", "/cmd_vel"]',
      'publishTopics: ["/cmd_vel"]',
      "parameterPollMs: 200",
      "timeIntervalMs: 100",
    ].join("\n"),
  );
  const hub = await startCliHub(t, w, [
    "--no-store",
    "--foxglove-config",
    config,
    "--foxglove-port",
    "0",
    "--foxglove-token",
    TOKEN,
  ]);
  const line = await hub.waitFor(/Foxglove: open ws:\/\/127\.0\.0\.1:\d+/);
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
  assert.ok(line.includes(`?token=${TOKEN}`), line);
  const nodes: Node[] = [];
  t.after(async () => {
    for (const n of nodes) await n.close();
  });
  const camera = await createNode({
    name: "camera",
    runtimeDir: w.dir,
    parameters: { fps: 30, width: WIDTH, height: HEIGHT },
  });
  nodes.push(camera);
  const stopCamera = await runCamera(camera);
  t.after(stopCamera);
  const tool = await createNode({ name: "_test_tool", runtimeDir: w.dir });
  nodes.push(tool);
  await tool.waitForGraph((g) => graphServes(g, FOXGLOVE_PROTOCOL.status), 10000);
  return {
    w,
    port,
    url: `ws://127.0.0.1:${port}`,
    nodes,
    status: () => fetchFoxgloveStatus(tool, { timeoutMs: 5000 }),
  };
}

/** Polls the server's status until `pred` holds (there is no event for it); rejects after `timeoutMs`. */
async function statusUntil(
  s: Setup,
  pred: (st: FoxgloveStatus) => boolean,
  timeoutMs: number,
  what: string,
): Promise<FoxgloveStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await s.status();
    if (pred(st)) return st;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; status: ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("Foxglove server", { timeout: 120000 }, async (t) => {
  const s = await setup(t);

  await t.test("both subprotocols: the client lists channels and decodes camera frames", async () => {
    for (const proto of ["foxglove.websocket.v1", "foxglove.sdk.v1"]) {
      const c = await TestClient.connect(`${s.url}/?token=${TOKEN}`, proto);
      try {
        assert.equal(c.ws.protocol, proto);
        const ch = await c.channel("/camera/front/image");
        assert.equal(ch.schemaName, "sensor_msgs/msg/Image");
        assert.equal(ch.encoding, "cdr");
        const sub = c.client.subscribe(ch.id);
        const [m] = await c.until(
          () => (c.messagesOf(sub).length >= 2 ? c.messagesOf(sub) : undefined),
          10000,
          "frames",
        );
        const enc = channelEncodingForSchema({
          schemaName: ch.schemaName,
          schemaEncoding: ch.schemaEncoding ?? "",
          messageEncoding: ch.encoding,
        });
        const bytes = new Uint8Array(m!.data.buffer, m!.data.byteOffset, m!.data.byteLength);
        const img = enc.decode(bytes) as MessageOf<typeof sensor_msgs.Image>;
        assert.equal(img.width, WIDTH);
        assert.equal(img.height, HEIGHT);
        assert.equal(img.encoding, "rgb8");
        assert.equal(img.data.byteLength, FRAME_BYTES);
        assert.ok(
          img.data.some((b) => b === 255),
          "the camera's bright square is in the frame",
        );
        assert.ok(m!.timestamp > 0n);
        // Server time comes too (capability time).
        await c.until(() => (c.got.times.length > 0 ? true : undefined), 5000, "a time message");
      } finally {
        c.close();
      }
    }
  });

  await t.test(
    "without the token, with a wrong one, or without a served subprotocol: refused, saying why",
    async () => {
      const none = await refusal(s.url, ["foxglove.websocket.v1"]);
      assert.equal(none.status, 401);
      assert.match(none.body, /no token: connect to ws:\/\/127\.0\.0\.1:\d+\/\?token=TOKEN/);
      const wrong = await refusal(`${s.url}/?token=not-the-token-0123456789`, ["foxglove.sdk.v1"]);
      assert.equal(wrong.status, 401);
      assert.match(wrong.body, /wrong token/);
      const proto = await refusal(`${s.url}/?token=${TOKEN}`, ["mqtt"]);
      assert.equal(proto.status, 400);
      assert.match(proto.body, /foxglove\.sdk\.v1 and foxglove\.websocket\.v1/);
      const badCap = await refusal(`${s.url}/?token=${TOKEN}&maxHz=/camera`, ["foxglove.sdk.v1"]);
      assert.equal(badCap.status, 400);
      assert.match(badCap.body, /write TOPIC_PATTERN:HZ/);
      const st = await s.status();
      assert.ok(
        st.refused.noToken >= 1 && st.refused.badToken >= 1 && st.refused.badRequest >= 2,
        JSON.stringify(st.refused),
      );
    },
  );

  await t.test(
    "hub options: a host or token without a port is a usage error; a bad config names the field",
    async () => {
      const noPort = await runCli(t, s.w, ["hub", "--foxglove-host", "0.0.0.0"], 20000);
      assert.equal(noPort.code, 2);
      assert.match(noPort.stderr, /--foxglove-host needs --foxglove-port or --foxglove-config/);
      const bad = join(s.w.dir, "bad.yaml");
      await writeFile(bad, "sendBudgetBytes: lots\n");
      const badConfig = await runCli(t, s.w, ["hub", "--foxglove-config", bad], 20000);
      assert.equal(badConfig.code, 1);
      assert.match(
        badConfig.stderr,
        /bad\.yaml: sendBudgetBytes: must be an integer from 1024 .* \[ERR_BAD_CONFIG\]/,
      );
    },
  );

  await t.test("the allow-list: a topic off it is neither advertised nor in the graph", async () => {
    const secret = await createNode({ name: "secret", runtimeDir: s.w.dir });
    s.nodes.push(secret);
    const pub = await secret.createPublisher("/secret", std_msgs.String);
    const c = await TestClient.connect(`${s.url}/?token=${TOKEN}`, "foxglove.sdk.v1");
    try {
      c.client.subscribeConnectionGraph();
      const g = await c.until(
        () => c.got.graphs.find((u) => u.publishedTopics.some((p) => p.name === "/camera/front/image")),
        10000,
        "a graph with the camera",
      );
      assert.deepEqual(g.publishedTopics.find((p) => p.name === "/camera/front/image")?.publisherIds, [
        "camera",
      ]);
      assert.ok(
        c.got.graphs.every((u) => !u.publishedTopics.some((p) => p.name === "/secret")),
        "the graph hides /secret",
      );
      assert.ok(![...c.got.channels.values()].some((ch) => ch.topic === "/secret"));
      // Services: the camera's parameter services are advertised, the hub's hidden ones are not.
      await c.service("/camera/list_parameters");
      assert.ok(![...c.got.services.values()].some((x) => x.name.startsWith("/_")));
    } finally {
      c.close();
      pub.close();
    }
  });

  await t.test(
    "a client that never reads is held to its budget, and told of the drops, while another gets a small topic at full rate",
    async () => {
      const talker = await createNode({ name: "talker", runtimeDir: s.w.dir });
      s.nodes.push(talker);
      const chatter = await talker.createPublisher("/chatter", std_msgs.String);
      const fast = await TestClient.connect(`${s.url}/?token=${TOKEN}`, "foxglove.websocket.v1");
      const budget = 1_000_000;
      let slow: RawClient | undefined;
      try {
        const image = await fast.channel("/camera/front/image");
        const small = await fast.channel("/chatter");
        const fastImage = fast.client.subscribe(image.id);
        const fastSmall = fast.client.subscribe(small.id);
        slow = await RawClient.connect(s.port, `/?token=${TOKEN}&budget=${budget}`, "foxglove.websocket.v1");
        slow.send({ op: "subscribe", subscriptions: [{ id: 7, channelId: image.id }] });
        // The slow client's socket is paused: the kernel's buffers fill, then its outbox, then drops.
        const dropping = await statusUntil(
          s,
          (st) => st.clients.some((c) => c.budgetBytes === budget && c.dropped > 0),
          30000,
          "drops for the slow client",
        );
        const slowId = dropping.clients.find((c) => c.budgetBytes === budget)!.id;
        // Meanwhile the fast client gets every small message, each soon after it was published.
        const N = 100;
        const sentAt: number[] = [];
        for (let i = 0; i < N; i++) {
          sentAt.push(Date.now());
          await chatter.publish({ data: `n=${i}` });
          await new Promise((r) => setTimeout(r, 20)); // 50 Hz
        }
        await fast.until(
          () => (fast.messagesOf(fastSmall).length >= N ? true : undefined),
          10000,
          `${N} small messages`,
        );
        const texts = fast.messagesOf(fastSmall).map((m) => {
          const bytes = new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
          return (JSON.parse(new TextDecoder().decode(bytes)) as { data: string }).data;
        });
        assert.deepEqual(
          texts,
          Array.from({ length: N }, (_, i) => `n=${i}`),
        );
        // "At full rate", with a generous tolerance: each within a second of its publish.
        const arrivals = fast.got.messages
          .map((m, i) => ({ m, at: fast.arrivals[i]! }))
          .filter((x) => x.m.subscriptionId === fastSmall)
          .map((x) => x.at);
        for (let i = 0; i < N; i++)
          assert.ok(arrivals[i]! - sentAt[i]! < 1000, `message ${i} took ${arrivals[i]! - sentAt[i]!} ms`);
        assert.ok(fast.messagesOf(fastImage).length > 0, "the fast client got images too");

        const st = await s.status();
        const slowSt = st.clients.find((c) => c.id === slowId)!;
        const slowImage = slowSt.subscriptions.find((x) => x.topic === "/camera/front/image")!;
        assert.ok(slowImage.dropped > 0);
        // Within the budget, plus at most the newest frame (13 bytes of header each).
        assert.ok(
          slowSt.queuedBytes + slowSt.inFlightBytes <= budget + FRAME_BYTES + 200 + 13,
          `slow client holds ${slowSt.queuedBytes + slowSt.inFlightBytes} bytes`,
        );
        const fastSt = st.clients.find((c) => c.subscriptions.some((x) => x.topic === "/chatter"))!;
        assert.equal(fastSt.subscriptions.find((x) => x.topic === "/chatter")!.dropped, 0);

        // The CLI shows the drops per client and topic.
        const cli = await runCli(t, s.w, ["foxglove", "status"], 20000);
        assert.equal(cli.code, 0, cli.stderr);
        assert.match(cli.stdout, /CLIENT\s+TOPIC\s+SENT\s+DROPPED\s+THROTTLED\s+QUEUED\s+MAX HZ/);
        const row = cli.stdout
          .split("\n")
          .find((l) => new RegExp(`^${slowId}\\s+/camera/front/image\\s`).test(l));
        assert.ok(row !== undefined, cli.stdout);
        assert.ok(Number(row.trim().split(/\s+/)[3]) > 0, row);

        // `myelin doctor` warns of the drops.
        const doctor = await runCli(t, s.w, ["doctor"], 30000);
        assert.match(
          doctor.stdout,
          /WARN\s+foxglove\s+ws:\/\/127\.0\.0\.1:\d+: \d+ client\(s\), \d+ channels; \d+ messages dropped/,
        );

        // Once it reads again, the slow client learns what it lost.
        slow.read();
        const warn = await slow.waitText(
          (m) => m["op"] === "status" && String(m["message"]).includes("dropped"),
          20000,
          "a drop status",
        );
        assert.equal(warn["level"], 1);
        assert.match(
          String(warn["message"]),
          /dropped \d+ message\(s\) of \/camera\/front\/image .*\?maxHz=\/camera\/front\/image:5/,
        );
      } finally {
        slow?.close();
        fast.close();
        chatter.close();
      }
    },
  );

  await t.test("rate caps: a client's ?maxHz= holds a topic to that rate, counted as throttled", async () => {
    const c = await TestClient.connect(`${s.url}/?token=${TOKEN}&maxHz=/camera/**:5`, "foxglove.sdk.v1");
    try {
      const image = await c.channel("/camera/front/image");
      const sub = c.client.subscribe(image.id);
      await c.until(() => (c.messagesOf(sub).length >= 6 ? true : undefined), 10000, "6 frames");
      const st = await statusUntil(
        s,
        (x) => x.clients.some((cl) => cl.subscriptions.some((y) => y.maxHz === 5 && y.throttled > 0)),
        10000,
        "throttled frames",
      );
      const ss = st.clients.flatMap((cl) => cl.subscriptions).find((y) => y.maxHz === 5)!;
      // 30 fps capped at 5: about one in six passes (generous bounds).
      assert.ok(ss.throttled > ss.sent, JSON.stringify(ss));
    } finally {
      c.close();
    }
  });

  await t.test(
    "client publish: a valid message reaches a subscriber, an invalid one is refused with a status",
    async () => {
      const driver = await createNode({ name: "driver", runtimeDir: s.w.dir });
      s.nodes.push(driver);
      const got: unknown[] = [];
      let notify = (): void => {};
      await driver.createSubscription("/cmd_vel", geometry_msgs.Twist, (m) => {
        got.push(m);
        notify();
      });
      const c = await TestClient.connect(`${s.url}/?token=${TOKEN}`, "foxglove.websocket.v1");
      try {
        const ch = c.client.advertise({
          topic: "/cmd_vel",
          encoding: "json",
          schemaName: "geometry_msgs/Twist",
        });
        // The server's publisher joins the graph before the first message goes.
        await c.until(() => (c.got.channels.size > 0 ? true : undefined), 5000, "channels");
        const enc = new TextEncoder();
        const first = new Promise<void>((resolve) => (notify = resolve));
        const send = (): void =>
          c.client.sendMessage(
            ch,
            enc.encode(JSON.stringify({ linear: { x: 0.5, y: 0, z: 0 }, angular: { z: 0.25 } })),
          );
        send();
        await Promise.race([
          first,
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error("no /cmd_vel message within 10 s")), 10000),
          ),
        ]);
        assert.deepEqual(got[0], { linear: { x: 0.5, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.25 } });

        c.client.sendMessage(ch, enc.encode(JSON.stringify({ linear: { x: "fast" } })));
        const bad = await c.until(
          () => c.got.statuses.find((x) => x.message.includes("/cmd_vel refused")),
          10000,
          "a refusal",
        );
        assert.equal(bad.level, 2);
        assert.match(bad.message, /does not fit geometry_msgs\/Twist: .*linear\.x/);
        c.client.sendMessage(ch, enc.encode("{not json"));
        await c.until(
          () => c.got.statuses.find((x) => x.message.includes("it is not JSON")),
          10000,
          "not JSON",
        );

        // The wrong type for the topic, and a topic off the publish allow-list: refused at advertise.
        c.client.advertise({ topic: "/cmd_vel", encoding: "json", schemaName: "std_msgs/String" });
        await c.until(
          () =>
            c.got.statuses.find((x) =>
              /\/cmd_vel has type geometry_msgs\/Twist, not std_msgs\/String/.test(x.message),
            ),
          10000,
          "a type refusal",
        );
        c.client.advertise({ topic: "/chatter", encoding: "json", schemaName: "std_msgs/String" });
        await c.until(
          () => c.got.statuses.find((x) => /publishing to \/chatter is not allowed/.test(x.message)),
          10000,
          "an allow-list refusal",
        );
        assert.equal(got.length, 1, "nothing invalid reached the subscriber");
      } finally {
        c.close();
      }
    },
  );

  await t.test("services round-trip; a failing call and a bad request come back as failures", async () => {
    const adder = await createNode({ name: "adder", runtimeDir: s.w.dir });
    s.nodes.push(adder);
    await adder.createService("/add", example_interfaces.AddTwoInts, ({ a, b }) => {
      if (a < 0n) throw new Error("negative numbers are not served");
      return { sum: a + b };
    });
    const c = await TestClient.connect(`${s.url}/?token=${TOKEN}`, "foxglove.sdk.v1");
    try {
      const svc = await c.service("/add");
      assert.equal(svc.type, "example_interfaces/AddTwoInts");
      assert.equal(svc.request?.encoding, "json");
      const enc = new TextEncoder();
      const call = (callId: number, req: unknown): void =>
        c.client.sendServiceCallRequest({
          serviceId: svc.id,
          callId,
          encoding: "json",
          data: enc.encode(JSON.stringify(req)),
        });
      call(1, { a: 2, b: 40 });
      const r = await c.until(() => c.got.responses.find((x) => x.callId === 1), 10000, "the response");
      assert.equal(r.encoding, "json");
      const body = new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      assert.deepEqual(JSON.parse(new TextDecoder().decode(body)), { sum: 42 });
      call(2, { a: -1, b: 1 });
      const f = await c.until(() => c.got.failures.find((x) => x.callId === 2), 10000, "a failure");
      assert.match(f.message, /negative numbers are not served/);
      call(3, { a: "two" });
      const v = await c.until(
        () => c.got.failures.find((x) => x.callId === 3),
        10000,
        "a validation failure",
      );
      assert.match(v.message, /\/add: .*a/);
    } finally {
      c.close();
    }
  });

  await t.test("parameters: get, set (refused with a status when wrong) and watch", async () => {
    const c = await TestClient.connect(`${s.url}/?token=${TOKEN}`, "foxglove.websocket.v1");
    try {
      c.client.getParameters([], "all");
      const all = await c.until(
        () => c.got.parameterValues.find((p) => p.id === "all"),
        10000,
        "all parameters",
      );
      const fps = all.parameters.find((p) => p.name === "/camera/fps");
      assert.deepEqual(fps, { name: "/camera/fps", value: 30, type: "float64" });
      assert.deepEqual(
        all.parameters.find((p) => p.name === "/camera/width"),
        { name: "/camera/width", value: WIDTH },
      );

      c.client.subscribeParameterUpdates(["/camera/fps"]);
      c.client.setParameters([{ name: "/camera/fps", value: 20, type: "float64" }], "set1");
      const set = await c.until(
        () => c.got.parameterValues.find((p) => p.id === "set1"),
        10000,
        "the set reply",
      );
      assert.deepEqual(set.parameters, [{ name: "/camera/fps", value: 20, type: "float64" }]);
      const cameraNode = s.nodes.find((n) => n.name === "camera")!;
      assert.equal(cameraNode.parameter("fps")?.value, 20);

      // A change made elsewhere reaches the watcher.
      cameraNode.setParameter("fps", 25);
      await c.until(
        () =>
          c.got.parameterValues.find(
            (p) => p.id === undefined && p.parameters.some((x) => x.name === "/camera/fps" && x.value === 25),
          ),
        10000,
        "an update of /camera/fps",
      );

      c.client.setParameters([{ name: "/camera/fps", value: "fast" }], "set2");
      const refused = await c.until(
        () =>
          c.got.statuses.find((x) =>
            x.message.startsWith("setParameters: /camera/fps: refused by node camera"),
          ),
        10000,
        "a refusal",
      );
      assert.equal(refused.level, 2);
      c.client.setParameters([{ name: "/nobody/x", value: 1 }], "set3");
      await c.until(
        () => c.got.statuses.find((x) => x.message.includes("/nobody/x")),
        10000,
        "an unknown node",
      );
      assert.equal(cameraNode.parameter("fps")?.value, 25);
    } finally {
      c.close();
    }
  });
});
