// Accessioning: a keyboard-wedge scanner types each tube's barcode and Enter into the scan
// field; each scan adds a row with the material, quantity, unit and primary tube chosen
// "for the next tubes", and the focus stays in the field for the next scan. A tube without
// a barcode gets one issued when the visit is recorded. Rows can be changed or removed
// before recording; nothing is saved until "Record the visit".
(() => {
  const $ = (id) => document.getElementById(id);
  const field = $("tube-field"), body = $("tubes").querySelector("tbody");
  const row = $("tube-row"), feedback = $("tube-feedback");

  function say(kind, text) { feedback.className = "feedback " + kind; feedback.textContent = text; }
  function renumber() {
    const rows = [...body.rows];
    rows.forEach((tr, i) => { tr.querySelector(".n").textContent = String(i + 1); });
    $("tube-count").textContent = String(rows.length);
    $("record-visit").textContent = rows.length ?
      `Record the visit (${rows.length} ${rows.length === 1 ? "tube" : "tubes"})` : "Record the visit";
  }
  function barcodes() { return [...body.querySelectorAll("input[name=tube_barcode]")].map((i) => i.value); }
  function add(barcode, values) {
    const tr = row.content.firstElementChild.cloneNode(true);
    tr.querySelector("input[name=tube_barcode]").value = barcode;
    tr.querySelector(".code").textContent = barcode || "issued on recording";
    tr.querySelector("select[name=tube_material]").value = values.material;
    tr.querySelector("input[name=tube_quantity]").value = values.quantity;
    tr.querySelector("select[name=tube_unit]").value = values.unit;
    tr.querySelector("select[name=tube_container]").value = values.container;
    tr.querySelector(".remove").addEventListener("click", () => { tr.remove(); renumber(); field.focus(); });
    body.append(tr);
    renumber();
  }
  function next() {
    return {material: $("next-material").value, quantity: $("next-quantity").value.trim(),
            unit: $("next-unit").value, container: $("next-container").value};
  }
  field.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();  // a scan never submits the form
    const code = field.value.trim();
    field.value = "";
    if (!code) { say("warn", "Scan a tube, or add one without a barcode."); return; }
    if (barcodes().includes(code)) { say("warn", `${code} is scanned already`); return; }
    add(code, next());
    say("ok", `${code} added`);
  });
  $("add-unbarcoded").addEventListener("click", () => {
    add("", next());
    say("ok", "a tube without a barcode added: one is issued on recording");
    field.focus();
  });
  // the rows a refused form sent come back as they were
  const posted = JSON.parse($("posted-tubes").textContent);
  posted.barcode.forEach((barcode, i) => add(barcode, {
    material: posted.material[i], quantity: posted.quantity[i], unit: posted.unit[i],
    container: posted.container[i]}));
})();
