"""What each tool's page in bench_attention.py counts as drawn, what a user hovers, and how a switch
is made and timed: the browser side of each tool, one entry per tool in each dict."""

from __future__ import annotations

DRAWN = {
    "tx_magic": "document.querySelector('.txm-root[data-ready=\"1\"]') !== null",
    "bertviz": "document.querySelectorAll('svg text').length > 0"
               " && document.querySelectorAll('#layer option').length > 0",
    # Chart.js paints after the canvases exist: wait for pixels on the big pattern canvas.
    "circuitsvis": """(() => { const c = [...document.querySelectorAll('canvas')];
        if (c.length < 2) return false;
        const big = c.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
        const d = big.getContext('2d').getImageData(0, 0, big.width, big.height).data;
        for (let i = 3; i < d.length; i += 4 * 61) if (d[i] > 0) return true;
        return false; })()""",
    # attnview's view of attention is HTML, no matrix (that is a closed <details> until opened): the
    # strongest keys' cards and the table of every key's weight and bar for the selected query.
    "attnview": "document.querySelectorAll('#destinations .destination').length > 0"
                " && document.querySelectorAll('#weights tr').length > 0",
    # inspectus: one SVG rect a cell (the mean of every layer and head at first), coloured as it is made.
    "inspectus": """(() => { const r = document.querySelectorAll('svg.matrix rect.cell');
        return r.length > 0 && r[r.length - 1].style.fill !== ''; })()""",
}
HOVER_TARGETS = {
    "tx_magic": "[...document.querySelectorAll('[data-view=\"arc\"] .txm-token[data-side=\"query\"]')]",
    "bertviz": "[...document.querySelectorAll('svg text')].filter(t => /^tok/.test(t.textContent)).slice(0, 1e9)",
    "circuitsvis": "[[...document.querySelectorAll('canvas')]"
                   ".reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b))]",
    # Neither has a hover handler (attnview: CSS :hover only; inspectus: each cell's native SVG <title>
    # tooltip), so what a user does to ask about a token there: click it as the query. attnview's strip
    # shows the 11 tokens around the query and is rebuilt on each click; the held buttons still run their
    # handlers. inspectus: the row of every token under the matrix.
    "attnview": "[...document.querySelectorAll('#tokens .token')]",
    "inspectus": "[...document.querySelectorAll('.src-tokens .token')]",
}
HOVER_EVENTS = {"tx_magic": ["pointerenter", "mouseenter", "mouseover"], "bertviz": ["mouseover"],
                "circuitsvis": ["mousemove"], "attnview": ["click"], "inspectus": ["click"]}

#: Layer switch (tx_magic: until the matrix reports the new layer drawn; bertviz and attnview: the
#: select's handler and frames; inspectus: a click on a layer in its Layer list, handler and frames);
#: CircuitsVis shows one layer: a click on another head, handler and frames.
SWITCH = {
    "tx_magic": """async () => {
        const select = document.querySelector('select.txm-layer');
        const matrix = document.querySelector('[data-view="matrix"]');
        const target = String((Number(select.value) + 1) % select.options.length);
        const t0 = performance.now();
        const done = new Promise((resolve) => {
          const check = () => matrix.getAttribute('data-drawn-layer') === target;
          const obs = new MutationObserver(() => {
            if (check()) { obs.disconnect(); resolve(performance.now()); }
          });
          obs.observe(matrix, {attributes: true});
        });
        const late = new Promise((resolve) => setTimeout(() => resolve(null), 30000));
        select.value = target;
        select.dispatchEvent(new Event('change', {bubbles: true}));
        const end = await Promise.race([done, late]);
        return end === null ? null : end - t0;
    }""",
    "bertviz": """async () => {
        const select = document.querySelector('#layer');
        window.__rafWork = 0;
        const t0 = performance.now();
        select.value = String((Number(select.value) + 1) % select.options.length);
        select.dispatchEvent(new Event('change', {bubbles: true}));
        const sync = performance.now() - t0;
        await window.__frames(2);
        return sync + window.__rafWork;
    }""",
    "circuitsvis": """async () => {
        const heads = [...document.querySelectorAll('h4')];
        if (heads.length < 3) return null;
        window.__rafWork = 0;
        const t0 = performance.now();
        heads[2].dispatchEvent(new MouseEvent('click', {bubbles: true}));
        const sync = performance.now() - t0;
        await window.__frames(2);
        return sync + window.__rafWork;
    }""",
}
SWITCH["attnview"] = SWITCH["bertviz"]  # its layer <select> is #layer too; its change handler redraws
SWITCH["inspectus"] = """async () => {
    const dim = [...document.querySelectorAll('.dimension-values')]
      .find((d) => /^layer/i.test(d.querySelector('.dimension-name').textContent));
    const values = dim ? [...dim.querySelectorAll('.value')] : [];
    if (values.length < 2) return null;
    window.__rafWork = 0;
    const t0 = performance.now();
    values[1].dispatchEvent(new MouseEvent('click', {bubbles: true}));  // from every layer's mean to layer 1
    const sync = performance.now() - t0;
    await window.__frames(2);
    return sync + window.__rafWork;
}"""

#: The footnote under the table: what each tool's hover and switch columns measured.
INTERACTIONS = {
    "tx_magic": "hover a query token (arc view); switch: layer select until the matrix reports it drawn",
    "bertviz": "hover a token; switch: layer select (handler + 2 frames)",
    "circuitsvis": "mousemove over the pattern canvas; switch: a click on another head (one layer shown)",
    "attnview": "no hover handlers: 'hover' is a click on a query token; switch: layer select (handler + 2 frames)",
    "inspectus": "no hover handlers (SVG <title> tooltips): 'hover' is a click on a token; "
                 "switch: a click on layer 1 in its Layer list (handler + 2 frames)",
}
