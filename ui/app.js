// Review shortcuts: a accept, r reject, 1-9 relabel as class n, u undo, p play the clip,
// arrows previous/next. Each key clicks the button that shows it, so keys and buttons run the
// same event; keys are ignored while a text field has focus (a focused slider or button does
// not count) and when the Review tab (its buttons) is not on screen. Escape leaves any field
// and returns to the card; Enter in a number box or the reviewer box stores it and leaves.
(() => {
  const KEYS = { a: "btn-accept", r: "btn-reject", u: "btn-undo",
                 arrowleft: "btn-prev", arrowright: "btn-next" };
  const SLIDER_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown",
                               "Home", "End"]);
  const TEXT_TYPES = new Set(["", "text", "number", "search", "email", "password", "url", "tel"]);

  function typing(el) {
    if (!el) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && TEXT_TYPES.has((el.getAttribute("type") || "").toLowerCase());
  }
  const isRange = (el) => el && el.tagName === "INPUT" && el.type === "range";

  function toCard() {
    const active = document.activeElement;
    if (active && active !== document.body) active.blur();
    const card = document.getElementById("card-title");
    if (card && card.offsetParent !== null) {
      card.setAttribute("tabindex", "-1");
      card.focus({ preventScroll: true });
    }
  }

  // p: the clip. A video restarts from its beginning; the audio player's own play / pause
  // button is pressed (playing: pause; paused or ended: play).
  function play() {
    const shown = (sel) => { const el = document.querySelector(sel); return el && el.offsetParent !== null; };
    if (shown("#card-video")) {
      const video = document.querySelector("#card-video video");
      if (!video) return false;
      video.currentTime = 0;
      const p = video.play();
      if (p && p.catch) p.catch(() => {});
      return true;
    }
    const button = shown("#card-audio") && document.querySelector("#card-audio .play-pause-button");
    if (button) { button.click(); return true; }
    return false;
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const el = e.target;
    if (e.key === "Escape") { toCard(); return; }
    if (e.key === "Enter" && el && typing(el) &&
        ((el.tagName === "INPUT" && el.type === "number") || el.closest("#reviewer"))) {
      // a typed slider value or the reviewer name: Enter stores it (the blur is the release)
      e.preventDefault();
      toCard();
      return;
    }
    if (e.repeat) return;
    if (typing(el) || typing(document.activeElement)) return;
    if (isRange(el) && SLIDER_KEYS.has(e.key)) return;   // the slider's own keys
    const key = e.key.toLowerCase();
    if (key === "p") {
      if (document.getElementById("btn-accept")?.offsetParent !== null && play()) e.preventDefault();
      return;
    }
    const id = KEYS[key] || (/^[1-9]$/.test(key) ? `btn-relabel-${key}` : null);
    if (!id) return;
    const button = document.getElementById(id);
    if (!button || button.offsetParent === null || button.disabled) return;
    e.preventDefault();
    button.click();
  }, true);

  // A slider moved with the keyboard stores its value when the key is released, as a mouse
  // release does (Gradio's slider sends "release" on pointerup only).
  // A quick run of presses is one release, 250 ms after the last key goes up.
  const pending = new WeakMap();
  document.addEventListener("keyup", (e) => {
    const range = e.target;
    if (!isRange(range) || !SLIDER_KEYS.has(e.key)) return;
    clearTimeout(pending.get(range));
    pending.set(range, setTimeout(() => {
      range.dispatchEvent(new PointerEvent("pointerup", { bubbles: true }));
    }, 250));
  }, true);

  // The training log follows new lines.
  let lastLog = null;
  setInterval(() => {
    const log = document.querySelector("#train-log textarea");
    if (log && log.value !== lastLog) {
      lastLog = log.value;
      log.scrollTop = log.scrollHeight;
    }
  }, 400);
})();
