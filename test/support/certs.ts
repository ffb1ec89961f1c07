// Throwaway certificate authorities for TLS tests, made with the openssl command line (Node has no
// API to issue X.509 certificates). Each CA lives in its own temporary directory; certificates are
// P-256, valid for a day, usable for both server and client authentication.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { scratchDir } from "./scratch-dir.ts";

export interface Issued { cert: string; key: string }

export interface TestCa {
  dir: string;
  /** The CA's certificate (PEM file). */
  cert: string;
  /** A certificate signed by this CA, with these subject alternative names. */
  issue(name: string, san?: { dns?: string[]; ips?: string[] }): Issued;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export function createTestCa(name = "infergate-test-ca"): TestCa {
  const dir = scratchDir(name);
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", `/CN=${name}`], dir);
  return {
    dir,
    cert: join(dir, "ca.crt"),
    issue(leaf, san = {}) {
      const names = [...(san.dns ?? ["localhost"]).map((d) => `DNS:${d}`), ...(san.ips ?? ["127.0.0.1"]).map((ip) => `IP:${ip}`)];
      writeFileSync(join(dir, `${leaf}.ext`), `subjectAltName=${names.join(",")}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${leaf}.key`, "-out", `${leaf}.csr`, "-subj", `/CN=${leaf}`], dir);
      openssl(["x509", "-req", "-in", `${leaf}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${leaf}.crt`, "-days", "1", "-extfile", `${leaf}.ext`], dir);
      return { cert: join(dir, `${leaf}.crt`), key: join(dir, `${leaf}.key`) };
    },
  };
}
