/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core) against the real
 * demo system: the graph shows every node, the camera picture changes, a message published from
 * the page reaches a subscriber, the restart button restarts a process while the alarm appears and
 * clears, the logs filter, and a wrong token is refused. Screenshots go to test-artifacts/dashboard/.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import WebSocket from "ws";
import { createNode, std_msgs, type Node } from "../src/index.js";
import { Proc, tempRuntime } from "./helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/dashboard/", import.meta.url));
const NODES = [
  "camera",
  "camera_rear",
  "detector",
  "detector.1",
  "tracker",
  "analytics",
  "monitor",
  "temp_sensor",
];

describe(
  "the dashboard in a browser, on the demo",
  { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (apt-get install chromium)`, timeout: 240000 },
  () => {
    const rt = tempRuntime();
    let demo: Proc;
    let url = "";
    let base = "";
    let browser: Browser;
    let page: Page;
    let node: Node;

    before(async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
      demo = new Proc(script, ["--http-port", "0"], {
        MYELIN_RUNTIME_DIR: rt.dir,
        MYELIN_DATA_DIR: `${rt.dir}/data`,
      });
      const line = await demo.waitFor(
        (l) => /\[demo\] dashboard: http/.test(String(l["text"])),
        30000,
        "the dashboard's URL",
      );
      url = /dashboard: (\S+)/.exec(String(line["text"]))![1]!;
      base = url.split("?")[0]!;
      await demo.waitFor(
        (l) => /\[monitor\] camera [1-9]/.test(String(l["text"])),
        40000,
        "the monitor's first figures",
      );
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
      });
      page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(url);
      await page.getByTestId("connection").filter({ hasText: "live" }).waitFor({ timeout: 15000 });
      node = await createNode({ name: "dashboard_test", runtimeDir: rt.dir });
    });

    after(async () => {
      await node?.close();
      await browser?.close();
      if (demo !== undefined) {
        demo.kill("SIGTERM");
        await demo.exit(30000).catch(() => demo.kill("SIGKILL"));
      }
      rt[Symbol.dispose]();
    });

    test("a wrong or missing token is refused, on the page, the actions and the live stream", async () => {
      const wrong = await fetch(`${base}?token=not-the-token-at-all`, { redirect: "manual" });
      assert.equal(wrong.status, 401);
      const body = (await wrong.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "ERR_NOT_AUTHORIZED");
      assert.match(body.error.message, /wrong token.*myelin dashboard/);
      const none = await fetch(`${base}api/publish`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(none.status, 401);
      const refused = await new Promise<string>((resolve) => {
        const ws = new WebSocket(`${base.replace(/^http/, "ws")}api/live?token=wrong-token-wrong-token`);
        ws.on("unexpected-response", (_req, res) => resolve(String(res.statusCode)));
        ws.on("open", () => resolve("open"));
        ws.on("error", () => resolve("error"));
      });
      assert.equal(refused, "401");
      const other = await browser.newPage();
      const r = await other.goto(`${base}?token=wrong`);
      assert.equal(r?.status(), 401);
      await other.screenshot({ path: `${ARTIFACTS}wrong-token.png` });
      await other.close();
    });

    test("the graph shows every node of the demo", async () => {
      await page.goto(`${base}#/graph`);
      for (const n of NODES) {
        await page.locator(`svg [data-node~="${n}"]`).first().waitFor({ timeout: 20000 });
      }
      await page.locator('svg [data-topic="/camera/front/image"]').waitFor();
      await page.screenshot({ path: `${ARTIFACTS}graph.png`, fullPage: true });
    });

    test("the camera's picture changes between two screenshots", async () => {
      await page.goto(`${base}#/topics/camera/front/image`);
      const img = page.getByTestId("topic-image");
      await img.waitFor({ timeout: 15000 });
      const first = await img.screenshot({ path: `${ARTIFACTS}camera-1.png` });
      let second = first;
      const end = Date.now() + 15000;
      while (second.equals(first) && Date.now() < end) {
        await page.waitForTimeout(200);
        second = await img.screenshot();
      }
      await img.screenshot({ path: `${ARTIFACTS}camera-2.png` });
      assert.ok(!second.equals(first), "the picture did not change within 15 s");
      await page
        .getByTestId("topic-rate")
        .filter({ hasText: /[1-9][\d.]* Hz/ })
        .waitFor({ timeout: 10000 });
      await page.screenshot({ path: `${ARTIFACTS}topic.png`, fullPage: true });
    });

    test("a message published from the page reaches a subscriber; a bad one gets the CLI's error", async () => {
      const got: string[] = [];
      let notify = (): void => {};
      await node.createSubscription("/dashboard_test/chatter", std_msgs.String, (m) => {
        got.push(m.data);
        notify();
      });
      const arrived = new Promise<void>((resolve) => (notify = resolve));
      await page.goto(`${base}#/publish`);
      const form = page.getByTestId("publish-form");
      await form.locator('input[name="topic"]').fill("/dashboard_test/chatter");
      await form.locator('input[name="type"]').fill("std_msgs/String");
      await form.locator('textarea[name="data"]').fill("{data: 5}");
      await form.getByRole("button", { name: "Publish" }).click();
      await page.getByTestId("action-error").filter({ hasText: "ERR_VALIDATION" }).waitFor();
      assert.match(await page.getByTestId("action-error").innerText(), /data: expected string, got number 5/);
      await form.locator('textarea[name="data"]').fill('{"data": "hello from the page"}');
      await form.getByRole("button", { name: "Publish" }).click();
      await page.getByTestId("publish-ok").waitFor();
      await Promise.race([
        arrived,
        new Promise((_, rej) => setTimeout(() => rej(new Error("no message within 10 s")), 10000)),
      ]);
      assert.deepEqual(got, ["hello from the page"]);
      await page.screenshot({ path: `${ARTIFACTS}publish.png`, fullPage: true });
    });

    test("the restart button restarts a process; its alarm appears and clears", async () => {
      await page.goto(`${base}#/processes`);
      const row = page.locator('tr[data-process="tracker#0"]');
      await row.getByTestId("state").filter({ hasText: "ready" }).waitFor({ timeout: 15000 });
      const pid = await row.getByTestId("pid").innerText();
      await row.locator('button[data-action="restart"]').click();
      await page.waitForFunction(
        (old) => {
          const doc = (
            globalThis as unknown as {
              document: { querySelector(s: string): { textContent: string | null } | null };
            }
          ).document;
          const td = doc.querySelector('tr[data-process="tracker#0"] [data-testid="pid"]');
          return td !== null && td.textContent !== old && td.textContent !== "-";
        },
        pid,
        { timeout: 30000 },
      );
      await page.screenshot({ path: `${ARTIFACTS}processes.png`, fullPage: true });
      await page.goto(`${base}#/alarms`);
      const id = "processes:process-down:tracker#0";
      // Raised by the restart (shown at least 3 s), then cleared into the history once it is ready.
      await page.locator(`[data-alarm="${id}"]`).first().waitFor({ timeout: 15000 });
      await page.locator(`[data-testid="alarm-history"] [data-alarm="${id}"]`).waitFor({ timeout: 30000 });
      assert.equal(await page.locator(`[data-testid="active-alarms"] [data-alarm="${id}"]`).count(), 0);
      await page.screenshot({ path: `${ARTIFACTS}alarms.png`, fullPage: true });
    });

    test("the logs filter by node, level and text", async () => {
      await page.goto(`${base}#/logs`);
      await page.getByTestId("log-node").selectOption("monitor");
      const lines = page.locator('[data-testid="log-lines"] .logline');
      await lines.first().waitFor({ timeout: 15000 });
      const names = await lines.evaluateAll((els) => els.map((e) => e.getAttribute("data-name")));
      assert.ok(names.length > 0 && names.every((n) => n === "monitor#0"), `names: ${names.join(", ")}`);
      await page.getByTestId("log-text").fill("latency");
      const texts = await lines.evaluateAll((els) => els.map((e) => e.textContent ?? ""));
      assert.ok(texts.length > 0 && texts.every((t) => t.includes("latency")));
      await page.screenshot({ path: `${ARTIFACTS}logs.png`, fullPage: true });
      await page.getByTestId("log-level").selectOption("40");
      await page
        .getByTestId("log-count")
        .filter({ hasText: /^0 of / })
        .waitFor();
      await page.getByTestId("log-text").fill("no line says this");
      await page.getByTestId("log-level").selectOption("10");
      assert.equal(await lines.count(), 0);
    });

    test("parameters are listed and set; a value out of range is refused as the node says", async () => {
      await page.goto(`${base}#/params`);
      await page.getByTestId("param-node").selectOption("camera_rear");
      const row = page.locator('tr[data-param="fps"]');
      await row.waitFor({ timeout: 10000 });
      await row.locator("input").fill("1000");
      await row.getByRole("button", { name: "Set" }).click();
      await row.getByTestId("action-error").filter({ hasText: "ERR_PARAMETER" }).waitFor();
      await row.locator("input").fill("6");
      await row.getByRole("button", { name: "Set" }).click();
      await page.waitForFunction(() => {
        const doc = (
          globalThis as unknown as { document: { querySelector(s: string): { value: string } | null } }
        ).document;
        return doc.querySelector('tr[data-param="fps"] input')?.value === "6";
      });
      await page.screenshot({ path: `${ARTIFACTS}parameters.png`, fullPage: true });
    });

    test("numeric fields of a topic are plotted", async () => {
      await page.goto(`${base}#/topics/devices/temp-1/temperature`);
      const field = page.locator(".plot-fields label", { hasText: /^\s*temperature$/ });
      await field.waitFor({ timeout: 15000 });
      await field.locator("input").check();
      await page.getByTestId("plot").waitFor();
      await page.screenshot({ path: `${ARTIFACTS}plot.png`, fullPage: true });
    });

    test("durable topics show their consumers; the gateway its device", async () => {
      await page.goto(`${base}#/durable`);
      await page
        .locator('tr[data-durable="/alerts"] [data-consumer="analytics"]')
        .waitFor({ timeout: 15000 });
      await page.screenshot({ path: `${ARTIFACTS}durable.png`, fullPage: true });
      // The graph draws the consumer as an edge from its durable topic, labelled with its lag.
      await page.goto(`${base}#/graph`);
      await page.locator('[data-consumer="analytics"]').waitFor({ timeout: 15000 });
      const edge = page.locator('g[data-edge="durable"]').first();
      await edge.waitFor({ timeout: 15000 });
      assert.match(await edge.innerHTML(), /lag \d+/);
      await page.screenshot({ path: `${ARTIFACTS}graph-durable.png`, fullPage: true });
      await page.goto(`${base}#/gateway`);
      await page
        .getByTestId("gateway-clients")
        .getByText("temp-1", { exact: true })
        .first()
        .waitFor({ timeout: 15000 });
      await page.screenshot({ path: `${ARTIFACTS}gateway.png`, fullPage: true });
      await page.goto(`${base}#/twins`);
    });

    test("a topic silent past a subscriber's deadline shows the alarm on the topic; it clears when data flows", async () => {
      await using watcher = await createNode({ name: "deadline_watch", runtimeDir: rt.dir });
      const pub = await node.createPublisher("/dash_deadline", std_msgs.String);
      await watcher.createSubscription("/dash_deadline", std_msgs.String, () => {}, {
        qos: { deadlineMs: 300 },
      });
      await page.goto(`${base}#/topics/dash_deadline`);
      const id = "flow:deadline-missed:/dash_deadline → deadline_watch";
      await page
        .locator('[data-testid="topic-alarms"] [data-kind="deadline-missed"]')
        .waitFor({ timeout: 20000 });
      await page.locator('[data-testid="topic-deadlines"] tr[data-late="true"]').waitFor({ timeout: 10000 });
      await page.locator('.trow[data-topic="/dash_deadline"][data-alarm="true"]').waitFor({ timeout: 10000 });
      await page.screenshot({ path: `${ARTIFACTS}deadline-alarm.png`, fullPage: true });
      const flowing = setInterval(() => void pub.publish({ data: "tick" }), 50);
      try {
        await page
          .locator('[data-testid="topic-deadlines"] tr[data-late="false"]')
          .waitFor({ timeout: 20000 });
        await page.goto(`${base}#/alarms`);
        await page.locator(`[data-testid="alarm-history"] [data-alarm="${id}"]`).waitFor({ timeout: 20000 });
        assert.equal(await page.locator(`[data-testid="active-alarms"] [data-alarm="${id}"]`).count(), 0);
      } finally {
        clearInterval(flowing);
        pub.close();
      }
    });

    test("the temperature sensor's twin: a desired sample rate set on the page reaches the device", async () => {
      await page.goto(`${base}#/twins`);
      const row = page.locator('tr[data-twin="temp-1"]');
      await row.waitFor({ timeout: 15000 });
      await row.locator("input").fill('{"sample_rate": 2}');
      await row.getByRole("button", { name: "Set desired" }).click();
      await demo.waitFor(
        (l) =>
          /\[temp_sensor\] device temp-1: sample rate now 2 Hz \(from its twin's desired state\)/.test(
            String(l["text"]),
          ),
        15000,
        "the sensor to apply its twin's desired sample rate",
      );
      // It reports the new rate: desired and reported agree again.
      await row.locator("td", { hasText: "in sync" }).waitFor({ timeout: 15000 });
      await page.screenshot({ path: `${ARTIFACTS}twins.png`, fullPage: true });
    });
  },
);
