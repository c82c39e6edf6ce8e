// livestack's console: sign in with a SecretId/SecretKey, then domains,
// live streams with a live preview, templates and rules, recent events,
// and the play statistics, all through the signed Live API.
//
// The key is kept in this tab's sessionStorage only when "keep me signed
// in for this tab" is ticked; otherwise it lives in memory and a reload
// asks again. Nothing is ever written to localStorage or cookies.
import Hls from "hls.js";
import { md5 } from "@noble/hashes/legacy.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import { ApiError, call, type Credentials } from "./tc3";
import "./style.css";

type Attrs = Record<string, string | ((e: Event) => void)>;

/** An element with attributes (`on…` are listeners) and children. */
function h(tag: string, attrs: Attrs = {}, ...children: (Node | string | null)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null) el.append(c);
  return el;
}

const SESSION_KEY = "livestack-console-key";
const app = document.getElementById("app")!;
let creds: Credentials | null = null;
/** Where this server plays HTTP-FLV and HLS (from /console/config.json). */
let playPort = 8080;
/**
 * Which showing of a tab (or the sign-in) is current. A tab is built
 * asynchronously: one the user has already left must neither replace the
 * page when its first requests return nor keep refreshing.
 */
let shown = 0;

/**
 * Runs `draw` every `ms`, once `first` (its first run) is done, while the
 * showing `mine` is current (a tab reads `shown` before it awaits
 * anything: it is the one being shown when its building starts).
 */
function every(mine: number, draw: () => Promise<void>, ms: number, first: Promise<void>) {
  first.then(
    () => {
      if (mine !== shown) return;
      const id = window.setInterval(() => {
        if (mine !== shown) window.clearInterval(id);
        else draw();
      }, ms);
    },
    () => {},
  );
}

function saved(): Credentials | null {
  const raw = sessionStorage.getItem(SESSION_KEY);
  return raw ? (JSON.parse(raw) as Credentials) : null;
}

function api<T = any>(action: string, params: object = {}): Promise<T> {
  return call<T>(creds!, action, params);
}

function errorText(e: unknown): string {
  return e instanceof ApiError ? `${e.code}: ${e.message.replace(/^[^:]*: /, "")} (RequestId ${e.requestId})` : String(e);
}

function signIn(message = "") {
  shown++;
  const id = h("input", { name: "secretId", placeholder: "SecretId", autocomplete: "username" }) as HTMLInputElement;
  const key = h("input", {
    name: "secretKey",
    type: "password",
    placeholder: "SecretKey",
    autocomplete: "current-password",
  }) as HTMLInputElement;
  const keep = h("input", { type: "checkbox", name: "keep" }) as HTMLInputElement;
  const status = h("p", { class: "error" }, message);
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (e) => {
        e.preventDefault();
        creds = { secretId: id.value.trim(), secretKey: key.value.trim() };
        try {
          await api("DescribeLiveDomains", { PageSize: 10 });
        } catch (err) {
          creds = null;
          status.textContent = errorText(err);
          return;
        }
        if (keep.checked) sessionStorage.setItem(SESSION_KEY, JSON.stringify(creds));
        show("streams");
      },
    },
    h("h1", {}, "livestack"),
    h("p", {}, "Sign in with an API key (root or sub-account). The console calls the signed API, so it shows what the key may see."),
    id,
    key,
    h("label", {}, keep, " keep me signed in for this tab"),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  app.replaceChildren(form);
}

const TABS: [string, string][] = [
  ["streams", "Live streams"],
  ["domains", "Domains"],
  ["templates", "Templates & rules"],
  ["events", "Events"],
  ["stats", "Statistics"],
];

function frame(active: string, body: HTMLElement) {
  const nav = h(
    "nav",
    {},
    h("strong", {}, "livestack"),
    ...TABS.map(([id, label]) =>
      h("a", { href: `#${id}`, class: id === active ? "active" : "", "data-tab": id, onclick: (e) => (e.preventDefault(), show(id)) }, label),
    ),
    h(
      "a",
      {
        href: "#",
        class: "signout",
        onclick: (e) => {
          e.preventDefault();
          sessionStorage.removeItem(SESSION_KEY);
          creds = null;
          signIn();
        },
      },
      `Sign out (${creds!.secretId.slice(0, 8)}…)`,
    ),
  );
  app.replaceChildren(nav, h("main", {}, body));
}

function table(headers: string[], rows: (Node | string)[][], empty: string): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

function button(label: string, action: () => Promise<unknown>, status: HTMLElement): HTMLElement {
  return h(
    "button",
    {
      onclick: async () => {
        status.textContent = "";
        try {
          await action();
          status.textContent = `${label}: done`;
        } catch (e) {
          status.textContent = errorText(e);
        }
      },
    },
    label,
  );
}

async function playDomains(): Promise<{ name: string; key: string | null }[]> {
  const r = await api("DescribeLiveDomains", { DomainType: 1, PageSize: 100 });
  const out = [];
  for (const d of r.DomainList ?? []) {
    const k = await api("DescribeLivePlayAuthKey", { DomainName: d.Name });
    const info = k.PlayAuthKeyInfo ?? {};
    out.push({ name: d.Name as string, key: info.Enable === 1 ? (info.AuthKey as string) : null });
  }
  return out;
}

/** A signed (when the domain signs) HLS URL of `app/stream` on `domain`. */
function hlsUrl(domain: { name: string; key: string | null }, app: string, stream: string): string {
  let query = `domain=${encodeURIComponent(domain.name)}`;
  if (domain.key) {
    const txTime = Math.floor(Date.now() / 1000 + 3600).toString(16).toUpperCase();
    const txSecret = bytesToHex(md5(utf8ToBytes(domain.key + stream + txTime)));
    query += `&txSecret=${txSecret}&txTime=${txTime}`;
  }
  return `${location.protocol}//${location.hostname}:${playPort}/${app}/${stream}.m3u8?${query}`;
}

let player: Hls | null = null;

/** Plays `url` in `video`; a stream whose first segment is still being
 * cut answers 404 for a moment, so a failed start is tried again. */
function preview(video: HTMLVideoElement, url: string, tries = 0) {
  player?.destroy();
  player = null;
  if (Hls.isSupported()) {
    const hls = new Hls({ liveSyncDurationCount: 2 });
    player = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal && tries < 15) {
        setTimeout(() => {
          if (player === hls) preview(video, url, tries + 1);
        }, 1000);
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else {
    video.src = url;
  }
  video.play().catch(() => {});
}

async function streams(): Promise<HTMLElement> {
  const mine = shown;
  const status = h("p", { class: "status" });
  const list = h("div", {});
  const video = h("video", { muted: "", autoplay: "", controls: "", playsinline: "", id: "preview" }) as HTMLVideoElement;
  video.muted = true;
  const caption = h("p", { class: "caption" }, "Choose Preview to watch a stream here (HLS).");
  const domains = await playDomains().catch(() => []);
  let previewing = "";
  const draw = async () => {
    let r;
    try {
      r = await api("DescribeLiveStreamOnlineList", { PageSize: 100 });
    } catch (e) {
      status.textContent = errorText(e);
      return;
    }
    const online = r.OnlineInfo ?? [];
    if (previewing && !online.some((s: any) => `${s.AppName}/${s.StreamName}` === previewing)) {
      player?.destroy();
      player = null;
      video.removeAttribute("src");
      video.load();
      caption.textContent = `${previewing} is no longer live.`;
      previewing = "";
    }
    const rows = online.map((s: any) => {
      const place = { DomainName: s.DomainName, AppName: s.AppName, StreamName: s.StreamName };
      const actions = h(
        "span",
        { class: "actions" },
        domains.length
          ? h(
              "button",
              {
                class: "preview",
                onclick: () => {
                  previewing = `${s.AppName}/${s.StreamName}`;
                  const url = hlsUrl(domains[0], s.AppName, s.StreamName);
                  caption.textContent = `${previewing} on ${domains[0].name}`;
                  preview(video, url);
                },
              },
              "Preview",
            )
          : "no play domain",
        button("Drop", () => api("DropLiveStream", place), status),
        button("Forbid", () => api("ForbidLiveStream", { ...place, Reason: "forbidden in the console" }), status),
      );
      return [s.DomainName, `${s.AppName}/${s.StreamName}`, s.PublishTimeList?.[0]?.PublishTime ?? "", actions];
    });
    list.replaceChildren(table(["Push domain", "Stream", "Since", ""], rows, "No stream is live."));
  };
  const first = draw();
  every(mine, draw, 2000, first);
  await first;
  return h("section", {}, h("h2", {}, "Live streams"), list, status, h("div", { class: "player" }, video, caption));
}

async function domainsTab(): Promise<HTMLElement> {
  const status = h("p", { class: "status" });
  const list = h("div", {});
  const draw = async () => {
    const r = await api("DescribeLiveDomains", { PageSize: 100 });
    const rows = (r.DomainList ?? []).map((d: any) => {
      const enabled = d.Status === 1;
      return [
        d.Name,
        d.Type === 0 ? "push" : "play",
        enabled ? "enabled" : "disabled",
        d.CreateTime,
        button(enabled ? "Disable" : "Enable", async () => {
          await api(enabled ? "ForbidLiveDomain" : "EnableLiveDomain", { DomainName: d.Name });
          await draw();
        }, status),
      ];
    });
    list.replaceChildren(table(["Domain", "Type", "Status", "Created", ""], rows, "No domain yet."));
  };
  const name = h("input", { name: "domain", placeholder: "play.example.com" }) as HTMLInputElement;
  const type = h("select", { name: "type" }, h("option", { value: "0" }, "push"), h("option", { value: "1" }, "play")) as HTMLSelectElement;
  const add = h(
    "form",
    {
      class: "inline",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("AddLiveDomain", { DomainName: name.value.trim(), DomainType: Number(type.value) });
          status.textContent = `Added ${name.value.trim()}.`;
          name.value = "";
          await draw();
        } catch (err) {
          status.textContent = errorText(err);
        }
      },
    },
    name,
    type,
    h("button", { type: "submit" }, "Add domain"),
  );
  await draw();
  return h("section", {}, h("h2", {}, "Domains"), add, status, list);
}

async function templatesTab(): Promise<HTMLElement> {
  const families: [string, string, string, string][] = [
    ["Transcoding", "DescribeLiveTranscodeTemplates", "Templates", "DescribeLiveTranscodeRules"],
    ["Recording", "DescribeLiveRecordTemplates", "Templates", "DescribeLiveRecordRules"],
    ["Snapshots", "DescribeLiveSnapshotTemplates", "Templates", "DescribeLiveSnapshotRules"],
    ["Callbacks", "DescribeLiveCallbackTemplates", "Templates", "DescribeLiveCallbackRules"],
    ["Time-shift", "DescribeLiveTimeShiftTemplates", "Templates", "DescribeLiveTimeShiftRules"],
  ];
  const out = h("section", {}, h("h2", {}, "Templates and rules"));
  for (const [label, list, field, rules] of families) {
    try {
      const t = await api(list);
      const r = await api(rules);
      out.append(
        h("h3", {}, label),
        table(["Id", "Name", "Description"], (t[field] ?? []).map((x: any) => [String(x.TemplateId), x.TemplateName, x.Description ?? ""]), "No template."),
        table(
          ["Domain", "App", "Stream", "Template"],
          (r.Rules ?? []).map((x: any) => [x.DomainName, x.AppName || "(all)", x.StreamName || "(all)", String(x.TemplateId)]),
          "No rule.",
        ),
      );
    } catch (e) {
      out.append(h("h3", {}, label), h("p", { class: "error" }, errorText(e)));
    }
  }
  return out;
}

const iso = (t: number) => new Date(t * 1000).toISOString().replace(/\.\d+Z$/, "Z");

async function eventsTab(): Promise<HTMLElement> {
  const now = Math.floor(Date.now() / 1000);
  const out = h("section", {}, h("h2", {}, "Pushes of the last day"));
  try {
    const r = await api("DescribeLiveStreamEventList", { StartTime: iso(now - 86400), EndTime: iso(now), PageSize: 100 });
    out.append(
      table(
        ["Stream", "Domain", "Started", "Ended", "Reason", "Client"],
        (r.EventList ?? []).map((e: any) => [e.StreamName, e.DomainName, e.StreamStartTime, e.StreamEndTime, e.StopReason, e.ClientIp]),
        "No push in the last day.",
      ),
    );
  } catch (e) {
    out.append(h("p", { class: "error" }, errorText(e)));
  }
  return out;
}

/** A line chart of `values` (one a minute) as SVG. */
function chart(title: string, unit: string, values: number[]): HTMLElement {
  const w = 720, hgt = 160, pad = 30;
  const max = Math.max(...values, 0) || 1;
  const x = (i: number) => pad + (i * (w - pad * 2)) / Math.max(values.length - 1, 1);
  const y = (v: number) => hgt - pad - (v / max) * (hgt - pad * 2);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("class", "chart");
  svg.innerHTML =
    `<line x1="${pad}" y1="${hgt - pad}" x2="${w - pad}" y2="${hgt - pad}" class="axis"/>` +
    `<polyline points="${points}" class="line"/>` +
    `<text x="${pad}" y="${pad - 10}">${max.toFixed(unit === "" ? 0 : 3)} ${unit}</text>` +
    `<text x="${pad}" y="${hgt - 8}">an hour ago</text><text x="${w - pad - 30}" y="${hgt - 8}">now</text>`;
  return h("figure", {}, h("figcaption", {}, title), svg);
}

async function statsTab(): Promise<HTMLElement> {
  const now = Math.floor(Date.now() / 1000);
  const out = h("section", {}, h("h2", {}, "Playback, last hour"));
  try {
    const r = await api("DescribeStreamPlayInfoList", { StartTime: iso(now - 3600), EndTime: iso(now) });
    const points = r.DataInfoList ?? [];
    const flux = points.reduce((a: number, p: any) => a + p.Flux, 0);
    const requests = points.reduce((a: number, p: any) => a + p.Request, 0);
    out.append(
      h("p", {}, `${flux.toFixed(2)} MB sent, ${requests} requests.`),
      chart("Bandwidth", "Mbit/s", points.map((p: any) => p.Bandwidth)),
      chart("Players online", "", points.map((p: any) => p.Online)),
    );
    const top = await api("DescribeTopClientIpSumInfoList", { StartTime: iso(now - 3600), EndTime: iso(now), OrderParam: "TotalFlux" });
    out.append(
      h("h3", {}, "Top clients"),
      table(
        ["Address", "MB", "Requests", "Failed"],
        (top.DataInfoList ?? []).map((c: any) => [c.ClientIp, c.TotalFlux.toFixed(2), String(c.TotalRequest), String(c.TotalFailedRequest)]),
        "No player in the last hour.",
      ),
    );
  } catch (e) {
    out.append(h("p", { class: "error" }, errorText(e)));
  }
  return out;
}

async function show(tab: string) {
  if (!creds) return signIn();
  if (tab !== "streams") {
    player?.destroy();
    player = null;
  }
  location.hash = tab;
  // Only the tab shown refreshes itself, and only the last one asked for
  // is framed.
  const mine = ++shown;
  const build: Record<string, () => Promise<HTMLElement>> = {
    streams,
    domains: domainsTab,
    templates: templatesTab,
    events: eventsTab,
    stats: statsTab,
  };
  try {
    frame(tab, h("p", {}, "Loading…"));
    const body = await (build[tab] ?? streams)();
    if (mine === shown) frame(tab, body);
  } catch (e) {
    if (mine !== shown) return;
    if (e instanceof ApiError && e.code.startsWith("AuthFailure")) return signIn(errorText(e));
    frame(tab, h("p", { class: "error" }, errorText(e)));
  }
}

async function start() {
  try {
    const config = await (await fetch("config.json")).json();
    if (config.playPort) playPort = config.playPort;
  } catch {
    // The default playback port.
  }
  creds = saved();
  if (creds) show(location.hash.slice(1) || "streams");
  else signIn();
}

start();
