/** The README's main job: the demo system runs and the monitor sees frames and detections. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Proc, tempRuntime } from "./helpers.js";

test(
  "the demo starts a hub, a camera, a detector and a monitor that sees both streams",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
    await using demo = new Proc(script, ["--duration-ms", "15000"], { MYELIN_RUNTIME_DIR: rt.dir });
    const line = await demo.waitFor(
      (l) =>
        l.event === "text" &&
        /\[monitor\] camera [1-9][\d.]* Hz .* detections [1-9][\d.]* Hz/.test(String(l["text"])),
      20000,
      "a monitor line with frames and detections",
    );
    assert.match(String(line["text"]), /last: square track-1/);
    demo.kill("SIGTERM");
    await demo.exit();
    assert.equal(demo.exitCode, 0);
  },
);
