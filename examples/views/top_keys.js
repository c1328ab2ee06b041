// A tx_magic user view (tx_magic.register_view("Top keys", "examples/views/top_keys.js")):
// for the focused query token (hover or click one in the arcs; the last token otherwise), the keys it
// attends to most in the selected layer, for the head shown in the matrix or the mean of the heads,
// as a ranked list with bars. Token text is set with textContent only: it stays text.

const TOP = 8;

function weights(layer, query, heads) {
  const { queries, keys, data } = layer;
  const out = new Float32Array(keys);
  for (const h of heads) {
    const base = (h * queries + query) * keys;
    for (let k = 0; k < keys; k++) out[k] += data[base + k] / heads.length;
  }
  return out;
}

export function render(view) {
  const { el, selection, layer, tokens } = view;
  el.replaceChildren();
  const title = document.createElement("div");
  title.className = "top-keys-title";
  el.append(title);
  if (!layer) {
    title.textContent = "loading the layer…";
    return;
  }
  const query = selection.token >= 0 && selection.token < layer.queries ? selection.token : layer.queries - 1;
  const heads = selection.head >= 0 ? [selection.head] : selection.heads.length ? selection.heads : [...Array(layer.heads).keys()];
  const w = weights(layer, query, heads);
  const order = [...w.keys()].sort((a, b) => w[b] - w[a]).slice(0, TOP);
  const which = selection.head >= 0 ? `head ${selection.head}` : `mean of ${heads.length} heads`;
  title.textContent = `layer ${layer.layer}, ${which}: where "${tokens.queries[query]}" looks`;
  el.dataset.layer = String(layer.layer);
  el.dataset.query = String(query);
  const list = document.createElement("ol");
  list.className = "top-keys";
  for (const k of order) {
    const item = document.createElement("li");
    item.dataset.key = String(k);
    const bar = document.createElement("span");
    bar.style.display = "inline-block";
    bar.style.width = `${Math.round(120 * w[k])}px`;
    bar.style.height = "0.8em";
    bar.style.marginRight = "6px";
    bar.style.background = "steelblue";
    const label = document.createElement("span");
    label.className = "top-keys-token";
    label.textContent = tokens.keys[k];
    const value = document.createElement("span");
    value.textContent = ` ${(100 * w[k]).toFixed(1)}%`;
    item.append(bar, label, value);
    item.addEventListener("click", () => view.select({ layer: layer.layer }));
    list.append(item);
  }
  el.append(list);
}
