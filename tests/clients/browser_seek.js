// Plays a video URL in headless Chromium and seeks it, as a viewer of a
// recording does: prints one JSON line with what the <video> element
// reported. Used by the whole-app tests (tests/it/browser.rs).
//
// Usage: node browser_seek.js URL SEEK_TO_SECONDS
// Output: {"duration": …, "currentTime": …, "readyState": …, "error": …}
const { launch, run } = require("./chromium");

async function main() {
  const [url, seekArg] = process.argv.slice(2);
  const seekTo = Number(seekArg);
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.setContent("<video muted preload=auto></video>");
    const result = await page.evaluate(
      async ({ url, seekTo }) => {
        const video = document.querySelector("video");
        const event = (name) =>
          new Promise((resolve, reject) => {
            video.addEventListener(name, resolve, { once: true });
            video.addEventListener("error", () => reject(new Error(`media error ${video.error && video.error.code}: ${video.error && video.error.message}`)), { once: true });
          });
        try {
          const metadata = event("loadedmetadata");
          video.src = url;
          await metadata;
          const duration = video.duration;
          const seeked = event("seeked");
          video.currentTime = seekTo;
          await seeked;
          // The frame at the new position is decoded, not just asked for.
          if (video.readyState < 2) await event("canplay");
          return { duration, currentTime: video.currentTime, readyState: video.readyState, error: null };
        } catch (e) {
          return { duration: video.duration, currentTime: video.currentTime, readyState: video.readyState, error: String(e) };
        }
      },
      { url, seekTo },
    );
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
}

run(main);
