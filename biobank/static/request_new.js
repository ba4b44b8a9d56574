(() => {
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const form = document.getElementById("request-form");
  const api = async (url, body) => {
    const r = await fetch(url, {method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
    const data = await r.json();
    if (!r.ok) throw Object.assign(new Error(data.detail), {data});
    return data;
  };
  function target() {
    const f = new FormData(form), req = {material_type: f.get("material_type")};
    if (f.get("min_quantity")) { req.min_quantity = Number(f.get("min_quantity")); req.unit = f.get("unit"); }
    req.aliquots_per_case = Number(f.get("aliquots_per_case") || 1);
    if (f.get("max_freeze_thaw")) req.max_freeze_thaw = Number(f.get("max_freeze_thaw"));
    return {cohort_id: Number(f.get("cohort_id")), requirements: req, consent_scopes: f.getAll("consent_scopes")};
  }
  function error(e) {
    const box = document.getElementById("form-error");
    const where = e.data?.errors?.[0]?.field;
    box.textContent = e.message + (where ? ` (${where})` : ""); box.hidden = false;
  }
  let timer = null;
  async function feasibility() {
    try {
      const r = await api("/api/v1/requests/feasibility", target());
      document.getElementById("form-error").hidden = true;
      document.getElementById("servable").textContent = r.servable;
      document.getElementById("cases").textContent = r.cases;
      const table = document.getElementById("reasons"); table.replaceChildren();
      for (const [reason, n] of Object.entries(r.not_servable)) {
        const tr = document.createElement("tr");
        tr.innerHTML = "<th></th><td class='num'></td>";
        tr.children[0].textContent = reason; tr.children[1].textContent = n;
        table.append(tr);
      }
    } catch (e) { error(e); }
  }
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(feasibility, 250); });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      const r = await api("/api/v1/requests/", {...target(), title: f.get("title"), purpose: f.get("purpose"),
                                                ethics_reference: f.get("ethics_reference")});
      location.href = `/requests/${r.id}`;
    } catch (e) { error(e); }
  });
  feasibility();
})();
