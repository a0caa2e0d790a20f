// What the mouse does on file pickers, the keyboard does too, on every page: a drop zone (`.dropzone` that
// takes the focus) opens its first file picker with Enter or Space, and a button-styled label around a
// hidden file input ("Choose images", "Choose .zip") takes the focus and opens its picker the same way.

const ACTIVATES = new Set(["Enter", " "]);

function opensOnKeys(element, input) {
  element.addEventListener("keydown", (event) => {
    if (event.target !== element || !ACTIVATES.has(event.key)) return;
    event.preventDefault(); // Space would scroll the page
    input.click();
  });
}

function hiddenPicker(label) {
  const input = label.querySelector('input[type="file"]');
  return input && input.hidden ? input : null;
}

function connect() {
  for (const label of document.querySelectorAll("label.button")) {
    const input = hiddenPicker(label);
    if (!input || label.hasAttribute("tabindex")) continue;
    label.tabIndex = 0;
    label.setAttribute("role", "button");
    opensOnKeys(label, input);
  }
  for (const zone of document.querySelectorAll(".dropzone[tabindex]")) {
    const input = zone.querySelector('input[type="file"]');
    if (input) opensOnKeys(zone, input);
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
else connect();
