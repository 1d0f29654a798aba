/**
 * How the example nodes stop: on Ctrl-C or SIGTERM, when the parent that started them (the demo)
 * is gone — even after kill -9, its IPC channel closes — or when their output is closed (EPIPE).
 * Set up first thing, so a stop during start-up is not missed; a clean close gets 10 s.
 */
export function stopWith(): { onStop(close: () => Promise<void> | void): void } {
  let close: (() => Promise<void> | void) | undefined;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 10000).unref();
    if (close === undefined) process.exit(0);
    void Promise.resolve()
      .then(close)
      .finally(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.on("disconnect", stop);
  process.stdout.on("error", stop);
  if (process.send !== undefined && !process.connected) stop();
  return {
    onStop(fn) {
      close = fn;
    },
  };
}
