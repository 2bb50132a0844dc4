// The attention chapter's live widget: click a target pixel and see where IFANP's global cross-attention
// (GCA) looks for it, and LPA's weights over its 3 x 3 neighbourhood. The numbers come from the shipped
// IFANP's attention graph (ifanp/onnx_export.py AttentionGraph: the same weights as
// GridNP.attention_map and GridNP.lpa_steps), run in the page by onnxruntime-web.
import { el, field, select, paint, grey, magma, rng, MISSING, arr } from "./common.js";
import { manifest, digits, session, run } from "./runtime.js";

export async function mount(root, cfg) {
  const [man, digitSet] = await Promise.all([manifest(), digits()]);
  const info = man.attention.find((m) => m.name === (cfg.model || "mnist-ifanp")) || man.attention[0];
  if (!info) throw new Error("no attention graph was exported");
  const S = digitSet.size, N = S * S, R = info.res, down = S / R;
  const st = { digit: cfg.digit || 0, ratio: cfg.ratio ?? 0.2, target: cfg.target || [14, 14], mask: null, image: null };

  const digitSel = select(digitSet.digits.map((d, i) => [String(i), `test digit ${i + 1} (a ${d.label})`]), String(st.digit));
  const ratio = el("input", { type: "range", min: 0.01, max: 1, step: 0.01, value: st.ratio });
  const ratioOut = el("output");
  const controls = el("div", { class: "ifanp-controls" }, field("image", digitSel), field("context ratio", ratio, ratioOut));
  const ctxCanvas = el("canvas", { width: S, height: S, class: "ifanp-px" });
  const gcaCanvas = el("canvas", { width: R, height: R, class: "ifanp-px" });
  const lpaCanvas = el("canvas", { width: 3, height: 3, class: "ifanp-px" });
  const lpaText = el("pre", { class: "ifanp-lpa" });
  const status = el("p", { class: "ifanp-title" });
  const fig = (c, t) => el("figure", { class: "ifanp-panel" }, c, el("figcaption", {}, t));
  root.replaceChildren(el("div", { class: "ifanp-image" }, controls, el("div", { class: "ifanp-figure" }, status,
    el("div", { class: "ifanp-panels" }, fig(ctxCanvas, "context: click a target pixel"),
      fig(gcaCanvas, `GCA weights over the ${R} x ${R} key cells`), fig(lpaCanvas, "LPA: its 3 x 3 neighbours")),
    lpaText, el("p", { class: "ifanp-help" }, "Click (or tap) a pixel of the context to make it the target; the red square marks it."))));

  let out = null;
  function newMask() {
    st.ratio = Number(ratio.value); ratioOut.textContent = `${Math.round(st.ratio * 100)} %`;
    const g = rng(1000 + st.digit);
    st.mask = Uint8Array.from({ length: N }, () => (g() < st.ratio ? 1 : 0));
    compute();
  }
  function newDigit() {
    st.digit = Number(digitSel.value);
    st.image = Float32Array.from(digitSet.digits[st.digit].pixels, (v) => v / 255);
    newMask();
  }
  async function compute() {
    const sess = await session(info.file);
    const image = Float32Array.from(st.image, (v, i) => v * st.mask[i]);
    const t0 = performance.now();
    out = await run(sess, { image: [image, [1, 1, S, S]], mask: [Float32Array.from(st.mask), [1, 1, S, S]] });
    out.ms = performance.now() - t0;
    out.image = image;
    show();
  }
  function show() {
    const [r, c] = st.target, q = Math.floor(r / down) * R + Math.floor(c / down);
    const gca = out.gca.data.subarray(q * R * R, (q + 1) * R * R);  // head 0
    let top = 0;
    for (const v of gca) top = Math.max(top, v);
    paint(gcaCanvas, R, gca, (v) => magma(v / (top || 1)));
    const lpa = Array.from({ length: 9 }, (_, k) => out.lpa.data[k * R * R + Math.floor(r / down) * R + Math.floor(c / down)]);
    paint(lpaCanvas, 3, lpa, (v) => magma(v / Math.max(...lpa)));
    lpaText.textContent = `LPA weights at cell (${Math.floor(r / down)}, ${Math.floor(c / down)}):\n`
      + [0, 1, 2].map((i) => lpa.slice(3 * i, 3 * i + 3).map((v) => v.toFixed(3)).join("  ")).join("\n");
    paint(ctxCanvas, S, st.image, (v, i) => (i === r * S + c ? [230, 30, 30] : st.mask[i] ? grey(v) : MISSING));
    status.textContent = `target pixel (${r}, ${c}); the largest GCA weight is ${top.toFixed(3)} (a uniform one over the `
      + `context cells would be ${(1 / Math.max(1, gca.reduce((s, v) => s + (v > 0), 0))).toFixed(3)}); ${out.ms.toFixed(0)} ms`;
    root.dataset.state = JSON.stringify({ model: info.name, digit: st.digit, ratio: st.ratio, target: st.target,
      image: arr(out.image), mask: Array.from(st.mask).join(""), gca_row: arr(gca), lpa: arr(lpa), run_ms: out.ms });
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }
  ctxCanvas.addEventListener("pointerdown", (ev) => {
    const b = ctxCanvas.getBoundingClientRect();
    st.target = [Math.min(S - 1, Math.floor(((ev.clientY - b.top) / b.height) * S)),
      Math.min(S - 1, Math.floor(((ev.clientX - b.left) / b.width) * S))];
    if (out) show();
  });
  digitSel.addEventListener("change", newDigit);
  ratio.addEventListener("input", newMask);
  newDigit();
}
