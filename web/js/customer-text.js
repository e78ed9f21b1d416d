// The customer page's texts that follow the language switch: each element set with `say`
// remembers its key and parameters, so switching EN/ES redraws every one of them at once,
// live status included. Text only, never markup.

import { t } from "./i18n.js";

const spoken = new Map(); // element -> [key, params]

/** Put a translated text in `el` and remember it, so a language switch redraws it. */
export function say(el, key, params = {}) {
  spoken.set(el, [key, params]);
  el.textContent = t(key, params);
}

/** Empty `el` and forget it. */
export function silence(el) {
  spoken.delete(el);
  el.textContent = "";
}

/** Stop redrawing `el`: it is about to leave the page, or its text no longer comes from a key. */
export function forget(el) {
  spoken.delete(el);
}

export function redrawSpoken() {
  for (const [el, [key, params]] of spoken) {
    el.textContent = t(key, params);
  }
}
