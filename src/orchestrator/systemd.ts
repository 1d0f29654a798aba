/**
 * Who watches the hub: a systemd unit (`myelin hub --systemd-unit`) so the OS restarts a hub that
 * dies or hangs, and the hub's side of systemd's notify protocol (ready, then watchdog pings while
 * its event loop runs). `KillMode=process`: when the hub dies, systemd leaves the supervised
 * processes alone and the restarted hub adopts them.
 */
import { spawn } from "node:child_process";

/** Options of systemdUnit. */
export interface SystemdUnitOptions {
  /** The hub's command line, absolute program first. */
  execStart: string[];
  /** Environment of the hub (e.g. MYELIN_RUNTIME_DIR). */
  environment?: Record<string, string>;
  /** systemd kills and restarts a hub silent this long, in seconds (default 10). */
  watchdogSec?: number;
  workingDirectory?: string;
  /** Run as this user (system units). */
  user?: string;
}

const quote = (a: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `"${a.replace(/(["\\$])/g, "\\$1")}"`;

/** The text of a systemd service unit running the hub. */
export function systemdUnit(o: SystemdUnitOptions): string {
  const lines = [
    "# Myelin hub: install as /etc/systemd/system/myelin-hub.service (or ~/.config/systemd/user/),",
    "# then: systemctl daemon-reload && systemctl enable --now myelin-hub",
    "[Unit]",
    "Description=Myelin hub (registry, store, supervisor)",
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=notify",
    "NotifyAccess=all",
    `ExecStart=${o.execStart.map(quote).join(" ")}`,
    ...Object.entries(o.environment ?? {}).map(([k, v]) => `Environment=${quote(`${k}=${v}`)}`),
    ...(o.workingDirectory !== undefined ? [`WorkingDirectory=${quote(o.workingDirectory)}`] : []),
    ...(o.user !== undefined ? [`User=${o.user}`] : []),
    "Restart=always",
    "RestartSec=1",
    `WatchdogSec=${o.watchdogSec ?? 10}`,
    "# Stop only the hub on restart or crash: the processes it supervises keep running and the",
    "# next hub adopts them. `systemctl stop` sends SIGTERM: the hub then stops them in order.",
    "KillMode=process",
    "TimeoutStopSec=60",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ];
  return lines.join("\n");
}

/**
 * When run by systemd (`NOTIFY_SOCKET` set): says ready, and pings the watchdog at half its
 * period (`WATCHDOG_USEC`) while the event loop turns. Uses the `systemd-notify` program. Returns
 * a function that stops the pings; does nothing outside systemd.
 */
export function startSystemdNotify(log: (line: string) => void = () => {}): () => void {
  if (process.env["NOTIFY_SOCKET"] === undefined) return () => {};
  const notify = (...args: string[]): void => {
    const c = spawn("systemd-notify", [`--pid=${process.pid}`, ...args], { stdio: "ignore" });
    c.on("error", (err) => log(`systemd-notify failed: ${err.message}`));
  };
  notify("--ready");
  const usec = Number(process.env["WATCHDOG_USEC"] ?? 0);
  if (!(usec > 0)) return () => {};
  const timer = setInterval(() => notify("WATCHDOG=1"), Math.max(500, usec / 2000));
  timer.unref();
  return () => clearInterval(timer);
}
