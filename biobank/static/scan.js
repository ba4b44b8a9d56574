// Scan station: one field that keeps focus. A keyboard-wedge scanner types a whole code
// within milliseconds and ends it with Enter; a person presses one key. A lone key with no
// further keystroke within the key window (and no Enter) is an action for the tube on the
// card; a burst of keys, or anything ending in Enter, is a code. No character of a scanned
// code is ever taken as an action. Consume, dispose and mark missing ask why, then are
// confirmed (the same key again, or Enter).
(() => {
  const station = document.querySelector(".scan-station");
  const KEY_WINDOW_MS = Number(station.dataset.keyWindowMs) || 50;
  // Keys typed faster than this on average are a scanner's, not a person's.
  const BURST_GAP_MS = 35;
  const KEYS = {r: "receive", s: "store", m: "move", o: "check_out", i: "check_in", t: "thaw",
                p: "ship", a: "receive_at_destination", c: "consume", d: "dispose",
                x: "mark_missing"};
  const KEY_OF = Object.fromEntries(Object.entries(KEYS).map(([k, a]) => [a, k]));
  const NEEDS_LOCATION = new Set(["store", "move"]);
  const NEEDS_REASON = new Set(["consume", "dispose", "mark_missing"]);
  const NEEDS_CONFIRMATION = new Set(["consume", "dispose", "mark_missing"]);
  const UNITS = {uL: "µL", mL: "mL", mg: "mg", g: "g", ug: "µg", ng: "ng", cells: "cells"};
  const $ = (id) => document.getElementById(id);
  const field = $("scan-field"), prompt = $("scan-prompt"), hint = $("scan-hint");
  const feedback = $("feedback"), card = $("card"), confirmText = $("confirm-text");
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  let state = {stage: "barcode", card: null, action: null, box: null, reason: null,
               lastAction: null};
  let recorded = 0;
  let loneKeyTimer = null;
  let typed = [];  // times of the keys typed since the field was last empty

  const keepFocus = () => { if (document.activeElement !== field &&
      !["SELECT", "INPUT"].includes(document.activeElement.tagName)) field.focus(); };
  document.addEventListener("click", () => setTimeout(keepFocus, 0));
  setInterval(keepFocus, 500);

  const words = (action) => action.replaceAll("_", " ");
  function beep(ok) {
    if (!$("sound").checked || !window.AudioContext) return;
    try {
      const ctx = new AudioContext(), osc = ctx.createOscillator();
      osc.frequency.value = ok ? 880 : 220; osc.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + (ok ? 0.08 : 0.35));
    } catch (e) { /* no audio device */ }
  }
  function show(kind, text) {
    feedback.className = "card feedback " + kind;
    feedback.textContent = text;
    beep(kind === "ok");
  }
  function clearField() { field.value = ""; typed = []; }
  function setStage(stage, label, help) {
    state.stage = stage; prompt.textContent = label; hint.textContent = help; clearField();
    if (stage !== "confirm" && stage !== "reason") confirmText.hidden = true;
    field.focus();
  }
  function reset() {
    state.action = null; state.box = null; state.reason = null;
    setStage("barcode", "Scan a tube", "Scan or type a barcode and press Enter.");
  }
  function awaitAction() {
    state.action = null; state.box = null; state.reason = null;
    setStage("action", "Action for " + state.card.specimen.barcode,
             "Press the key of an action, or scan another tube. To type a code by hand, " +
             "press Esc first.");
  }
  async function api(method, url, body) {
    const response = await fetch(url, {method, headers: {"Content-Type": "application/json",
      "X-CSRF-Token": csrf}, body: body ? JSON.stringify(body) : undefined,
      credentials: "same-origin"});
    let data = null;
    try { data = await response.json(); } catch (e) { data = {detail: response.statusText}; }
    return {ok: response.ok, status: response.status, data};
  }
  function quantityText(s) {
    if (s.quantity === null || s.quantity === undefined) return "quantity";
    const n = Number(s.quantity);
    return `${Number.isFinite(n) ? String(n) : s.quantity} ${UNITS[s.unit] || s.unit || ""}`.trim();
  }
  function renderCard(data) {
    const s = data.specimen;
    state.card = data;
    card.hidden = false;
    $("card-barcode").textContent = s.barcode;
    const status = $("card-status");
    status.textContent = s.status; status.className = "status status-" + s.status;
    $("card-material").textContent = s.material_type;
    $("card-quantity").textContent = s.quantity === null ? "—" : quantityText(s);
    $("card-participant").textContent = s.participant_code;
    $("card-location").textContent = s.location || "not in storage";
    $("card-warnings").replaceChildren(...data.warnings.map(w => {
      const li = document.createElement("li"); li.textContent = w; return li; }));
    $("actions").replaceChildren(...Object.entries(KEYS).filter(([, a]) =>
      data.allowed_actions.includes(a)).map(([key, a]) => {
        const b = document.createElement("button");
        b.type = "button"; b.dataset.action = a;
        const kbd = document.createElement("kbd"); kbd.textContent = key.toUpperCase();
        b.append(kbd, " " + words(a));
        b.addEventListener("click", () => choose(a));
        return b; }));
  }
  async function lookup(code) {
    confirmText.hidden = true;
    const r = await api("GET", "/api/v1/scans/card/" + encodeURIComponent(code));
    if (!r.ok) { card.hidden = true; state.card = null; show("error", r.data.detail || "error");
                 reset(); return; }
    renderCard(r.data);
    const last = state.lastAction;
    const repeat = $("repeat-action").checked && last;
    if (repeat && r.data.allowed_actions.includes(last) && !NEEDS_LOCATION.has(last) &&
        !NEEDS_CONFIRMATION.has(last)) { choose(last); return; }
    show("info", r.data.warnings.length ? "Check the warnings, then press an action key."
                                        : "Press an action key.");
    awaitAction();
  }
  function consequence(action) {
    const s = state.card.specimen;
    const where = s.location ? `it leaves ${s.location}` : "it has no position";
    const why = state.reason ? ` Reason: ${state.reason}.` : "";
    if (action === "consume") {
      return `Consume ${s.barcode}: its remaining ${quantityText(s)} is recorded as used up, ` +
             `${where}, and no further action is possible.${why}`;
    }
    if (action === "dispose") {
      return `Dispose of ${s.barcode}: it is recorded as destroyed, ${where}, and no ` +
             `further action is possible.${why}`;
    }
    return `Mark ${s.barcode} missing: ${where} in the records; storing it again brings it ` +
           `back.${why}`;
  }
  function askConfirmation(action) {
    const key = KEY_OF[action].toUpperCase();
    confirmText.textContent = consequence(action);
    confirmText.hidden = false;
    setStage("confirm", `Confirm: ${words(action)} ${state.card.specimen.barcode}?`,
             `Press ${key} again or Enter to ${words(action)}; Esc cancels, or scan another tube.`);
    show("warn", confirmText.textContent);
  }
  function choose(action) {
    if (!state.card || !state.card.allowed_actions.includes(action)) {
      show("error", `${words(action)} is not allowed for a ${state.card ?
        state.card.specimen.status : "missing"} tube`); return; }
    state.action = action;
    $("destination-row").hidden = action !== "ship";
    if (NEEDS_LOCATION.has(action)) {
      setStage("box", "Scan the box", "Scan the box barcode, then the position."); return; }
    if (NEEDS_REASON.has(action)) {
      confirmText.textContent = consequence(action);
      confirmText.hidden = false;
      setStage("reason", `Why ${words(action)} ${state.card.specimen.barcode}?`,
               "Type the reason and press Enter; Esc cancels.");
      return;
    }
    if (NEEDS_CONFIRMATION.has(action)) { askConfirmation(action); return; }
    submit({});
  }
  async function submit(extra) {
    const code = state.card.specimen.barcode, action = state.action;
    const body = {barcode: code, action, client_event_id: crypto.randomUUID ?
      crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2),
      scanned_at: new Date().toISOString(), ...extra};
    if (state.reason) body.note = state.reason;
    if (action === "ship") body.destination_site_id = Number($("destination").value);
    confirmText.hidden = true;
    const r = await api("POST", "/api/v1/scans/", body);
    if (!r.ok) { show("error", r.data.detail || "refused"); reset(); return; }
    recorded += 1; state.lastAction = action;
    $("scan-count").textContent = `${recorded} recorded`;
    renderCard(r.data);
    const extraText = r.data.warnings.length ? " — " + r.data.warnings.join("; ") : "";
    show(r.data.warnings.length ? "warn" : "ok", `${code}: ${words(action)} recorded` + extraText);
    const li = document.createElement("li");
    li.textContent = `${new Date().toLocaleTimeString()} ${code} ${words(action)}` +
      (r.data.specimen.location ? " → " + r.data.specimen.location : "");
    const log = $("log");
    log.prepend(li);
    while (log.children.length > 50) log.lastChild.remove();
    reset();
  }
  // A lone key, once the key window has passed with no other keystroke.
  function loneKey(key) {
    const action = KEYS[key.toLowerCase()];
    if (state.stage === "confirm") {
      clearField();
      if (action === state.action) { submit({}); return; }
      show("info", `Not confirmed: ${words(state.action)} cancelled.`);
      awaitAction();
      return;
    }
    if (!action) return;  // a digit or other letter: the start of a code typed by hand
    clearField();
    choose(action);
  }
  function typedByScanner() {
    if (typed.length < 4) return false;
    return (typed[typed.length - 1] - typed[0]) / (typed.length - 1) < BURST_GAP_MS;
  }
  field.addEventListener("keydown", (event) => {
    if (loneKeyTimer !== null) { clearTimeout(loneKeyTimer); loneKeyTimer = null; }
    if (event.key === "Escape") {
      if (state.card && ["confirm", "reason", "box", "position"].includes(state.stage)) {
        show("info", `${words(state.action)} cancelled.`); awaitAction();
      } else { reset(); show("info", "Cancelled."); }
      return;
    }
    const single = event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey;
    if (single) {
      if (field.value === "") typed = [];
      typed.push(performance.now());
      if ((state.stage === "action" || state.stage === "confirm") && field.value === "") {
        const key = event.key;
        loneKeyTimer = setTimeout(() => {
          loneKeyTimer = null;
          if (field.value === key) loneKey(key);
        }, KEY_WINDOW_MS);
      }
      return;
    }
    if (event.key !== "Enter") return;
    event.preventDefault();
    const value = field.value.trim();
    const scanned = typedByScanner();
    if (state.stage === "confirm") {
      if (!value) { submit({}); return; }
      show("info", `Not confirmed: ${words(state.action)} cancelled.`);
      lookup(value);
      return;
    }
    if (!value) return;
    if (state.stage === "reason") {
      if (scanned) {
        show("info", `${words(state.action)} cancelled: another tube was scanned.`);
        lookup(value);
        return;
      }
      state.reason = value;
      askConfirmation(state.action);
    } else if (state.stage === "box") {
      state.box = value;
      setStage("position", "Position in " + value, "Type or scan the position, e.g. B3.");
    } else if (state.stage === "position") {
      submit({location: {container_barcode: state.box, position: value}});
    } else {
      lookup(value);
    }
  });
})();
