(() => {
  const PAGE = JSON.parse(document.getElementById("page-data").textContent);
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const cohortId = PAGE.cohort_id;
  const initial = PAGE.filters;
  const FACETS = PAGE.facets;
  const ORDERED = new Set(["integer", "number", "date"]);
  const LIST_OPS = new Set(["in", "exclude", "excludeifany"]);
  const OPS = ["=", "!=", "<", "<=", ">", ">=", "in", "exclude", "excludeifany", "is", "not"];
  const OP_TEXT = {"=": "is", "!=": "is not", "<": "<", "<=": "≤", ">": ">", ">=": "≥", "in": "is any of",
                   "exclude": "not only", "excludeifany": "none of", "is": "is missing", "not": "is present"};
  const $ = (id) => document.getElementById(id);
  let fields = {}, clauses = [], timer = null, seq = 0;

  async function api(method, url, body) {
    const r = await fetch(url, {method, credentials: "same-origin", headers: {
      "Content-Type": "application/json", "X-CSRF-Token": csrf}, body: body ? JSON.stringify(body) : undefined});
    const data = r.headers.get("Content-Type")?.includes("json") ? await r.json() : null;
    if (!r.ok) throw Object.assign(new Error(data?.detail || r.statusText), {data});
    return data;
  }
  const el = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) { if (k === "text") n.textContent = v; else n.setAttribute(k, v); }
    kids.forEach((k) => n.append(k)); return n;
  };

  function opsFor(f) { return OPS.filter((op) => ORDERED.has(f.type) || !["<", "<=", ">", ">="].includes(op)); }

  function valueInput(f, op, value) {
    if (op === "is" || op === "not") return el("span");
    const many = LIST_OPS.has(op);
    if (f.values && many) return picker(f, value);
    if (f.values || f.type === "boolean") {
      const s = el("select", {});
      const values = f.values || ["true", "false"];
      const chosen = new Set([].concat(value ?? []).map(String));
      values.forEach((v) => { const o = el("option", {value: v, text: valueText(f, v)}); if (chosen.has(v)) o.selected = true; s.append(o); });
      return s;
    }
    const type = f.type === "date" ? "date" : (ORDERED.has(f.type) && !many ? "number" : "text");
    const i = el("input", {type, placeholder: many ? "values, separated by commas" : (f.unit ? f.unit : "")});
    if (type === "number") i.step = "any";
    if (value !== undefined && value !== null) i.value = [].concat(value).join(", ");
    return i;
  }

  // A searchable list of the field's values, each a checkbox: typing narrows the list
  // (by name or code), Space ticks; no Ctrl-click.
  function picker(f, value) {
    const chosen = new Set([].concat(value ?? []).map(String));
    const box = el("div", {class: "picker", role: "group"});
    const search = el("input", {type: "search", placeholder: `search ${f.values.length} values`,
                                "aria-label": "search values"});
    const list = el("div", {class: "picker-list"});
    f.values.forEach((v) => {
      const tick = el("input", {type: "checkbox", value: v});
      tick.checked = chosen.has(v);
      list.append(el("label", {class: "inline", "data-value": v}, tick, document.createTextNode(" " + valueText(f, v))));
    });
    search.oninput = () => {
      const text = search.value.trim().toLowerCase();
      list.querySelectorAll("label").forEach((l) => {
        l.hidden = text !== "" && !l.textContent.toLowerCase().includes(text)
          && !l.dataset.value.toLowerCase().includes(text);
      });
    };
    box.append(search, list);
    return box;
  }

  function readValue(f, op, input) {
    if (op === "is" || op === "not") return "MISSING";
    if (input.classList.contains("picker")) {
      const raw = [...input.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value);
      return raw.length ? raw.map((v) => (ORDERED.has(f.type) && f.type !== "date" ? Number(v) : v)) : undefined;
    }
    const cast = (v) => f.type === "boolean" ? v === "true" : (ORDERED.has(f.type) && f.type !== "date" ? Number(v) : v);
    let raw;
    if (input.tagName === "SELECT") raw = [...input.selectedOptions].map((o) => o.value);
    else raw = LIST_OPS.has(op) ? input.value.split(",").map((v) => v.trim()).filter(Boolean) : [input.value.trim()];
    if (!raw.length || raw[0] === "") return undefined;
    return LIST_OPS.has(op) ? raw.map(cast) : cast(raw[0]);
  }

  // what people read for a field's value: its display name where the mapping gives one
  function valueText(f, value) {
    return (f && f.value_labels && f.value_labels[value]) || String(value);
  }

  function render() {
    const box = $("clauses"); box.replaceChildren();
    clauses.forEach((c, i) => {
      const fsel = el("select", {"aria-label": "field"});
      Object.values(fields).forEach((f) => fsel.append(el("option", {value: f.field, text: f.label || f.field})));
      fsel.value = c.field;
      const f = fields[c.field];
      const osel = el("select", {"aria-label": "operator"});
      opsFor(f).forEach((op) => osel.append(el("option", {value: op, text: OP_TEXT[op]})));
      osel.value = c.op;
      const input = valueInput(f, c.op, c.value);
      input.setAttribute("aria-label", "value");
      const remove = el("button", {type: "button", class: "small secondary", "aria-label": "remove", text: "×"});
      fsel.onchange = () => { c.field = fsel.value; c.op = fields[c.field].values ? "in" : "="; c.value = undefined; render(); changed(); };
      osel.onchange = () => { c.op = osel.value; c.value = readValue(f, c.op, input); render(); changed(); };
      input.onchange = () => { c.value = readValue(f, c.op, input); changed(); };
      if (!input.classList.contains("picker")) input.oninput = input.onchange;
      remove.onclick = () => { clauses.splice(i, 1); render(); changed(); };
      box.append(el("div", {class: "clause"}, fsel, osel, input, remove));
    });
  }

  function filterDoc() {
    if (!$("filter-json").hidden) {
      const text = $("filter-json").value.trim();
      return text ? JSON.parse(text) : null;
    }
    const content = clauses.filter((c) => c.value !== undefined)
      .map((c) => ({op: c.op, content: {field: c.field, value: c.value}}));
    return content.length ? {op: "and", content} : null;
  }

  function load(doc) {
    const parts = !doc ? [] : (doc.op === "and" ? doc.content : [doc]);
    if (parts.some((p) => !p.content || p.content.field === undefined || !fields[p.content.field])) {
      $("filter-json").hidden = false; $("filter-json").value = JSON.stringify(doc, null, 2); return;
    }
    clauses = parts.map((p) => ({field: p.content.field, op: p.op, value: p.content.value}));
  }

  function changed() { clearTimeout(timer); timer = setTimeout(refresh, 200); }

  function showError(e) {
    const where = e.data?.errors?.[0]?.field;
    $("query-error").textContent = e.message + (where ? ` (at ${where})` : "");
  }

  async function refresh() {
    const mine = ++seq, level = $("level").value;
    $("level-name").textContent = level;
    let filters;
    try { filters = filterDoc(); } catch (e) { $("query-error").textContent = "The JSON filter is not valid JSON: " + e.message; return; }
    try {
      const r = await api("POST", `/api/v1/query/${level}`, {filters, facets: FACETS.filter((f) => fields[f]), size: 10});
      if (mine !== seq) return;
      $("query-error").textContent = "";
      $("total").textContent = r.total;
      renderFacets(r.facets);
      renderHits(r.hits);
      renderCompleteness(level, filters);
    } catch (e) { if (mine === seq) showError(e); }
  }

  function renderFacets(facets) {
    const box = $("facets"); box.replaceChildren();
    for (const [name, facet] of Object.entries(facets)) {
      const max = Math.max(1, ...facet.buckets.map((b) => typeof b.doc_count === "number" ? b.doc_count : 4));
      const table = el("table", {class: "bars"});
      facet.buckets.forEach((b) => {
        const n = typeof b.doc_count === "number" ? b.doc_count : 4;
        const row = el("tr", {"data-facet": name, "data-key": String(b.key), title: "add as a condition"},
          el("th", {text: valueText(fields[name], b.key)}), el("td", {class: "bar"}, el("span", {style: `width:${100 * n / max}%`})),
          el("td", {class: "num", text: String(b.doc_count)}));
        row.onclick = () => { clauses.push({field: name, op: "in", value: [b.key]}); render(); changed(); };
        table.append(row);
      });
      box.append(el("div", {class: "facet"}, el("h3", {text: fields[name]?.label || name}), table));
    }
  }

  function renderHits(hits) {
    const table = $("hits"); if (!table) return;
    table.replaceChildren();
    if (!hits.length) { table.append(el("tr", {}, el("td", {class: "empty", text: "No match."}))); return; }
    const cols = Object.keys(hits[0]).filter((k) => !k.endsWith("_id"));
    table.append(el("tr", {}, ...cols.map((c) => el("th", {text: c}))));
    hits.forEach((h) => table.append(el("tr", {}, ...cols.map((c) => el("td", {text: h[c] ?? ""})))));
  }

  async function renderCompleteness(level, filters) {
    const target = ["cases", "lesions"].includes(level) ? level : "cases";
    if (target !== level) filters = null;  // counted for cases and lesions only
    $("completeness-level").textContent = `(${target}${target !== level ? ", whole biobank" : ""})`;
    const qs = filters ? "?filters=" + encodeURIComponent(JSON.stringify(filters)) : "";
    const r = await api("GET", `/api/v1/query/${target}/completeness${qs}`);
    const table = $("completeness"); table.replaceChildren();
    const num = (v) => typeof v === "number" ? v : 4;
    const max = Math.max(1, ...r.combinations.map((c) => num(c.count)));
    table.append(el("tr", {}, el("th", {text: "combination"}), el("th", {}), el("th", {class: "num", text: target})));
    r.combinations.slice(0, 15).forEach((c) => {
      const dots = el("td", {class: "dots", title: c.modalities.join(", ") || "none"});
      r.modalities.forEach((m) => dots.append(el("span", {class: "dot" + (c.modalities.includes(m) ? " on" : ""), title: m})));
      table.append(el("tr", {class: "combo-row", "data-modalities": c.modalities.join("+")}, dots,
        el("td", {class: "bar"}, el("span", {style: `width:${100 * num(c.count) / max}%`})),
        el("td", {class: "num", text: String(c.count)})));
    });
    const legend = el("tr", {}, el("td", {colspan: "3", class: "muted", text: "dots, left to right: " + r.modalities.join(", ")}));
    table.append(legend);
  }

  $("add-clause").onclick = () => {
    const first = fields["cases.disease_group"] ? "cases.disease_group" : Object.keys(fields)[0];
    clauses.push({field: first, op: "in", value: undefined}); render();
  };
  $("toggle-json").onclick = () => {
    const box = $("filter-json");
    if (box.hidden) { box.value = JSON.stringify(filterDoc(), null, 2); box.hidden = false; $("clauses").hidden = true; }
    else { try { load(JSON.parse(box.value || "null")); box.hidden = true; $("clauses").hidden = false; render(); } catch (e) { showError(e); } }
    changed();
  };
  $("filter-json").oninput = changed;
  $("level").onchange = changed;
  $("save").onclick = async () => {
    try {
      const body = {name: $("cohort-name").value.trim(), level: $("level").value, filters: filterDoc()};
      const saved = await api(cohortId ? "PATCH" : "POST", cohortId ? `/api/v1/cohorts/${cohortId}` : "/api/v1/cohorts/", body);
      $("save-status").textContent = "Saved.";
      if (!cohortId) location.href = `/cohorts/${saved.id}`;
    } catch (e) { showError(e); }
  };
  const freeze = $("freeze");
  if (freeze) freeze.onclick = async () => {
    try { await api("POST", `/api/v1/cohorts/${cohortId}/snapshots`); location.reload(); } catch (e) { showError(e); }
  };
  const diff = $("diff");
  if (diff) api("GET", `/api/v1/cohorts/snapshots/${diff.dataset.from}/diff/${diff.dataset.to}`).then((d) => {
    diff.textContent = `Since snapshot ${d.from_snapshot}: ${d.added_count} added, ${d.removed_count} removed, ${d.unchanged_count} unchanged` +
      (d.added?.length ? ` (added: ${d.added.slice(0, 10).join(", ")}${d.added.length > 10 ? ", …" : ""})` : "");
  });

  api("GET", "/api/v1/query/_mapping").then((m) => {
    m.fields.forEach((f) => { fields[f.field] = f; });
    load(initial); render(); refresh();
  }).catch(showError);
})();
