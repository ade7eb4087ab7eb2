// Progressive enhancement only: every page works without this file.
// A problem's link moves the caret to its line and column in the editor it names.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-line]");
  if (!link) return;
  const area = document.querySelector(link.getAttribute("href"));
  const line = Number(link.dataset.line);
  if (!area || !line) return;
  event.preventDefault();
  const lines = area.value.split("\n");
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
  offset += Math.max(0, Number(link.dataset.column || 1) - 1);
  area.focus();
  area.setSelectionRange(offset, offset);
});
