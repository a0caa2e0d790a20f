// The header's menu on narrow screens: a button opens and closes the links, language switch, health badge and
// account. Without this script the header wraps instead (the button stays hidden).
const header = document.querySelector(".topbar");
const toggle = document.getElementById("menu-toggle");
const menu = document.getElementById("site-menu");

function setOpen(open) {
  toggle.setAttribute("aria-expanded", String(open));
  header.classList.toggle("menu-open", open);
}

if (header && toggle && menu) {
  header.classList.add("has-menu");
  toggle.hidden = false;
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  header.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
      setOpen(false);
      toggle.focus();
    }
  });
  // Widening the window past the menu's breakpoint shows the header as a row again: nothing stays open.
  window.matchMedia("(min-width: 1100px)").addEventListener("change", (event) => {
    if (event.matches) setOpen(false);
  });
}
