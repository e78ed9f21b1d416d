// Whether this browser runs on a device that cannot run the support program (a phone or a
// tablet), read from the browser itself. The rule, first match wins (docs/web.md, "The customer
// page on a phone"):
//
//   1. navigator.userAgentData.mobile is true                     -> cannot run it
//   2. the user agent names a phone or tablet system
//      (Android, iPhone, iPad, iPod, Windows Phone, IEMobile, BlackBerry, Opera Mini, Mobile)
//                                                                   -> cannot run it
//   3. an iPad asking for the desktop site ("Macintosh" with more than one touch point)
//                                                                   -> cannot run it
//   4. the only pointers are coarse (pointer: coarse, and no any-pointer: fine)
//                                                                   -> cannot run it
//   5. otherwise                                                    -> a computer
//
// userAgentData.mobile false does not end the search: a phone browser with a rewritten user
// agent, or Chromium's device emulation, may report false there and still be a phone. A wrong
// "phone" answer costs the customer one extra click (the page offers "this device is a
// computer"); a wrong "computer" answer would spend the code on a page that cannot use it.

const MOBILE_SYSTEMS = /Android|iPhone|iPad|iPod|Windows Phone|IEMobile|BlackBerry|Opera Mini|Mobile/i;

function matches(query) {
  return typeof window.matchMedia === "function" && window.matchMedia(query).matches;
}

/** Which rule above decided, for tests and for the page's data-device attribute. */
export function deviceKind(nav = navigator) {
  if (nav.userAgentData?.mobile === true) {
    return "phone";
  }
  const agent = String(nav.userAgent ?? "");
  if (MOBILE_SYSTEMS.test(agent)) {
    return "phone";
  }
  if (/Macintosh/.test(agent) && Number(nav.maxTouchPoints) > 1) {
    return "phone";
  }
  if (matches("(pointer: coarse)") && !matches("(any-pointer: fine)")) {
    return "phone";
  }
  return "computer";
}

/** True on a phone or tablet: the page must not spend the code for an agent it cannot run. */
export function cannotRunAgent() {
  return deviceKind() === "phone";
}
