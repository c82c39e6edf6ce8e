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

// Runs a script's async `main`: one JSON line with the error if it fails
// or takes over 60 s, and a non-zero exit.
function run(main) {
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
}

module.exports = { launch, run };
