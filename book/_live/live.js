// The entry point of the book's live widgets: every <div class="ifanp-live" data-widget="NAME"> on the
// page becomes the widget of ./NAME.js. The div's static content (one line saying how to serve the
// site) stays where a widget cannot run. Written by ifanp.live.live_widget() in a chapter's cell.
const WIDGETS = { gp: "./gp.js", np1d: "./np1d.js", image: "./image.js", attention: "./attention.js" };

async function start(root) {
  const name = root.dataset.widget;
  if (!(name in WIDGETS)) throw new Error(`unknown live widget ${name}`);
  const config = JSON.parse(root.dataset.config || "{}");
  const mod = await import(WIDGETS[name]);
  await mod.mount(root, config);
  root.classList.add("ifanp-live-on");
  document.documentElement.classList.add("ifanp-live-page");  // live.css then hides the frozen ipywidgets
}

for (const root of document.querySelectorAll("div.ifanp-live")) {
  start(root).catch((err) => {
    root.dataset.error = String(err && err.message ? err.message : err);
    const line = document.createElement("p");
    line.className = "ifanp-live-error";
    line.textContent = `The live widget could not start: ${root.dataset.error}`;
    root.append(line);
    console.error(err);
  });
}
