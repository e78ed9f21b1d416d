// The support program to download, for the computer this page runs on: one file that needs no
// Python and no installation, from GET /api/v1/downloads (public: the customer has no token
// yet). The page names the file's SHA-256 and its Ed25519 signature by the organisation's
// release key, with that public key, so anyone can check the file is the one published
// (docs/agent.md, "Signed downloads").
//
// The platform comes from the browser: navigator.userAgentData where the browser has it (its
// architecture asked for, to tell Apple silicon from Intel Macs), else the user-agent string.
// A phone or tablet is offered nothing, since the program cannot run there; other systems
// stay one click away for a customer whose browser misreports its own.
//
// Everything from the network is set as text, never as markup.

import { onLanguageChange, t } from "./i18n.js";

// Literal keys only, so tests/unit/test_i18n.py can check every one exists in both languages.
const PLATFORM_KEYS = {
  "linux-x86_64": "platform.linux_x86_64",
  "windows-x86_64": "platform.windows_x86_64",
  "macos-arm64": "platform.macos_arm64",
  "macos-x86_64": "platform.macos_x86_64",
};

const state = { offer: null, platforms: null };

const $ = (id) => document.getElementById(id);

/**
 * Which agent platforms fit this browser's machine, best first; empty for a phone or an
 * unknown system.
 * @param {{userAgent?: string, userAgentData?: object}} nav navigator, or a stand-in
 * @returns {Promise<{platforms: string[], mobile: boolean}>}
 */
export async function detectPlatforms(nav = navigator) {
  const ua = String(nav.userAgent || "");
  const data = nav.userAgentData;
  // The phone rule of customer-device.js, without its pointer test: a laptop with a touch
  // screen still gets its file.
  const mobile =
    data?.mobile === true ||
    /Android|iPhone|iPad|iPod|Windows Phone|IEMobile|BlackBerry|Opera Mini|Mobile/i.test(ua) ||
    (/Macintosh/.test(ua) && Number(nav.maxTouchPoints) > 1);
  if (mobile) {
    return { platforms: [], mobile: true };
  }
  // An overridden or privacy-reduced userAgentData may have an empty platform: then the string.
  const named = String(data?.platform || "");
  const system = named || (/Windows/.test(ua) ? "Windows" : /Mac OS X|Macintosh/.test(ua) ? "macOS" : /CrOS/.test(ua) ? "Chrome OS" : /Linux|X11/.test(ua) ? "Linux" : "");
  let arch = "";
  if (named && typeof data.getHighEntropyValues === "function") {
    try {
      const values = await data.getHighEntropyValues(["architecture", "bitness"]);
      arch = String(values.architecture || "");
    } catch {
      arch = "";
    }
  }
  if (system === "Windows") {
    return { platforms: ["windows-x86_64"], mobile: false }; // Windows on Arm runs it emulated
  }
  if (system === "macOS") {
    if (arch === "arm") return { platforms: ["macos-arm64", "macos-x86_64"], mobile: false };
    if (arch === "x86") return { platforms: ["macos-x86_64"], mobile: false };
    // Safari and Firefox do not tell; most Macs sold since 2020 have Apple silicon.
    return { platforms: ["macos-arm64", "macos-x86_64"], mobile: false };
  }
  if (system === "Linux") {
    const arm = arch === "arm" || /aarch64|armv[78]/i.test(ua);
    return { platforms: arm ? [] : ["linux-x86_64"], mobile: false };
  }
  return { platforms: [], mobile: false };
}

function platformName(platform) {
  return t(PLATFORM_KEYS[platform] ?? "platform.other");
}

function element(tag, { text = null, className = null, id = null } = {}) {
  const el = document.createElement(tag);
  if (text !== null) el.textContent = text;
  if (className !== null) el.className = className;
  if (id !== null) el.id = id;
  return el;
}

function fact(list, label, value, id) {
  list.append(element("dt", { text: label }));
  const dd = element("dd");
  dd.append(element("code", { text: value, className: "command", id }));
  list.append(dd);
}

function link(file, label, id = null) {
  const a = element("a", { text: label, id });
  a.href = file.url;
  a.setAttribute("download", file.name);
  a.dataset.platform = file.platform;
  return a;
}

function drawFile(box, file) {
  const megabytes = (file.size / 1e6).toFixed(1);
  const main = element("p");
  main.append(link(file, t("download.button", { platform: platformName(file.platform) }), "download-link"));
  main.append(" ", element("span", { text: t("download.size", { size: megabytes }), className: "hint" }));
  box.append(main);
  const facts = element("dl", { className: "facts" });
  fact(facts, t("download.sha256"), file.sha256, "download-sha256");
  if (file.signature) {
    fact(facts, t("download.signature"), file.signature, "download-signature");
  }
  box.append(facts);
  if (!file.signature) {
    box.append(element("p", { text: t("download.unsigned"), className: "hint", id: "download-unsigned" }));
  }
  box.append(element("p", { text: t("download.check"), className: "hint" }));
}

function drawKey(box, offer) {
  if (!offer.release_public_key) {
    return;
  }
  const details = element("details", { id: "download-key" });
  details.append(element("summary", { text: t("download.public_key") }));
  details.append(element("p", { text: t("download.fingerprint", { fingerprint: offer.release_key_fingerprint }) }));
  details.append(element("pre", { text: offer.release_public_key, className: "command", id: "download-key-pem" }));
  box.append(details);
}

function drawOthers(box, others) {
  if (others.length === 0) {
    return;
  }
  const details = element("details", { id: "download-others" });
  details.append(element("summary", { text: t("download.other") }));
  const list = element("ul");
  for (const file of others) {
    const item = element("li");
    item.append(link(file, platformName(file.platform)));
    item.append(" ", element("code", { text: file.sha256, className: "hint" }));
    list.append(item);
  }
  details.append(list);
  box.append(details);
}

/** Draw the offer in the current language (again after each switch). */
export function drawDownload() {
  const box = $("download-box");
  const { offer, platforms } = state;
  if (box === null || offer === null || platforms === null) {
    return;
  }
  box.replaceChildren();
  if (offer.files.length === 0) {
    box.hidden = true; // nothing published: the page's other ways in remain
    return;
  }
  box.hidden = false;
  box.append(element("h2", { text: t("download.title"), id: "download-title" }));
  const mine = platforms.platforms.map((p) => offer.files.find((f) => f.platform === p)).find(Boolean);
  box.dataset.platform = mine ? mine.platform : "";
  if (mine) {
    box.append(element("p", { text: t("download.intro") }));
    drawFile(box, mine);
  } else {
    const key = platforms.mobile ? "download.mobile" : "download.none_for_platform";
    box.append(element("p", { text: t(key), id: "download-none" }));
  }
  drawKey(box, offer);
  drawOthers(box, offer.files.filter((f) => f !== mine));
}

async function start() {
  let offer;
  try {
    const response = await fetch("/api/v1/downloads", { credentials: "omit", cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) return; // the page works without downloads
    offer = await response.json();
  } catch {
    return;
  }
  if (!offer || !Array.isArray(offer.files)) return;
  state.platforms = await detectPlatforms();
  state.offer = offer;
  drawDownload();
  $("download-box")?.setAttribute("data-ready", "true");
}

onLanguageChange(drawDownload);
start();
