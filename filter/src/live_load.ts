// The replicas' scraped load (each pool's endpoints, scores and saturation: the load text of
// core/snapshot.ts) reaches the filter outside its plugin configuration, as request filter state
// that the extension server's `set_filter_state` filter sets before this one runs (its
// configuration, pushed over ECDS, is the load text itself). Envoy builds that native filter's new
// configuration and frees the old; a new Wasm plugin configuration, in contrast, leaves a few
// hundred bytes behind for good, which a push per scrape would add up to.
//
// Each request reads the load's version (a few bytes); only a version this root has not applied
// yet is read whole, parsed and applied to the root's snapshot.
import { parseLoad, Snapshot } from "./core/snapshot";
import { getProperty, log, LogLevel, Status } from "./host/api";

/** Filter state keys: the contract with extension-server/src/envoy/resources.ts (contract test). */
export const LOAD_VERSION_KEY = "infergate.load_version";
export const LOAD_TEXT_KEY = "infergate.load";

const VERSION_PATH = String.UTF8.encode("filter_state\0" + LOAD_VERSION_KEY);
const TEXT_PATH = String.UTF8.encode("filter_state\0" + LOAD_TEXT_KEY);

/**
 * Brings `snapshot` up to the load this request carries; returns the version now applied (`applied`
 * unchanged when the request carries none or the same). A load that does not parse is logged and
 * left out: the snapshot keeps the load it had.
 */
export function refreshLoad(snapshot: Snapshot, applied: string): string {
  const version = getProperty(VERSION_PATH);
  if (version.status != Status.Ok) {
    if (version.status != Status.NotFound) log(LogLevel.Warn, "infergate: cannot read the load version: status " + version.status.toString());
    return applied;
  }
  const v = version.text()!;
  if (v == applied) return applied;
  const text = getProperty(TEXT_PATH);
  if (text.status != Status.Ok) {
    log(LogLevel.Warn, "infergate: cannot read load " + v + ": status " + text.status.toString());
    return applied;
  }
  const parsed = parseLoad(text.text()!);
  if (parsed.snapshot === null) {
    log(LogLevel.Error, "infergate: rejected load " + v + ": " + parsed.error);
    return v;
  }
  snapshot.applyLoad(parsed.snapshot!);
  return v;
}
