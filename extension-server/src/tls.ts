// Mutual TLS for the gRPC servers Envoy and Envoy Gateway call (xDS, the extension hooks). The
// certificate, key and client CA are files (a Kubernetes Secret mounted into the pod); they are
// re-read every minute, so a rotated Secret is picked up without a restart. A client must present
// a certificate signed by the client CA, or the handshake fails.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

export interface TlsFiles {
  /** This server's certificate chain (PEM). */
  cert: string;
  /** Its private key (PEM). */
  key: string;
  /** The CA certificates that sign the clients' certificates (PEM). */
  ca: string;
}

const REFRESH_MS = 60_000;

/** Reads a PEM file, failing with the flag's meaning when it is missing or not PEM. */
export function readPem(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`${what} ${path}: ${(err as Error).message}`);
  }
  if (!/-----BEGIN [A-Z ]+-----/.test(text)) throw new Error(`${what} ${path}: not a PEM file`);
  return text;
}

/** Server credentials that require a client certificate signed by `files.ca`. */
export async function mtlsServerCredentials(files: TlsFiles): Promise<grpc.ServerCredentials> {
  readPem(files.cert, "TLS certificate");
  readPem(files.key, "TLS key");
  readPem(files.ca, "TLS client CA");
  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: files.cert, privateKeyFile: files.key, caCertificateFile: files.ca, refreshIntervalMs: REFRESH_MS,
  });
  // The provider reads the files asynchronously: wait for its first read, or the first clients
  // would meet a server with no certificate yet.
  await new Promise<void>((resolve, reject) => {
    let ca: unknown;
    let identity: unknown;
    const done = (): void => {
      if (ca === undefined || identity === undefined) return;
      provider.removeCaCertificateListener(onCa);
      provider.removeIdentityCertificateListener(onIdentity);
      if (ca === null || identity === null) reject(new Error(`cannot read the TLS files ${files.cert}, ${files.key}, ${files.ca}`));
      else resolve();
    };
    const onCa = (u: unknown): void => { ca = u; done(); };
    const onIdentity = (u: unknown): void => { identity = u; done(); };
    provider.addCaCertificateListener(onCa);
    provider.addIdentityCertificateListener(onIdentity);
  });
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
}
