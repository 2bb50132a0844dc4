// onnxruntime-web, loaded once per page from the site itself (tools/fetch_widgets_js.py copies it from
// npm into _static/ort/ at build time), and the exported models (python -m ifanp export-onnx, into
// _live/models/ at build time). One WebAssembly thread: no cross-origin-isolation headers needed.
const ORT_DIR = new URL("../_static/ort/", import.meta.url);
const MODELS_DIR = new URL("./models/", import.meta.url);
let ortPromise = null;
const sessions = new Map();

export function loadOrt() {
  if (location.protocol === "file:") {
    return Promise.reject(new Error("browsers refuse WebAssembly modules in pages opened from a file; serve the site over HTTP (make serve)"));
  }
  if (!ortPromise) {
    ortPromise = import(new URL("ort.wasm.min.mjs", ORT_DIR).href).then((ort) => {
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.wasmPaths = ORT_DIR.href;
      return ort;
    });
  }
  return ortPromise;
}

export async function manifest() {
  const r = await fetch(new URL("manifest.json", MODELS_DIR));
  if (!r.ok) throw new Error(`no model manifest (${r.status}); the book build exports the models`);
  return r.json();
}

export async function digits() {
  const r = await fetch(new URL("../digits.json", MODELS_DIR));
  if (!r.ok) throw new Error(`no test digits (${r.status})`);
  return r.json();
}

/** An InferenceSession for models/<file>, created once per page. */
export async function session(file) {
  if (!sessions.has(file)) {
    sessions.set(file, loadOrt().then((ort) => ort.InferenceSession.create(new URL(file, MODELS_DIR).href,
      { executionProviders: ["wasm"], graphOptimizationLevel: "all" })));
  }
  return sessions.get(file);
}

/** Run a session on {name: [Float32Array, dims]}; returns {name: {data, dims}}. */
export async function run(sess, feeds) {
  const ort = await loadOrt();
  const inputs = {};
  for (const [name, [data, dims]] of Object.entries(feeds)) inputs[name] = new ort.Tensor("float32", data, dims);
  const out = await sess.run(inputs);
  const res = {};
  for (const [name, t] of Object.entries(out)) res[name] = { data: t.data, dims: t.dims };
  return res;
}
