// Drives livestack's web console (/console/) in headless Chromium as a
// user would: signs in with an API key, adds a play domain on the
// Domains tab, finds the pushed stream on the Live streams tab, plays its
// preview, forbids it and sees it go. Prints one JSON line with what it
// saw; keeps screenshots. Used by tests/it/console.rs.
//
// Usage: node browser_console.js CONSOLE_URL SECRET_ID SECRET_KEY STREAM SHOT_DIR [readonly]
// Output: {"domainAdded", "stayedOnDomains", "videoWidth", "videoHeight", "advanced",
//          "stored" (what sessionStorage and localStorage hold), "gone", "error"}
// `readonly`: the key may only read; the script signs in, sees the
// stream listed, tries to add a domain and reports what the page said:
// {"listed", "refusal"}.
const path = require("path");
const { launch, run } = require("./chromium");

async function main() {
  const [url, secretId, secretKey, stream, shots, mode] = process.argv.slice(2);
  const browser = await launch();
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    page.on("pageerror", (e) => errors.push(String(e)));
    // The first list of live streams is held until a domain has been
    // added on the Domains tab, which is chosen while the Live streams
    // tab is still being built: when that tab is ready it must not take
    // the page back (it did, and the domain form vanished under typing).
    let release = () => {};
    const held = new Promise((r) => (release = r));
    let heldRequest = null;
    if (mode !== "readonly") {
      await page.route(
        (u) => u.pathname === "/",
        async (route) => {
          if (!heldRequest && route.request().headers()["x-tc-action"] === "DescribeLiveStreamOnlineList") {
            heldRequest = route.request();
            await held;
          }
          await route.continue();
        },
      );
    }
    await page.goto(url);

    // Sign in (not kept beyond this page: the box is left unticked).
    await page.fill("input[name=secretId]", secretId);
    await page.fill("input[name=secretKey]", secretKey);
    await page.click("button[type=submit]");
    await page.waitForSelector("nav", { timeout: 10000 }).catch(async (e) => {
      const said = await page.textContent("form.signin .error").catch(() => "");
      throw new Error(`sign-in failed: ${said || e} ${errors.join("; ")}`);
    });
    const stored = await page.evaluate(() => ({
      session: sessionStorage.length,
      local: localStorage.length,
    }));

    if (mode === "readonly") {
      const listed = await page
        .locator("tr", { hasText: `live/${stream}` })
        .waitFor({ timeout: 15000 })
        .then(() => true, () => false);
      await page.click("a[data-tab=domains]");
      await page.waitForSelector("input[name=domain]");
      await page.fill("input[name=domain]", "play2.example.com");
      await page.click("form.inline button[type=submit]");
      await page.waitForFunction(() => document.querySelector("p.status")?.textContent, null, { timeout: 10000 });
      const refusal = await page.textContent("p.status");
      await page.screenshot({ path: path.join(shots, "console-readonly.png") });
      console.log(JSON.stringify({ listed, refusal, error: errors[0] || null }));
      return;
    }

    // Add the play domain.
    await page.click("a[data-tab=domains]");
    await page.waitForSelector("input[name=domain]");
    await page.fill("input[name=domain]", "play.example.com");
    await page.selectOption("select[name=type]", "1");
    await page.click("form.inline button[type=submit]");
    await page.waitForSelector("td:text-is('play.example.com')", { timeout: 10000 });
    const domainAdded = true;
    // The held list arrives; the page stays on Domains.
    release();
    if (heldRequest) await heldRequest.response();
    await page.waitForTimeout(500);
    const stayedOnDomains = (await page.locator("a[data-tab=domains].active").count()) === 1 && (await page.locator("input[name=domain]").count()) === 1;

    // The live stream, and its preview.
    await page.click("a[data-tab=streams]");
    const row = page.locator("tr", { hasText: `live/${stream}` });
    await row.waitFor({ timeout: 15000 });
    await row.locator("button.preview").click();
    const played = await page.evaluate(async () => {
      const video = document.getElementById("preview");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      for (let i = 0; i < 200 && video.currentTime < 0.5; i++) await sleep(100);
      const first = video.currentTime;
      await sleep(2000);
      return {
        videoWidth: video.videoWidth,
        videoHeight: video.videoHeight,
        advanced: video.currentTime - first,
      };
    });
    await page.screenshot({ path: path.join(shots, "console-streams.png") });

    // Forbid it: the row goes once the stream is off the online list.
    await row.locator("button", { hasText: "Forbid" }).click();
    await row.waitFor({ state: "detached", timeout: 15000 }).catch(async (e) => {
      const said = await page.textContent("p.status").catch(() => "");
      throw new Error(`the stream stayed after Forbid: ${said || e}`);
    });
    await page.screenshot({ path: path.join(shots, "console-forbidden.png") });

    // The statistics tab draws its charts.
    await page.click("a[data-tab=stats]");
    await page.waitForSelector("svg.chart", { timeout: 10000 });
    await page.screenshot({ path: path.join(shots, "console-stats.png") });

    console.log(JSON.stringify({ domainAdded, stayedOnDomains, ...played, stored, gone: true, error: errors[0] || null }));
  } finally {
    await browser.close();
  }
}

run(main);
