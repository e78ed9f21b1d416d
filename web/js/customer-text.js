// The customer page's texts that follow the language switch: each element set with `say`
// remembers its key and parameters, so switching EN/ES redraws every one of them at once,
// live status included. Text only, never markup. A parameter may itself be a text to
// translate, given as `said(key, params)` (an error's text inside a sentence).

import { t } from "./i18n.js";

const spoken = new Map(); // element -> [key, params]

/** A parameter that is translated when the sentence is drawn, in the language of the moment. */
export function said(key, params = {}) {
  return { said: [key, params] };
}

/** The text of `key` now, with any `said` parameter translated first. */
export function render(key, params = {}) {
  const filled = {};
  for (const [name, value] of Object.entries(params)) {
    filled[name] = value !== null && typeof value === "object" && Array.isArray(value.said) ? render(...value.said) : value;
  }
  return t(key, filled);
}

/** Put a translated text in `el` and remember it, so a language switch redraws it. */
export function say(el, key, params = {}) {
  spoken.set(el, [key, params]);
  el.textContent = render(key, params);
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
    el.textContent = render(key, params);
  }
}
