// Opens livestack's WebRTC player page (/webrtc/player.html#<WHEP URL>,
// the page users open) in headless Chromium and prints one JSON line with
// what its <video> element showed; keeps a screenshot. Used by
// tests/it/webrtc.rs.
//
// Usage: node browser_whep.js PAGE_URL [SCREENSHOT_PATH] [tcp]
// `tcp`: as on a network that blocks UDP, the page never learns the
// server's UDP candidate (it is taken out of the answer before Chromium
// sees it), so the media must come over ICE-TCP.
// Output: {"videoWidth", "videoHeight", "advanced", "connection",
//          "transport" (the protocol of the candidate pair in use), "error"}
const { launch, run } = require("./chromium");

async function main() {
  const [url, screenshot, mode] = process.argv.slice(2);
  // Chromium's host candidates stay hidden behind mDNS names (its
  // default), which the ICE-lite server never needs: it answers the checks
  // where they come from.
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
    if (mode === "tcp") {
      await page.addInitScript(() => {
        const set = RTCPeerConnection.prototype.setRemoteDescription;
        RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
          const sdp = desc.sdp
            .split("\r\n")
            .filter((l) => !(l.startsWith("a=candidate:") && / udp /i.test(l)))
            .join("\r\n");
          return set.call(this, { type: desc.type, sdp });
        };
      });
    }
    await page.goto(url);
    const result = await page.evaluate(async () => {
      const video = document.querySelector("video");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      for (let i = 0; i < 150 && video.currentTime < 0.5 && !window.livestackError; i++) await sleep(100);
      const first = video.currentTime;
      await sleep(2000);
      let transport = null;
      const pc = window.livestackPeer;
      if (pc) {
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type === "transport" && s.selectedCandidatePairId) {
            const pair = stats.get(s.selectedCandidatePairId);
            const local = pair && stats.get(pair.localCandidateId);
            if (local) transport = local.protocol;
          }
        });
      }
      return {
        videoWidth: video.videoWidth,
        videoHeight: video.videoHeight,
        advanced: video.currentTime - first,
        connection: document.getElementById("status").textContent,
        transport,
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
