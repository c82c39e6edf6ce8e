import { defineConfig } from "vite";

// Served by livestack's API listener under /console/; the built files are
// embedded in the binary (crates/livestack-api/build.rs).
export default defineConfig({
  base: "/console/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // File names without hashes: the binary embeds whatever is in dist/.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1024,
  },
});
