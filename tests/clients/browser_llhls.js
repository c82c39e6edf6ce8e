// Plays an LL-HLS playlist with hls.js in low-latency mode in headless
// Chromium, as a viewer's page would: prints one JSON line with what the
// <video> element and hls.js reported, and keeps a screenshot.
// Used by the whole-app tests (tests/it/llhls.rs).
//
// Usage: node browser_llhls.js PLAYLIST_URL SCREENSHOT_PATH
// Output: {"videoWidth", "videoHeight", "advanced", "latency",
//          "targetLatency", "parts", "canBlockReload", "error"}
const path = require("path");
const { launch } = require("./chromium");

async function main() {
  const [url, screenshot] = process.argv.slice(2);
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
    await page.setContent("<body style='margin:0;background:#000'><video muted autoplay style='width:640px;height:360px'></video></body>");
    await page.addScriptTag({ path: path.join(__dirname, "node_modules/hls.js/dist/hls.min.js") });
    const result = await page.evaluate(async (url) => {
      const video = document.querySelector("video");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      if (!Hls.isSupported()) return { error: "hls.js: MediaSource is not supported" };
      const hls = new Hls({ lowLatencyMode: true });
      let fatal = null;
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (data.fatal) fatal = `${data.type}: ${data.details}`;
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      video.play().catch(() => {});
      // Until it plays.
      for (let i = 0; i < 200 && video.currentTime < 1 && !fatal; i++) await sleep(100);
      const first = video.currentTime;
      await sleep(3000);
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
      };
    }, url);
    if (screenshot) await page.screenshot({ path: screenshot });
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
}

const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out after 60 s" }));
  process.exit(1);
}, 60000);
main().then(
  () => clearTimeout(timer),
  (e) => {
    clearTimeout(timer);
    console.log(JSON.stringify({ error: String(e) }));
    process.exit(1);
  },
);
