// Review shortcuts: a accept, r reject, 1-9 relabel as class n, u undo, arrows previous/next.
// Each key clicks the button that shows it, so keys and buttons run the same event; keys are
// ignored while typing in a field and when the Review tab (its buttons) is not on screen.
(() => {
  const KEYS = { a: "btn-accept", r: "btn-reject", u: "btn-undo",
                 arrowleft: "btn-prev", arrowright: "btn-next" };

  function typing(el) {
    if (!el) return false;
    const tag = el.tagName;
    return el.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (typing(e.target) || typing(document.activeElement)) return;
    const key = e.key.toLowerCase();
    const id = KEYS[key] || (/^[1-9]$/.test(key) ? `btn-relabel-${key}` : null);
    if (!id) return;
    const button = document.getElementById(id);
    if (!button || button.offsetParent === null || button.disabled) return;
    e.preventDefault();
    button.click();
  });
})();
