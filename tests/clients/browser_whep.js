// Opens livestack's WebRTC player page (/webrtc/player.html#<WHEP URL>,
// the page users open) in headless Chromium and prints one JSON line with
// what its <video> element showed; keeps a screenshot. Used by
// tests/it/webrtc.rs.
//
// Usage: node browser_whep.js PAGE_URL [SCREENSHOT_PATH]
// Output: {"videoWidth", "videoHeight", "advanced", "connection", "error"}
const { launch, run } = require("./chromium");

async function main() {
  const [url, screenshot] = process.argv.slice(2);
  // Chromium's host candidates stay hidden behind mDNS names (its
  // default), which the ICE-lite server never needs: it answers the checks
  // where they come from.
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
    await page.goto(url);
    const result = await page.evaluate(async () => {
      const video = document.querySelector("video");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      for (let i = 0; i < 150 && video.currentTime < 0.5 && !window.livestackError; i++) await sleep(100);
      const first = video.currentTime;
      await sleep(2000);
      return {
        videoWidth: video.videoWidth,
        videoHeight: video.videoHeight,
        advanced: video.currentTime - first,
        connection: document.getElementById("status").textContent,
        error: window.livestackError || null,
      };
    });
    if (screenshot) await page.screenshot({ path: screenshot });
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
}

run(main);
