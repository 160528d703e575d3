// node --test .github/scripts
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const { MARKER, LIMIT, body } = require("./preview-comment.js");

const base = {
  head: "1111111aaaa", mergeBase: "2222222bbbb", runUrl: "https://example.test/run/1",
  env: "ai", slot: "pr-7", sameRepo: true, build: "success", slotResult: "success",
  diffOutcome: "success", diff: "== ai/pr-7\n~ Deployment x\n", diffErr: "",
  slotReport: { rendered: true, branch: "rendered", url: "https://pr-7.ai.shop.example.com/", readiness: { checked: false } },
};

test("a landed render shows the slot's URL, the merge-base and the diff", () => {
  const b = body(base);
  assert.ok(b.startsWith(MARKER));
  assert.match(b, /against the merge-base `2222222`/);
  assert.match(b, /`ai\/pr-7`: rendered from `1111111` onto `rendered` — https:\/\/pr-7\.ai\.shop\.example\.com\//);
  assert.match(b, /Readiness: not checked \(no cluster access/);
  assert.match(b, /~ Deployment x/);
});

test("a failed render says so and why, with the error", () => {
  const b = body({ ...base, slotResult: "failure", slotReport: { rendered: false, branch: "rendered", reason: "the render failed (exit 1)", error: "error: maxSlots: 20 reached" } });
  assert.match(b, /\*\*not rendered\*\* onto `rendered`: the render failed \(exit 1\)/);
  assert.match(b, /maxSlots: 20 reached/);
  assert.doesNotMatch(b, /Readiness/);
});

test("readiness from status --wait: ready, a failed stage, a timeout", () => {
  const ready = body({ ...base, slotReport: { ...base.slotReport, readiness: { checked: true, outcome: "ready", url: "https://from-cluster/" } } });
  assert.match(ready, /Readiness: \*\*ready\*\*/);
  assert.match(ready, /— https:\/\/from-cluster\//);
  const failed = body({ ...base, slotReport: { ...base.slotReport, readiness: { checked: true, outcome: "failed", stage: "10-migrations", object: "Job/users-migrate", why: "BackoffLimitExceeded" } } });
  assert.match(failed, /stage `10-migrations` failed\*\* — `Job\/users-migrate`: BackoffLimitExceeded/);
  const late = body({ ...base, slotReport: { ...base.slotReport, readiness: { checked: true, outcome: "timedOut", timeout: "10m", stage: "20-internal", object: "Deployment/users", why: "0/1 ready" } } });
  assert.match(late, /not ready after 10m\*\* — stage `20-internal` waits for `Deployment\/users`: 0\/1 ready/);
});

test("forks, a failed build and a slot job that never reported", () => {
  assert.match(body({ ...base, sameRepo: false, slotReport: null, slotResult: "skipped" }), /none for pull requests from forks/);
  const broken = body({ ...base, build: "failure", diffOutcome: "skipped", slotReport: null, slotResult: "skipped" });
  assert.match(broken, /not rendered, the build failure/);
  assert.match(broken, /\*\*No diff\*\*: the build failure/);
  assert.match(body({ ...base, slotReport: null, slotResult: "cancelled" }), /not rendered, the slot job cancelled/);
});

test("an oversized diff points to the job summary; a log cannot close the fence", () => {
  assert.ok(body({ ...base, diff: "x".repeat(LIMIT) }).length <= LIMIT);
  const b = body({ ...base, diffOutcome: "failure", diffErr: "```\nboom" });
  assert.doesNotMatch(b.split("**No diff**")[1], /```\nboom/);
});
