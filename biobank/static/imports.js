// Imports: the file is uploaded to the imports API, then the job is followed until it has
// succeeded, passed its dry run, or failed; a failed job's problems are shown as a table
// (line, column, what is wrong). After a passed dry run "Import it now" sends the same file
// for real. Nothing is written by a failed import.
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("import-form"), csrf = document.querySelector("meta[name=csrf-token]").content;
  const WORDS = {queued: "Waiting for a worker…", running: "Checking the rows…",
                 succeeded: "Imported.", validated: "Dry run passed: nothing was written.",
                 failed: "Not imported: nothing was written."};
  let lastFile = null;

  $("template").addEventListener("change", () => {
    $("study-row").hidden = $("template").value !== "openspecimen";
  });
  $("dry-run").addEventListener("change", () => {
    $("import-submit").textContent = $("dry-run").checked ? "Check the file" : "Import the file";
  });

  function show(state, detail) {
    $("import-status").hidden = false;
    $("job-state").textContent = state;
    $("job-detail").textContent = detail || "";
  }
  function rows(job) {
    const made = Object.entries(job.created || {}).filter(([, n]) => n)
      .map(([table, n]) => `${n} ${table}`).join(", ");
    return `${job.rows_read || 0} rows read` + (made ? `; ${made}` : "");
  }
  async function problems(job) {
    const r = await fetch(`/api/v1/imports/${job.id}/problems`, {credentials: "same-origin"});
    const list = r.ok ? await r.json() : [];
    const body = $("problems").querySelector("tbody");
    body.replaceChildren(...list.map((p) => {
      const tr = document.createElement("tr");
      for (const text of [p.line ? String(p.line) : "whole file", p.column || "", p.message]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
    $("problem-count").textContent = String(job.error_count);
    $("problems-csv").href = job.problems_url;
    $("problems-card").hidden = false;
  }
  async function follow(job) {
    for (;;) {
      const p = job.progress || {};
      const progress = p.rows_checked ? `${p.rows_checked} rows checked` : "";
      $("job-progress").hidden = job.status !== "running" || p.share_read == null;
      if (p.share_read != null) $("job-progress").value = p.share_read;
      show(WORDS[job.status] || job.status, job.status === "running" ? progress : rows(job));
      if (!["queued", "running"].includes(job.status)) break;
      await new Promise((done) => setTimeout(done, 500));
      const r = await fetch(`/api/v1/imports/${job.id}`, {credentials: "same-origin"});
      job = await r.json();
    }
    if (job.status === "failed") await problems(job);
    $("run-now").hidden = job.status !== "validated";
  }
  async function upload(file, dryRun) {
    const data = new FormData(form);
    const query = new URLSearchParams({template: data.get("template"), dry_run: String(dryRun),
                                       delimiter: data.get("delimiter")});
    if (data.get("study_code")) query.set("study_code", data.get("study_code"));
    const body = new FormData();
    body.append("file", file);
    $("problems-card").hidden = true;
    $("run-now").hidden = true;
    show("Uploading…");
    const r = await fetch(`/api/v1/imports/?${query}`, {method: "POST", body,
      credentials: "same-origin", headers: {"X-CSRF-Token": csrf}});
    const job = await r.json();
    if (!r.ok) { show("Not imported:", job.detail); return; }
    await follow(job);
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    lastFile = $("import-file").files[0];
    if (lastFile) upload(lastFile, $("dry-run").checked);
  });
  $("run-now").addEventListener("click", () => { if (lastFile) upload(lastFile, false); });
})();
