// Plays an LL-HLS playlist with hls.js in low-latency mode in headless
// Chromium, as a viewer's page would: prints one JSON line with what the
// <video> element and hls.js reported, and keeps a screenshot.
// Used by the whole-app tests (tests/it/llhls.rs).
//
// Usage: node browser_llhls.js PLAYLIST_URL [SCREENSHOT_PATH] [LATENCY_BASE]
// LATENCY_BASE (Unix seconds, from xtask bench-latency) reads the clock the
// publisher burnt into the frames and reports glass-to-glass latency.
// Output: {"videoWidth", "videoHeight", "advanced", "latency",
//          "targetLatency", "parts", "canBlockReload", "error", "trouble"}
const path = require("path");
const { launch, run } = require("./chromium");

async function main() {
  const [url, screenshot, latencyBase] = process.argv.slice(2);
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
    await page.setContent("<body style='margin:0;background:#000'><video muted autoplay style='width:640px;height:360px'></video></body>");
    await page.addScriptTag({ path: path.join(__dirname, "node_modules/hls.js/dist/hls.min.js") });
    const result = await page.evaluate(async ([url, latencyBase]) => {
      const video = document.querySelector("video");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      if (!Hls.isSupported()) return { error: "hls.js: MediaSource is not supported" };
      const hls = new Hls({ lowLatencyMode: true });
      let fatal = null;
      // Non-fatal trouble too (stalls, late parts), with when it happened.
      const t0 = performance.now();
      const trouble = [];
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (data.fatal) fatal = `${data.type}: ${data.details}`;
        if (trouble.length < 20) {
          const url = data.frag ? ` ${data.frag.relurl || ""}` : "";
          trouble.push(`${Math.round(performance.now() - t0)} ms ${data.details}${url}`);
        }
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      video.play().catch(() => {});
      // Until it plays.
      for (let i = 0; i < 200 && video.currentTime < 1 && !fatal; i++) await sleep(100);
      const first = video.currentTime;
      // Long enough that a stall on a loaded machine (hls.js recovers
      // from one in a second or two) does not read as not playing.
      await sleep(5000);
      // The publisher's clock: bit i of its milliseconds is a 30x32 block at
      // x = 30 i along the top, white for 1 (xtask bench-latency).
      let glass = null;
      if (latencyBase) {
        const canvas = document.createElement("canvas");
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        const ctx = canvas.getContext("2d", { willReadFrequently: true });
        const samples = [];
        for (let i = 0; i < 40; i++) {
          ctx.drawImage(video, 0, 0);
          const row = ctx.getImageData(0, 16, canvas.width, 1).data;
          let ms = 0;
          for (let b = 0; b < 21; b++) if (row[(b * 30 + 15) * 4] > 128) ms += 2 ** b;
          samples.push(Date.now() - Number(latencyBase) * 1000 - ms);
          await sleep(100);
        }
        samples.sort((a, b) => a - b);
        glass = { p50: samples[20], p90: samples[36], min: samples[0], frames: samples.length };
      }
      const details = hls.levels[0] && hls.levels[0].details;
      return {
        videoWidth: video.videoWidth,
        videoHeight: video.videoHeight,
        advanced: video.currentTime - first,
        latency: hls.latency,
        targetLatency: hls.targetLatency,
        parts: details && details.partList ? details.partList.length : 0,
        canBlockReload: details ? details.canBlockReload : false,
        error: fatal,
        trouble,
        glassToGlass: glass,
      };
    }, [url, latencyBase]);
    if (screenshot) await page.screenshot({ path: screenshot });
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
}

run(main);
