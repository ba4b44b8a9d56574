// Receiving a parcel: the expected tubes (registered for the user's sites, or a manifest's),
// ticked off as a keyboard-wedge scanner types each code and Enter. A tube is received with
// the condition chosen when it was scanned; a tube not expected is listed apart and not
// received; what is still missing shows as it goes. "Record the receipt" records every
// scanned tube at once through the batch scan API: all or none.
(() => {
  const $ = (id) => document.getElementById(id);
  const field = $("receive-field"), condition = $("condition"), feedback = $("receive-feedback");
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const registered = JSON.parse($("expected-data").textContent);
  let expected = new Map();  // barcode -> {participant, material}
  const scanned = new Map();  // barcode -> condition, in scanning order
  const unexpected = [];

  function setExpected(rows) {
    expected = new Map(rows.map((r) => [r.barcode, r]));
    scanned.clear();
    unexpected.length = 0;
    render();
  }
  function chooseRegistered() {
    const day = $("expected-source").value;
    setExpected(registered.filter((r) => day === "all" || r.registered === day));
  }
  function say(kind, text) {
    feedback.className = "feedback " + kind;
    feedback.textContent = text;
  }
  function render() {
    $("counter").textContent = `${scanned.size} of ${expected.size}`;
    const body = $("scanned");
    body.replaceChildren();
    let n = 0;
    for (const [barcode, state] of scanned) {
      const row = expected.get(barcode), tr = document.createElement("tr");
      for (const text of [String(++n), barcode, row.participant || "", row.material || "",
                          state]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      if (state !== "acceptable") tr.className = "warn";
      body.append(tr);
    }
    const list = (id, items) => $(id).replaceChildren(...items.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    list("unexpected", unexpected);
    $("unexpected-count").textContent = String(unexpected.length);
    const missing = [...expected.keys()].filter((b) => !scanned.has(b));
    list("missing", missing);
    $("missing-count").textContent = String(missing.length);
    $("record").disabled = scanned.size === 0;
  }
  function scan(code) {
    if (!code) return;
    if (scanned.has(code)) {
      say("warn", `${code} was scanned already (${scanned.get(code)})`);
    } else if (expected.has(code)) {
      scanned.set(code, condition.value);
      say(condition.value === "acceptable" ? "ok" : "warn",
          `${code}: ${scanned.size} of ${expected.size}` +
          (condition.value === "acceptable" ? "" : `, ${condition.value}`));
      condition.value = "acceptable";  // a condition is for one tube
    } else if (!unexpected.includes(code)) {
      unexpected.push(code);
      say("error", `${code} is not expected: set it aside`);
    } else {
      say("error", `${code} is not expected (scanned again)`);
    }
    render();
  }
  field.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const code = field.value.trim();
    field.value = "";
    scan(code);
  });
  $("expected-source").addEventListener("change", chooseRegistered);
  $("manifest").addEventListener("change", async () => {
    const file = $("manifest").files[0];
    if (!file) return;
    const lines = (await file.text()).split(/\r?\n/).filter((l) => l.trim());
    const header = lines.shift().split(/[,;\t]/).map((h) => h.trim().toLowerCase());
    const column = header.findIndex((h) => h === "barcode" || h === "specimen_barcode");
    if (column < 0) {
      say("error", `${file.name}: no barcode or specimen_barcode column in its first line`);
      return;
    }
    const known = new Map(registered.map((r) => [r.barcode, r]));
    setExpected(lines.map((l) => l.split(/[,;\t]/)[column].trim()).filter(Boolean)
      .map((b) => known.get(b) || {barcode: b}));
    say("info", `${file.name}: ${expected.size} tubes expected`);
    field.focus();
  });
  $("record").addEventListener("click", async () => {
    const now = new Date().toISOString();
    const scans = [...scanned].map(([barcode, state]) => ({
      barcode, action: "receive", condition: state, scanned_at: now,
      client_event_id: crypto.randomUUID ? crypto.randomUUID()
        : String(Date.now()) + Math.random().toString(16).slice(2)}));
    $("record").disabled = true;
    const response = await fetch("/api/v1/scans/batch", {method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      credentials: "same-origin", body: JSON.stringify({scans})});
    let data = null;
    try { data = await response.json(); } catch (e) { data = {detail: response.statusText}; }
    if (!response.ok) {
      $("result").textContent = `Nothing was recorded: ${data.detail || response.status}`;
      $("result").className = "feedback error";
      $("record").disabled = false;
      return;
    }
    const quarantined = data.filter((a) => a.specimen.status === "quarantined").length;
    const missing = [...expected.keys()].filter((b) => !scanned.has(b)).length;
    $("result").className = "feedback ok";
    $("result").textContent = `Received ${data.length} tubes` +
      (quarantined ? `, ${quarantined} quarantined` : "") +
      (missing ? `; ${missing} expected tubes did not come` : "") +
      (unexpected.length ? `; ${unexpected.length} unexpected set aside` : "") + ".";
    for (const barcode of scanned.keys()) expected.delete(barcode);
    scanned.clear();
    render();
  });
  chooseRegistered();
  field.focus();
})();
