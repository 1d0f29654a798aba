// Builds the dashboard page into dist/web, which the hub serves (src/web/dashboard-server.ts).
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  logLevel: "warn",
  build: {
    outDir: "../dist/web",
    emptyOutDir: true,
    chunkSizeWarningLimit: 400,
    sourcemap: true,
  },
});
