// The pull request's sticky comment (slot.yml, job `review`): the preview
// slot (its URL, whether its render landed on the deploy branch and why not,
// its readiness in the cluster when the repository gives the workflow cluster
// access) and the review diff against the merge-base.
//
// Pure: `body(facts)` returns the markdown; slot.yml reads the files the jobs
// left and posts it. Tested by `node --test .github/scripts` in `.ci/run`.
"use strict";

const MARKER = "<!-- codex-k8s review diff -->";
// GitHub refuses comments over 65,536 characters.
const LIMIT = 65536;

const short = (sha) => (sha || "").slice(0, 7);

// The last `max` characters of a log in a code fence that cannot be closed early.
function fence(text, max = 6000) {
  const t = (text || "").trim();
  if (!t) return "";
  return "\n\n```\n" + t.slice(-max).replaceAll("```", "` ` `") + "\n```\n";
}

// The preview slot. `slot` is what the `slot` job wrote (slot.json), or null
// when it did not run; `slotResult` is that job's result.
function previewSection(f) {
  const name = `\`${f.env}/${f.slot}\``;
  if (!f.sameRepo) {
    return `**Preview**: none for pull requests from forks (their token cannot push the deploy branch).\n`;
  }
  if (f.build !== "success") {
    return `**Preview** ${name}: not rendered, the build ${f.build}.\n`;
  }
  const s = f.slotReport;
  if (!s) {
    return `**Preview** ${name}: not rendered, the slot job ${f.slotResult || "did not run"}.\n`;
  }
  if (!s.rendered) {
    return `**Preview** ${name}: **not rendered** onto \`${s.branch}\`: ${s.reason || "the render failed"}.` + fence(s.error);
  }
  const url = (s.readiness && s.readiness.url) || s.url;
  let text = `**Preview** ${name}: rendered from \`${short(f.head)}\` onto \`${s.branch}\`` +
    (url ? ` — ${url}` : " (the slot has no host)") + "\n";
  const r = s.readiness;
  if (!r || !r.checked) {
    text += `\nReadiness: not checked (no cluster access: set the \`CODEX_K8S_KUBECONFIG\` secret to let the workflow wait for the slot).\n`;
  } else if (r.outcome === "ready") {
    text += `\nReadiness: **ready** — every stage ready, the agent Job started.\n`;
  } else if (r.outcome === "failed") {
    text += `\nReadiness: **stage \`${r.stage}\` failed** — \`${r.object}\`: ${r.why}.\n`;
  } else if (r.outcome === "timedOut") {
    text += `\nReadiness: **not ready after ${r.timeout}** — stage \`${r.stage}\` waits for \`${r.object}\`: ${r.why}.\n`;
  } else {
    text += `\nReadiness: unknown, \`status --wait\` did not complete.` + fence(r.error);
  }
  return text;
}

// The review diff against the merge-base.
function diffSection(f) {
  if (f.diffOutcome === "success") return f.diff || "";
  const why = f.build !== "success" ? `the build ${f.build}` : `the diff ${f.diffOutcome}`;
  return `**No diff**: ${why}.` + (fence(f.diffErr) || "\n");
}

function body(f) {
  const head = `${MARKER}\n### codex-k8s: rendered diff of \`${short(f.head)}\` against the merge-base \`${short(f.mergeBase)}\`\n\n`;
  const preview = previewSection(f) + "\n";
  const tail = `\n---\n[workflow run](${f.runUrl})\n`;
  let diff = diffSection(f);
  if ((head + preview + diff + tail).length > LIMIT) {
    diff = "The diff is too large for a comment: it is in the job summary of the workflow run.\n";
  }
  return head + preview + diff + tail;
}

module.exports = { MARKER, LIMIT, body };
