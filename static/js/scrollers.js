// A table that scrolls sideways inside its card (a `.scroll` wrapper) can be scrolled with the keyboard: while
// it is wider than its card, its wrapper takes focus (the arrow keys then scroll it); when it fits, it does not.
const watched = new ResizeObserver((entries) => {
  for (const entry of entries) update(entry.target.closest(".scroll"));
});

function update(wrapper) {
  if (!wrapper) return;
  if (wrapper.scrollWidth > wrapper.clientWidth) wrapper.tabIndex = 0;
  else wrapper.removeAttribute("tabindex");
}

for (const wrapper of document.querySelectorAll(".scroll")) {
  watched.observe(wrapper);
  for (const child of wrapper.children) watched.observe(child);  // a table that grows as its rows arrive
}
