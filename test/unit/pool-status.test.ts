// Which pools infergate reports on (an attach-to naming a Gateway), and how its entry joins the
// status other controllers write: merged by parentRef and controllerName, never clobbering theirs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { claimedParent, CONTROLLER_NAME, mergeParents, type Condition, type ParentRef, type ParentStatus } from "../../extension-server/src/config/pool-status.ts";

const gw = (name: string, namespace = "team-a"): ParentRef => ({ group: "gateway.networking.k8s.io", kind: "Gateway", name, namespace });
const accepted = (status: "True" | "False"): Condition[] => [{ type: "Accepted", status, reason: status === "True" ? "Accepted" : "Invalid", message: "", lastTransitionTime: "2026-01-01T00:00:00Z" }];
const ours = (name: string, status: "True" | "False" = "True"): ParentStatus => ({ parentRef: gw(name), controllerName: CONTROLLER_NAME, conditions: accepted(status) });
const istio = { parentRef: gw("istio-gw"), controllerName: "istio.io/gateway-controller", conditions: accepted("True") };

describe("InferencePool status shared with other controllers", () => {
  it("claims only pools whose attach-to names a Gateway", () => {
    const pool = (annotation?: string) => ({ metadata: { namespace: "team-a", ...(annotation === undefined ? {} : { annotations: { "inference.networking.x-k8s.io/attach-to": annotation } }) } });
    assert.equal(claimedParent(pool()), undefined, "no annotation: maybe another implementation's pool");
    assert.deepEqual(claimedParent(pool("name: gw\nport: 8081\n")), gw("gw"));
    assert.deepEqual(claimedParent(pool("{name: gw, namespace: prod}")), gw("gw", "prod"), "also a refused cross-namespace Gateway: the refusal is reported there");
    for (const bad of ["", "port: 8081", "[gw]", "name: [x]", "{{"]) assert.equal(claimedParent(pool(bad)), undefined, bad);
  });

  it("adds its entry next to another controller's, and keeps theirs byte for byte", () => {
    const { parents, claimedBy } = mergeParents([istio], ours("gw"), "team-a");
    assert.deepEqual(parents, [istio, ours("gw")]);
    assert.equal(claimedBy, undefined);
  });

  it("replaces its own entry, and removes it for a Gateway it no longer names", () => {
    assert.deepEqual(mergeParents([istio, ours("gw", "True")], ours("gw", "False"), "team-a").parents, [istio, ours("gw", "False")]);
    assert.deepEqual(mergeParents([ours("old"), istio], ours("gw"), "team-a").parents, [istio, ours("gw")]);
    assert.deepEqual(mergeParents([ours("gw"), istio], undefined, "team-a").parents, [istio], "the annotation went away");
  });

  it("leaves a Gateway another controller reports on to that controller", () => {
    const theirs = { ...istio, parentRef: gw("gw") };
    const merged = mergeParents([theirs, ours("gw")], ours("gw", "False"), "team-a");
    assert.deepEqual(merged.parents, [theirs]);
    assert.equal(merged.claimedBy, "istio.io/gateway-controller");
  });

  it("matches parentRefs with the API's defaults, and entries whose controllerName was pruned only if it wrote them", () => {
    const short = { parentRef: { name: "gw" }, conditions: accepted("True") };
    assert.deepEqual(mergeParents([short, istio], ours("gw"), "team-a").parents, [istio, ours("gw")], "same Gateway, defaults filled in");
    const otherNoController = { parentRef: { name: "elsewhere" }, conditions: accepted("True") };
    assert.deepEqual(mergeParents([otherNoController], ours("gw"), "team-a").parents, [otherNoController, ours("gw")], "not known to be ours: kept");
    assert.deepEqual(mergeParents([otherNoController], ours("gw"), "team-a", [gw("elsewhere")]).parents, [ours("gw")], "written by infergate before: removed");
  });

  it("adds nothing when other controllers' entries fill the list (32, the v1 CRD's bound)", () => {
    const others = Array.from({ length: 32 }, (_, i) => ({ ...istio, parentRef: gw(`gw-${i}`) }));
    const merged = mergeParents([...others, ours("gw")], ours("gw"), "team-a");
    assert.deepEqual(merged.parents, others);
    assert.equal(merged.full, true);
  });
});
