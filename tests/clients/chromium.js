// Debian's Chromium, headless, with the flags that work on these
// machines (no sandbox as root, and no background connections to a
// network that is closed). Shared by the browser scripts here.
const { chromium } = require("playwright-core");

// `extra`: more flags for one script.
function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      ...extra,
    ],
  });
}

module.exports = { launch };
