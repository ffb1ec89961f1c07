// The two Kubernetes installs stay in step: the namespaced one is the cluster-wide one with a Role
// per watched namespace instead of the ClusterRole (same rules), and --watch-namespaces naming
// exactly those namespaces. Everything else (Deployment, Service, NetworkPolicy) is identical.
// The rules let infergate list and watch every kind the Kubernetes source watches, and patch the
// status of every kind it writes status for.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { STATUS_KINDS, WATCHED } from "../../extension-server/src/config/kube-source.ts";

const docs = (file: string): Array<Record<string, any>> =>
  parseAllDocuments(readFileSync(new URL(`../../manifests/kubernetes/${file}`, import.meta.url), "utf8")).map((d) => d.toJS());

describe("Kubernetes install manifests", () => {
  const cluster = docs("infergate.yaml");
  const namespaced = docs("infergate-namespaced.yaml");
  const byKind = (list: Array<Record<string, any>>, kind: string) => list.filter((d) => d.kind === kind);

  it("give the namespaced install the ClusterRole's rules in a Role per watched namespace, bound to the same ServiceAccount", () => {
    const rules = byKind(cluster, "ClusterRole")[0]!.rules;
    const roles = byKind(namespaced, "Role");
    const bindings = byKind(namespaced, "RoleBinding");
    const args: string[] = byKind(namespaced, "Deployment")[0]!.spec.template.spec.containers[0].args;
    const watched = args.find((a) => a.startsWith("--watch-namespaces="))!.split("=")[1]!.split(",");
    assert.deepEqual(roles.map((r) => r.metadata.namespace), watched);
    for (const role of roles) assert.deepEqual(role.rules, rules, role.metadata.namespace);
    assert.deepEqual(bindings.map((b) => [b.metadata.namespace, b.roleRef.kind, b.roleRef.name, b.subjects]),
      watched.map((ns) => [ns, "Role", "infergate", byKind(cluster, "ClusterRoleBinding")[0]!.subjects]));
    assert.deepEqual(byKind(namespaced, "ClusterRole"), []);
    assert.deepEqual(byKind(namespaced, "ClusterRoleBinding"), []);
  });

  it("keep the rest identical, but for --watch-namespaces", () => {
    const rest = (list: Array<Record<string, any>>) => JSON.parse(JSON.stringify(list.filter((d) => !/Role/.test(d.kind))), (key, value) =>
      key === "args" ? (value as string[]).filter((a) => !a.startsWith("--watch-namespaces=")) : value);
    assert.deepEqual(rest(namespaced), rest(cluster));
  });

  it("let infergate read every kind it watches, and patch the status of every kind it writes status for", () => {
    const rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> = byKind(cluster, "ClusterRole")[0]!.rules;
    const allowed = (group: string, resource: string, verb: string) =>
      rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const r of [...WATCHED, { group: "", plural: "pods", kind: "Pod" }]) {
      for (const verb of ["get", "list", "watch"]) assert.ok(allowed(r.group, r.plural, verb), `${verb} ${r.plural}.${r.group}`);
    }
    const written = WATCHED.filter((r) => STATUS_KINDS.has(r.kind));
    assert.deepEqual(new Set(written.map((r) => r.kind)), STATUS_KINDS, "every kind whose status is written is watched");
    for (const r of written) assert.ok(allowed(r.group, `${r.plural}/status`, "patch"), `patch ${r.plural}/status.${r.group}`);
  });
});
