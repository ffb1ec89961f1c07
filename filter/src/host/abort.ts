import { proxy_log } from "./imports";

// Replaces AssemblyScript's default `env.abort` import, which Envoy does not provide. An abort
// (failed assertion, out-of-bounds access) is logged through the host and then traps, so Envoy
// fails the request visibly instead of the module linking against a missing import.
export function abortHandler(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let text = "infergate abort: ";
  if (message !== null) text += message;
  if (fileName !== null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  const bytes = String.UTF8.encode(text);
  proxy_log(4 /* error */, changetype<usize>(bytes), bytes.byteLength);
  unreachable();
}
