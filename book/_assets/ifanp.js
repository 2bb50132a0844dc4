// Click a figure of a cell's output to see it full size; click again (or press Escape) to close.
document.addEventListener("click", (event) => {
  const img = event.target.closest("div.cell_output img");
  const open = document.querySelector(".ifanp-zoom");
  if (open) { open.remove(); return; }
  if (!img) return;
  const overlay = document.createElement("div");
  overlay.className = "ifanp-zoom";
  const big = document.createElement("img");
  big.src = img.src;
  big.alt = img.alt || "figure";
  overlay.appendChild(big);
  document.body.appendChild(overlay);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.querySelector(".ifanp-zoom")?.remove();
});
