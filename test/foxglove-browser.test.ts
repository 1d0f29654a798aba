/**
 * A browser is a Foxglove client too: headless Chromium (Debian's, driven by playwright-core)
 * opens the hub's Foxglove server the way Foxglove and Lichtblick do — `new WebSocket(url,
 * ["foxglove.websocket.v1"])` with the token in the URL — subscribes to the demo camera, parses
 * the CDR frames in the page and draws one on a canvas, whose pixels are then checked. With
 * MYELIN_FOXGLOVE_SCREENSHOT=FILE the canvas is also saved as a PNG.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { runCamera } from "../examples/camera.js";
import { foxglovePlugin, type RunningFoxglovePlugin } from "../src/foxglove/index.js";
import { startHubProcess } from "../src/hub/index.js";
import { createNode } from "../src/index.js";
import { tempRuntime } from "./helpers.js";

const CHROMIUM = "/usr/bin/chromium";

/**
 * Runs in the page (plain JS: the project is compiled without DOM types): connects, subscribes to
 * `topic`, parses the first frame and draws it on a canvas; resolves with what it saw.
 */
const PAGE_SCRIPT = `async ({ url, topic }) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, ["foxglove.websocket.v1"]);
  ws.binaryType = "arraybuffer";
  let serverName = "";
  let schemaName = "";
  ws.onerror = () => reject(new Error("the WebSocket failed"));
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      const m = JSON.parse(ev.data);
      if (m.op === "serverInfo") serverName = m.name;
      if (m.op === "advertise") {
        const ch = m.channels.find((c) => c.topic === topic);
        if (ch !== undefined) {
          schemaName = ch.schemaName;
          ws.send(JSON.stringify({ op: "subscribe", subscriptions: [{ id: 1, channelId: ch.id }] }));
        }
      }
      return;
    }
    const v = new DataView(ev.data);
    if (v.getUint8(0) !== 1) return; // not message data
    // sensor_msgs/msg/Image in CDR (little-endian), after the 13-byte header and the 4-byte encapsulation.
    const base = 13 + 4;
    let o = base;
    const align = (n) => { o += (n - ((o - base) % n)) % n; };
    const str = () => {
      align(4);
      const len = v.getUint32(o, true);
      o += 4 + len;
      return new TextDecoder().decode(new Uint8Array(ev.data, o - len, Math.max(0, len - 1)));
    };
    o += 8; // stamp
    str(); // frame_id
    align(4);
    const height = v.getUint32(o, true);
    const width = v.getUint32(o + 4, true);
    o += 8;
    const encoding = str();
    o += 1; // is_bigendian
    align(4);
    o += 4; // step
    const n = v.getUint32(o, true);
    o += 4;
    const rgb = new Uint8Array(ev.data, o, n);
    if (encoding !== "rgb8") return reject(new Error("encoding " + encoding));
    const canvas = document.createElement("canvas");
    canvas.id = "frame";
    canvas.width = width;
    canvas.height = height;
    document.body.style.margin = "0";
    document.body.appendChild(canvas);
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(width, height);
    for (let i = 0, j = 0; i < width * height; i++, j += 3) {
      img.data[i * 4] = rgb[j];
      img.data[i * 4 + 1] = rgb[j + 1];
      img.data[i * 4 + 2] = rgb[j + 2];
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const drawn = ctx.getImageData(0, 0, width, height).data;
    let bright = 0;
    for (let i = 0; i < drawn.length; i += 4) if (drawn[i] === 255) bright++;
    ws.close();
    resolve({ protocol: ws.protocol, serverName, schemaName, width, height, bright });
  };
})`;

/** What the page saw. */
interface Seen {
  protocol: string;
  serverName: string;
  schemaName: string;
  width: number;
  height: number;
  bright: number;
}

test(
  "headless Chromium connects with the token in the URL and draws a camera frame",
  {
    timeout: 90000,
    skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium)`,
  },
  async () => {
    using rt = tempRuntime();
    const token = "browser-token-0123456789abcdef";
    const proc = await startHubProcess({
      hub: { runtimeDir: rt.dir },
      plugins: [foxglovePlugin({ port: 0, token })],
    });
    const camera = await createNode({ name: "camera", runtimeDir: rt.dir });
    const stop = await runCamera(camera);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    try {
      const fg = proc.plugins.get("foxglove") as RunningFoxglovePlugin;
      const page = await browser.newPage();
      const args = { url: `${fg.server.url}/?token=${token}`, topic: "/camera/front/image" };
      const seen = await page.evaluate<Seen>(`(${PAGE_SCRIPT})(${JSON.stringify(args)})`);
      assert.equal(seen.protocol, "foxglove.websocket.v1");
      assert.equal(seen.serverName, "myelin");
      assert.equal(seen.schemaName, "sensor_msgs/msg/Image");
      assert.deepEqual([seen.width, seen.height], [320, 240]);
      // The camera draws a bright square of a sixth of the height: 40 × 40 pixels.
      assert.equal(seen.bright, 40 * 40);
      const shot = process.env["MYELIN_FOXGLOVE_SCREENSHOT"];
      if (shot !== undefined && shot !== "") await page.locator("#frame").screenshot({ path: shot });
    } finally {
      await browser.close();
      stop();
      await camera.close();
      await proc.close();
    }
  },
);
