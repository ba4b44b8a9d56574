(() => {
  const PAGE = JSON.parse(document.getElementById("page-data").textContent);
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const base = `/api/v1/requests/${PAGE.request_id}`;
  const message = document.getElementById("message");
  const say = (kind, text) => { message.className = "flash " + kind; message.textContent = text; message.hidden = false; };
  async function api(path, body) {
    const r = await fetch(base + path, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body || {})});
    const data = await r.json();
    if (!r.ok) throw new Error(data.detail);
    return data;
  }
  const on = (id, event, handler) => { const n = document.getElementById(id); if (n) n.addEventListener(event, handler); };
  on("decide", "submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try { await api("/decision", {decision: ev.submitter.value, password: f.get("password"), reason: f.get("reason") || null}); location.reload(); }
    catch (e) { say("error", e.message); }
  });
  on("withdraw", "click", async () => { try { await api("/withdraw"); location.reload(); } catch (e) { say("error", e.message); } });
  on("allocate", "click", async () => {
    try { const r = await api("/allocation"); say("warning", `${r.tubes} tubes reserved for ${r.cases_served} cases`); setTimeout(() => location.reload(), 300); }
    catch (e) { say("error", e.message); }
  });
  on("pick-field", "keydown", async (ev) => {
    if (ev.key !== "Enter") return;
    const barcode = ev.target.value.trim(); ev.target.value = "";
    try {
      const r = await api("/picks", {barcode});
      const row = document.querySelector(`tr[data-barcode="${CSS.escape(barcode)}"]`);
      if (row) { row.classList.add("picked"); row.querySelector(".picked-at").textContent = "just now"; }
      const counter = document.getElementById("pick-counter");
      counter.textContent = `${Number(counter.dataset.total) - r.remaining} of ${counter.dataset.total}`;
      say("warning", `${barcode} picked; ${r.remaining} to go`);
    } catch (e) { say("error", e.message); }
  });
  on("ship", "submit", async (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(ev.target));
    if (!f.tracking_number) f.tracking_number = null;
    try { await api("/shipment", f); location.reload(); } catch (e) { say("error", e.message); }
  });
  const scans = [];
  on("receive-field", "keydown", (ev) => {
    if (ev.key !== "Enter") return;
    const barcode = ev.target.value.trim(); ev.target.value = "";
    if (!barcode) return;
    const damaged = document.getElementById("damaged");
    scans.push({barcode, condition: damaged.checked ? "damaged" : "acceptable"});
    const li = document.createElement("li"); li.textContent = barcode + (damaged.checked ? " (damaged)" : "");
    document.getElementById("received").append(li); damaged.checked = false;
  });
  document.querySelectorAll(".make-aliquot").forEach((button) => button.addEventListener("click", async () => {
    try { const r = await api(`/allocations/${button.dataset.allocation}/aliquot`, {}); say("warning", `aliquot ${r.barcode} made and allocated`); setTimeout(() => location.reload(), 300); }
    catch (e) { say("error", e.message); }
  }));
  on("make-every", "submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target), body = {};
    if (f.get("quantity")) body.quantity = f.get("quantity");
    if (f.get("label_template")) body.print = {template: f.get("label_template"), printer_id: Number(f.get("printer_id")) || null};
    try {
      const r = await api("/processing", body);
      location.assign(`${location.pathname}?made=${r.made}` + (r.print_job_id ? `&job=${r.print_job_id}` : ""));
    } catch (e) { say("error", e.message); }
  });
  on("reconcile", "click", async () => {
    const parcel = Number(document.getElementById("parcel").value);
    try { await api("/receipt", {scans, shipment_id: parcel}); location.reload(); } catch (e) { say("error", e.message); }
  });
})();
